"""The job: its states, the legal moves between them, and its record.

Pure code: no AWS here. ``jobs_table`` turns each transition into a DynamoDB conditional
write built from ``ALLOWED_SOURCES``, so the rules live in one place. Part planning lives
in ``parts``, the upload policy (extensions, content types, filenames) in ``uploads``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .parts import PartPlan


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
    sha256: str | None = None  # declared by the client (hex)
    verified_sha256: str | None = None  # computed by the processor from the object (hex)
    # Declared at creation ("CRC32C"): the parts carry it and S3 checked the whole object's.
    checksum_algorithm: str | None = None
    progress: int = 0
    error: dict[str, str] | None = None
    summary: dict[str, Any] | None = None
    result_key: str | None = None
    purge_at: int | None = None
    object_etag: str | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    attempts: int = 0  # processor invocations that claimed the job
    # While processing: "analyzing" (or "merging", when partial analyses are joined).
    phase: str | None = None
    # The analysis saved so far, while processing: {"key", "seq", "frames"}.
    checkpoint: dict[str, Any] | None = None
    # A large PCM file analysed in parallel parts (the fan-out): the plan
    # {"etag", "frames", "ranges": [[start, end], ...], "sent"}; per part (each frame
    # range, then the whole file's hash) its lease, checkpoint, progress and result; and
    # the numbers of the parts done (a set: a part is counted once).
    fanout: dict[str, Any] | None = None
    fanout_tasks: dict[str, Any] | None = None
    fanout_done: list[int] | None = None
    source: str = "api"  # "api" or "uppy"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def invocations(self) -> int:
        """Processor invocations the analysis has used (each claims the job once)."""
        return self.attempts

    @property
    def parts_total(self) -> int | None:
        """Parts of a fanned-out analysis: its frame ranges and the whole file's hash."""
        if not self.fanout:
            return None
        return len(self.fanout.get("ranges", [])) + 1

    @property
    def parts_done(self) -> int | None:
        if not self.fanout:
            return None
        if self.status is JobStatus.COMPLETED:
            return self.parts_total
        return len(self.fanout_done or [])

    @property
    def overall_progress(self) -> int:
        """The progress to show: a fanned-out analysis's, from its ranges' (by length)."""
        ranges = (self.fanout or {}).get("ranges")
        if not ranges or not self.fanout_tasks or self.status is not JobStatus.PROCESSING:
            return self.progress
        done = set(self.fanout_done or [])
        covered = total = 0.0
        for index, (start, end) in enumerate(ranges):
            task = self.fanout_tasks.get(str(index)) or {}
            share = 100.0 if index in done else float(task.get("progress", 0))
            covered += (end - start) * share
            total += end - start
        return int(covered / total) if total else self.progress

    @property
    def checkpoint_seq(self) -> int:
        return int(self.checkpoint["seq"]) if self.checkpoint else 0

    @property
    def plan(self) -> PartPlan:
        return PartPlan(size=self.size, part_size=self.part_size, part_count=self.part_count)
