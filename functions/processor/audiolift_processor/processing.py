"""One uploaded object -> one analysis, at most once per object version (key + ETag).

The job record is the lock: a conditional claim with a lease. A duplicate delivery finds
the job completed (or held by a live lease) and is acknowledged without work; a crashed
invocation's lease runs out and the next delivery takes over.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from audiolift_core.errors import (
    AudioliftError,
    AudioTooLarge,
    Conflict,
    JobCancelled,
    NotFound,
    ProcessingFailure,
    ProcessingTimeout,
)
from audiolift_core.job_events import JobEvents
from audiolift_core.jobs import Job, JobStatus
from audiolift_core.jobs_table import ClaimRefused, JobsTable
from audiolift_core.observability import logger, metrics
from audiolift_core.settings import ProcessorSettings
from audiolift_core.storage import UploadStore, result_key
from aws_lambda_powertools.metrics import MetricUnit

from .events import ObjectRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logger("audiolift-processor")
processor_metrics = metrics("audiolift-processor")

# Without a Lambda context (tests, direct calls) assume Lambda's longest timeout.
DEFAULT_BUDGET_SECONDS = 900.0
LEASE_MARGIN_SECONDS = 30.0


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    IGNORED = "ignored"


@dataclass
class Deadline:
    """The invocation's time budget, as the Lambda context reports it."""

    context: LambdaContext | None
    margin_seconds: float
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    def remaining(self) -> float:
        if self.context is not None:
            return self.context.get_remaining_time_in_millis() / 1000.0
        return DEFAULT_BUDGET_SECONDS - (time.monotonic() - self.started)

    def check(self) -> None:
        if self.remaining() < self.margin_seconds:
            raise ProcessingTimeout(
                "The analysis did not finish within the function's time limit; "
                "the recording may be too long for the configured timeout."
            )


Analyze = Callable[..., dict[str, Any]]


class Processor:
    def __init__(
        self,
        settings: ProcessorSettings,
        table: JobsTable,
        store: UploadStore,
        s3: S3Client,
        *,
        analyze: Analyze | None = None,
        reader_retry: Any = None,
        clock: Callable[[], float] = time.monotonic,
        events: JobEvents | None = None,
    ):
        self.settings = settings
        self.events = events  # None: no job events are published
        self.table = table
        self.store = store
        self.s3 = s3
        self._analyze = analyze
        self._reader_retry = reader_retry  # an s3reader.RetryPolicy; None: its default
        self._clock = clock

    # --- the per-object function ------------------------------------------------------

    def process(
        self, ref: ObjectRef, *, context: LambdaContext | None = None, receive_count: int = 1
    ) -> Outcome:
        """Analyse one object. Returns how it ended; raises only for failures worth a
        retry (the message then comes back, and ends in the DLQ after the last try)."""
        storage = self.settings.storage
        if ref.bucket != storage.upload_bucket or not ref.key.startswith(storage.upload_prefix):
            log.warning("object outside the uploads prefix; ignored", extra=_ref_log(ref))
            return Outcome.IGNORED
        job_id = ref.key[len(storage.upload_prefix) :]
        job = self.table.get(job_id) if job_id and "/" not in job_id else None
        if job is None:
            log.warning("no job for this object; acknowledged", extra=_ref_log(ref))
            return Outcome.IGNORED
        if job.status.finished:
            return self._already_finished(job, ref)

        try:
            head = self.store.head(ref.key)
        except NotFound:
            log.warning("object is gone; acknowledged", extra=_ref_log(ref, job_id))
            return Outcome.IGNORED
        etag = str(head.get("ETag", "")).strip('"')
        size = int(head.get("ContentLength", 0))

        deadline = Deadline(context, self.settings.deadline_margin_seconds)
        lease_token = uuid.uuid4().hex
        lease_seconds = deadline.remaining() + LEASE_MARGIN_SECONDS
        try:
            job = self.table.claim(
                job_id, object_etag=etag, lease_token=lease_token, lease_seconds=lease_seconds
            )
        except ClaimRefused as refused:
            return self._claim_refused(refused, ref)

        log.info(
            "analysis started",
            extra={**_ref_log(ref, job_id), "size": size, "attempt": job.attempts},
        )
        try:
            if size > self.settings.max_object_bytes:
                raise AudioTooLarge(
                    f"The file is {size} bytes; this service analyses at most "
                    f"{self.settings.max_object_bytes}."
                )
            document = self._analyse(job, etag, size, lease_token, deadline)
            return self._complete(job, etag, size, lease_token, document)
        except JobCancelled:
            log.info("job cancelled during analysis", extra={"job_id": job_id})
            return Outcome.CANCELLED
        except ProcessingFailure as failure:
            self._fail(job_id, lease_token, failure)
            return Outcome.FAILED
        except Exception as error:
            if receive_count >= self.settings.max_receive_count:
                # The last delivery: record the failure, then let the message go to the DLQ.
                self._fail(job_id, lease_token, _give_up(error, receive_count))
            else:
                self._release(job_id, lease_token)
            log.exception(
                "analysis failed; the message will be retried",
                extra={"job_id": job_id, "receive_count": receive_count},
            )
            raise

    # --- steps ------------------------------------------------------------------------

    def _analyse(
        self,
        job: Job,
        etag: str,
        size: int,
        lease_token: str,
        deadline: Deadline,
    ) -> dict[str, Any]:
        from .decode import analyze_stream  # numpy/soundfile: only when there is work
        from .s3reader import S3RangeReader

        analyze = self._analyze or analyze_stream
        settings = self.settings
        last_beat = self._clock()

        def on_progress(frames_done: int, frames_total: int | None) -> None:
            nonlocal last_beat
            deadline.check()
            now = self._clock()
            if now - last_beat < settings.progress_interval_seconds:
                return
            last_beat = now
            percent = int(100 * frames_done / frames_total) if frames_total else 0
            # The lease lasts as long as this invocation can, plus a margin: a crashed
            # invocation's job is free again by the time SQS redelivers its message.
            self.table.heartbeat(
                job.job_id,
                lease_token=lease_token,
                progress=percent,
                lease_seconds=deadline.remaining() + LEASE_MARGIN_SECONDS,
            )

        with S3RangeReader(
            self.s3,
            self.store.bucket,
            job.object_key,
            etag=etag,
            size=size,
            chunk_size=settings.read_chunk_bytes,
            cache_chunks=settings.cache_chunks,
            read_ahead=settings.read_ahead_chunks,
            retry=self._reader_retry,
        ) as reader:
            document = analyze(reader, size=size, on_progress=on_progress)
            reader.raise_if_failed()
        return document

    def _complete(
        self, job: Job, etag: str, size: int, lease_token: str, document: dict[str, Any]
    ) -> Outcome:
        from .analysis import summarize

        key = result_key(self.settings.storage.result_prefix, job.job_id)
        full = {
            "job_id": job.job_id,
            "filename": job.filename,
            "object": {"key": job.object_key, "etag": etag, "size": size},
            "analysed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **document,
        }
        self.store.put_json(key, full)  # strict JSON: allow_nan=False
        try:
            finished = self.table.transition(
                job.job_id,
                JobStatus.COMPLETED,
                lease_token=lease_token,
                set_fields={"summary": summarize(document), "result_key": key, "progress": 100},
                remove_fields=("lease_token", "lease_expires_at"),
            )
        except Conflict:
            current = self.table.get(job.job_id)
            if current is not None and current.status is JobStatus.CANCELLED:
                self.store.delete(key)  # cancelled at the last moment: keep no result
                return Outcome.CANCELLED
            raise
        self._announce(finished)
        processor_metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=1)
        processor_metrics.add_metric(name="BytesAnalysed", unit=MetricUnit.Bytes, value=size)
        log.info("analysis completed", extra={"job_id": job.job_id, "size": size})
        return Outcome.COMPLETED

    def _fail(self, job_id: str, lease_token: str, failure: AudioliftError) -> None:
        try:
            finished = self.table.transition(
                job_id,
                JobStatus.FAILED,
                lease_token=lease_token,
                set_fields={"error": {"code": failure.code, "message": failure.message}},
                remove_fields=("lease_token", "lease_expires_at"),
            )
        except (Conflict, NotFound):
            log.warning("could not record the failure: the job moved on", extra={"job_id": job_id})
            return
        self._announce(finished)
        processor_metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        log.warning(
            "analysis failed",
            extra={"job_id": job_id, "code": failure.code, "reason": failure.message},
        )

    def _announce(self, job: Job) -> None:
        if self.events is not None:
            self.events.publish(job)  # logs and counts its own failures; never raises

    def _release(self, job_id: str, lease_token: str) -> None:
        """Let the next delivery claim at once instead of waiting for the lease."""
        with contextlib.suppress(AudioliftError):  # cancelled or taken over: nothing to do
            self.table.heartbeat(job_id, lease_token=lease_token, progress=0, lease_seconds=-1)

    def _already_finished(self, job: Job, ref: ObjectRef) -> Outcome:
        if job.status is JobStatus.COMPLETED:
            log.info("duplicate event for a completed job", extra=_ref_log(ref, job.job_id))
            return Outcome.DUPLICATE
        if job.status is JobStatus.CANCELLED:
            return Outcome.CANCELLED
        return Outcome.DUPLICATE  # failed: a redelivery would fail the same way

    def _claim_refused(self, refused: ClaimRefused, ref: ObjectRef) -> Outcome:
        job = refused.job
        if job is None:
            return Outcome.IGNORED
        if job.status is JobStatus.PROCESSING:
            # A live lease: another invocation is on it. Acknowledge; should that one
            # crash, its own message comes back after the visibility timeout.
            log.info("job is being processed elsewhere", extra=_ref_log(ref, job.job_id))
            return Outcome.DUPLICATE
        return self._already_finished(job, ref)


def _ref_log(ref: ObjectRef, job_id: str | None = None) -> dict[str, Any]:
    return {"bucket": ref.bucket, "key": ref.key, "etag": ref.etag, "job_id": job_id}


def _give_up(error: BaseException, attempts: int) -> ProcessingFailure:
    if isinstance(error, ProcessingFailure):
        return error
    failure = ProcessingFailure(
        f"The analysis failed {attempts} times in a row and was abandoned "
        f"({type(error).__name__}: {str(error)[:200] or 'no detail'})."
    )
    return failure
