"""The job: its states, the legal moves between them, and upload part planning.

Pure code: no AWS here. ``jobs_table`` turns each transition into a DynamoDB conditional
write built from ``ALLOWED_SOURCES``, so the rules live in one place.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from .errors import EmptyUpload, InvalidRequest, UnsupportedMediaType, UploadTooLarge
from .settings import S3_MAX_PART_BYTES, S3_MAX_PARTS


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
UNFINISHED = frozenset(set(JobStatus) - FINISHED)

# target -> the states it may be entered from. Nothing moves backwards.
# PROCESSING may be entered straight from AWAITING_UPLOAD: S3's event can reach the
# processor before the API has recorded the upload as complete. PROCESSING -> PROCESSING
# is a re-claim of a crashed invocation's job; the table adapter adds the lease condition.
ALLOWED_SOURCES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.AWAITING_UPLOAD: frozenset(),
    JobStatus.UPLOADED: frozenset({JobStatus.AWAITING_UPLOAD}),
    JobStatus.PROCESSING: frozenset({JobStatus.AWAITING_UPLOAD, JobStatus.UPLOADED}),
    JobStatus.COMPLETED: frozenset({JobStatus.PROCESSING}),
    JobStatus.FAILED: frozenset(UNFINISHED),
    JobStatus.CANCELLED: frozenset(UNFINISHED),
}


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    return source in ALLOWED_SOURCES[target]


def new_job_id() -> str:
    # uuid4 hex: 122 random bits, safe in S3 keys and URLs, unguessable.
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC, so string order is time order (the GSI sorts on it)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- part planning ---------------------------------------------------------------------


@dataclass(frozen=True)
class PartPlan:
    size: int
    part_size: int
    part_count: int

    def part_bytes(self, part_number: int) -> int:
        """Expected size of one part (1-based); the last one may be smaller."""
        if not 1 <= part_number <= self.part_count:
            raise ValueError(f"part {part_number} is outside 1..{self.part_count}")
        if part_number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)

    def part_range(self, part_number: int) -> tuple[int, int]:
        """(offset, length) of a part in the file."""
        return (part_number - 1) * self.part_size, self.part_bytes(part_number)


def plan_parts(
    size: int, *, preferred_part_bytes: int, min_part_bytes: int, max_parts: int = S3_MAX_PARTS
) -> PartPlan:
    """Split ``size`` bytes into at most ``max_parts`` equal parts (the last one smaller),
    none under ``min_part_bytes``, growing past ``preferred_part_bytes`` only when the part
    count would exceed the limit."""
    if size <= 0:
        raise EmptyUpload()
    needed = math.ceil(size / max_parts)
    part_size = max(preferred_part_bytes, min_part_bytes, needed)
    # Round to a MiB once parts are big, so part sizes read well in logs and clients.
    granularity = 1024 * 1024 if part_size >= 1024 * 1024 else 1
    part_size = math.ceil(part_size / granularity) * granularity
    if part_size > S3_MAX_PART_BYTES:
        raise UploadTooLarge(
            f"A file of {size} bytes needs parts larger than S3's 5 GiB part limit."
        )
    part_size = min(part_size, size)
    return PartPlan(size=size, part_size=part_size, part_count=math.ceil(size / part_size))


# --- what a client may declare ---------------------------------------------------------

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".rf64", ".w64", ".bwf", ".flac", ".ogg", ".oga", ".opus", ".mp3",
        ".aif", ".aiff", ".aifc", ".caf", ".au", ".snd",
    }
)  # fmt: skip
AUDIO_CONTENT_TYPES = frozenset(
    {
        "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac",
        "audio/x-flac", "audio/ogg", "audio/opus", "audio/mpeg", "audio/mp3", "audio/aiff",
        "audio/x-aiff", "audio/x-caf", "audio/basic", "audio/x-w64", "audio/rf64",
    }
)  # fmt: skip
# Browsers send this for files they cannot type; the extension decides then.
GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
EXTENSION_CONTENT_TYPES = {
    ".wav": "audio/wav", ".wave": "audio/wav", ".bwf": "audio/wav", ".rf64": "audio/wav",
    ".w64": "audio/x-w64", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
    ".opus": "audio/ogg", ".mp3": "audio/mpeg", ".aif": "audio/aiff", ".aiff": "audio/aiff",
    ".aifc": "audio/aiff", ".caf": "audio/x-caf", ".au": "audio/basic", ".snd": "audio/basic",
}  # fmt: skip

MAX_FILENAME_CHARS = 200
_UNSAFE_FILENAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\<>:\"|?*]+")


def sanitize_filename(raw: str) -> str:
    """A display name: the last path component, NFC, no control or path characters,
    at most MAX_FILENAME_CHARS characters (keeping the extension)."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME_CHARS.sub("_", name).strip(" .")
    if not name:
        raise InvalidRequest("The filename is empty once path and control characters are removed.")
    if len(name) > MAX_FILENAME_CHARS:
        suffix = PurePosixPath(name).suffix[:16]
        name = name[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return name


def resolve_content_type(filename: str, declared: str | None) -> str:
    """The content type to record, or UnsupportedMediaType. The processor sniffs the real
    format from the bytes; this only keeps obvious non-audio out early."""
    extension = PurePosixPath(filename).suffix.lower()
    content_type = (declared or "").split(";", 1)[0].strip().lower()
    if content_type in GENERIC_CONTENT_TYPES:
        if extension in AUDIO_EXTENSIONS:
            return EXTENSION_CONTENT_TYPES[extension]
        raise UnsupportedMediaType(
            f"{filename!r} does not have an audio file extension "
            f"({', '.join(sorted(AUDIO_EXTENSIONS))})."
        )
    if content_type not in AUDIO_CONTENT_TYPES:
        raise UnsupportedMediaType(f"Content type {content_type!r} is not an accepted audio type.")
    if extension and extension not in AUDIO_EXTENSIONS:
        raise UnsupportedMediaType(f"{filename!r} does not have an audio file extension.")
    return content_type


# --- the record ------------------------------------------------------------------------


@dataclass
class Job:
    job_id: str
    owner: str
    status: JobStatus
    filename: str
    size: int
    content_type: str
    object_key: str
    created_at: str
    updated_at: str
    part_size: int
    part_count: int
    upload_id: str | None = None
    sha256: str | None = None
    progress: int = 0
    error: dict[str, str] | None = None
    summary: dict[str, Any] | None = None
    result_key: str | None = None
    purge_at: int | None = None
    object_etag: str | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    attempts: int = 0
    source: str = "api"  # "api" or "uppy"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def plan(self) -> PartPlan:
        return PartPlan(size=self.size, part_size=self.part_size, part_count=self.part_count)

    def public(self) -> dict[str, Any]:
        """What the API shows the job's owner."""
        view: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status.value,
            "progress": self.progress,
            "filename": self.filename,
            "size": self.size,
            "content_type": self.content_type,
            "part_size": self.part_size,
            "part_count": self.part_count,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.error:
            view["error"] = dict(self.error)
        if self.summary is not None:
            view["summary"] = self.summary
        return view
