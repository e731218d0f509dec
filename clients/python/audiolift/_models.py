"""What the SDK hands back: jobs, upload progress, the part plan."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import ConflictError, JobCancelledError, JobFailedError, WaitTimeoutError

if TYPE_CHECKING:
    from ._client import Client

FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class PartPlan:
    """How the file is split: ``part_count`` parts of ``part_size`` bytes, the last one
    smaller. The server decides it (POST /v1/uploads, GET /v1/jobs/{id})."""

    size: int
    part_size: int
    part_count: int

    def __post_init__(self) -> None:
        if self.size <= 0 or self.part_size <= 0 or self.part_count <= 0:
            raise ValueError(f"not a part plan: {self}")
        if (self.part_count - 1) * self.part_size >= self.size or (
            self.part_count * self.part_size < self.size
        ):
            raise ValueError(f"the parts of {self} do not cover the size exactly")

    def part_bytes(self, part_number: int) -> int:
        if not 1 <= part_number <= self.part_count:
            raise ValueError(f"part {part_number} is outside 1..{self.part_count}")
        if part_number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)

    def part_offset(self, part_number: int) -> int:
        return (part_number - 1) * self.part_size


def _int(document: Mapping[str, Any], name: str) -> int | None:
    value = document.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(document: Mapping[str, Any], name: str) -> float | None:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _str(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class FormatLimits:
    """A format the service analyses, and how much of it one processor run gets through
    (from the benchmarks' own figures; None when the server does not say)."""

    name: str
    label: str
    extensions: tuple[str, ...]
    analysis_mib_per_second: float | None
    max_analysable_bytes: int | None
    usd_per_gib_analysed: float | None = None

    @classmethod
    def from_api(cls, document: Mapping[str, Any]) -> FormatLimits:
        extensions = document.get("extensions")
        return cls(
            name=_str(document, "name"),
            label=_str(document, "label") or _str(document, "name"),
            extensions=tuple(str(e) for e in extensions) if isinstance(extensions, list) else (),
            analysis_mib_per_second=_float(document, "analysis_mib_per_second"),
            max_analysable_bytes=_int(document, "max_analysable_bytes"),
            usd_per_gib_analysed=_float(document, "usd_per_gib_analysed"),
        )


@dataclass(frozen=True)
class AnalysisCost:
    """What analysing costs in Lambda compute, at the deployment's memory size."""

    usd_per_gib_analysed: float | None
    price_per_gb_second: float | None
    price_date: str
    memory_mb: int | None
    architecture: str

    @classmethod
    def from_api(cls, document: Mapping[str, Any]) -> AnalysisCost:
        return cls(
            usd_per_gib_analysed=_float(document, "usd_per_gib_analysed"),
            price_per_gb_second=_float(document, "price_per_gb_second"),
            price_date=_str(document, "price_date"),
            memory_mb=_int(document, "memory_mb"),
            architecture=_str(document, "architecture"),
        )


@dataclass(frozen=True)
class Limits:
    """What a file may be (GET /v1/limits): its size, the part sizes the server plans, the
    formats analysed with the largest file of each that one processor run finishes, and
    the cost per GiB. ``raw`` is the document as sent."""

    max_upload_bytes: int | None
    min_part_bytes: int | None
    max_part_bytes: int | None
    preferred_part_bytes: int | None
    max_parts: int | None
    processor_timeout_seconds: float | None
    formats: tuple[FormatLimits, ...]
    cost: AnalysisCost | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, document: Mapping[str, Any]) -> Limits:
        formats = document.get("formats")
        cost = document.get("cost")
        return cls(
            max_upload_bytes=_int(document, "max_upload_bytes"),
            min_part_bytes=_int(document, "min_part_bytes"),
            max_part_bytes=_int(document, "max_part_bytes"),
            preferred_part_bytes=_int(document, "preferred_part_bytes"),
            max_parts=_int(document, "max_parts"),
            processor_timeout_seconds=_float(document, "processor_timeout_seconds"),
            formats=tuple(FormatLimits.from_api(f) for f in formats or [] if isinstance(f, Mapping))
            if isinstance(formats, list)
            else (),
            cost=AnalysisCost.from_api(cost) if isinstance(cost, Mapping) else None,
            raw=dict(document),
        )


@dataclass(frozen=True)
class UploadProgress:
    """Handed to ``on_progress`` (from the upload's worker threads)."""

    job_id: str
    total_bytes: int
    uploaded_bytes: int  # including parts already in S3 when resuming
    part_count: int
    parts_done: int
    resumed_bytes: int = 0

    @property
    def fraction(self) -> float:
        return self.uploaded_bytes / self.total_bytes if self.total_bytes else 1.0


@dataclass(frozen=True)
class UploadedPart:
    part_number: int
    etag: str
    size: int


@dataclass
class Job:
    """A job as the API last reported it. ``refresh()``, ``wait()``, ``result()`` and
    ``cancel()`` talk to the API through the client that made it."""

    job_id: str
    status: str
    progress: int = 0
    filename: str = ""
    size: int = 0
    content_type: str = ""
    part_size: int = 0
    part_count: int = 0
    created_at: str = ""
    updated_at: str = ""
    sha256: str | None = None  # declared by the uploader
    verified_sha256: str | None = None  # computed by the processor from the stored object
    # "CRC32C" when the upload was created with it: parts carry their CRC32C and S3 checks
    # the whole file's at completion (None: an upload by a client that did not declare it).
    checksum_algorithm: str | None = None
    error: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    _client: Client | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_api(cls, document: Mapping[str, Any], client: Client | None = None) -> Job:
        def text(name: str) -> str:
            value = document.get(name)
            return value if isinstance(value, str) else ""

        def number(name: str) -> int:
            value = document.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        error = document.get("error")
        summary = document.get("summary")
        return cls(
            job_id=text("job_id"),
            status=text("status"),
            progress=number("progress"),
            filename=text("filename"),
            size=number("size"),
            content_type=text("content_type"),
            part_size=number("part_size"),
            part_count=number("part_count"),
            created_at=text("created_at"),
            updated_at=text("updated_at"),
            sha256=text("sha256") or None,
            verified_sha256=text("verified_sha256") or None,
            checksum_algorithm=text("checksum_algorithm") or None,
            error=dict(error) if isinstance(error, Mapping) else None,
            summary=dict(summary) if isinstance(summary, Mapping) else None,
            raw=dict(document),
            _client=client,
        )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def plan(self) -> PartPlan:
        """The server's part plan; the SDK never plans parts itself."""
        if self.size <= 0 or not (self.part_size and self.part_count):
            raise ConflictError(
                f"Job {self.job_id} has no part plan (an upload of unknown size, e.g. from "
                "the browser); it cannot be resumed from here.",
                code="not_resumable",
                status=409,
            )
        return PartPlan(self.size, self.part_size, self.part_count)

    def _require_client(self) -> Client:
        if self._client is None:
            raise RuntimeError("this Job was not made by a Client")
        return self._client

    def refresh(self) -> Job:
        return self._require_client().get_job(self.job_id)

    def result(self) -> Any:
        """The analysis document (GET /v1/jobs/{id}/result)."""
        return self._require_client().result(self.job_id)

    def cancel(self) -> Job:
        return self._require_client().cancel(self.job_id)

    def wait(
        self,
        timeout: float | None = None,
        on_progress: Callable[[Job], None] | None = None,
        *,
        poll_interval: float = 0.5,
        max_poll_interval: float = 5.0,
    ) -> Job:
        """Poll until the job finishes; returns the completed job. Raises JobFailedError
        (the job's error code and message), JobCancelledError, or WaitTimeoutError after
        ``timeout`` seconds (the job itself goes on)."""
        client = self._require_client()
        started = time.monotonic()
        slept = 0.0
        delay = poll_interval
        job = self
        while True:
            job = client.get_job(self.job_id)
            if on_progress is not None:
                on_progress(job)
            if job.status == "completed":
                return job
            if job.status == "failed":
                error = job.error or {}
                code = str(error.get("code") or "job_failed")
                message = str(error.get("message") or "no reason given")
                raise JobFailedError(f"Job {job.job_id} failed: {message}", code=code, job=job)
            if job.status == "cancelled":
                raise JobCancelledError(f"Job {job.job_id} was cancelled.", job=job)
            # Either clock: real time, or the time an injected (test) sleep pretended to pass.
            elapsed = max(time.monotonic() - started, slept)
            if timeout is not None and elapsed >= timeout:
                raise WaitTimeoutError(
                    f"Job {job.job_id} is still {job.status} ({job.progress}%) after "
                    f"{timeout:g} s.",
                    job=job,
                )
            pause = delay if timeout is None else min(delay, max(0.0, timeout - elapsed))
            client.retry.pause(pause)
            slept += pause
            delay = min(delay * 1.5, max_poll_interval)
