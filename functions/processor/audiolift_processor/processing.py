"""One uploaded object -> one analysis, at most once per object version (key + ETag).

The job record is the lock: a conditional claim with a lease. A duplicate delivery finds
the job finished and is acknowledged without work. A delivery that finds a live lease is
NOT acknowledged (``LeaseHeld``): the lease may belong to an invocation that crashed, so
the message goes back to the queue and the delivery after the lease's end takes over.
The lease lasts the invocation's time budget plus a margin, and the budget is at most
``PROCESSOR_TIMEOUT_SECONDS``, the setting the queue's visibility timeout derives from.

An analysis longer than one invocation continues in the next (``continuation``): every
``checkpoint_interval_seconds`` and when the time left runs low, the analysis is saved
as a checkpoint the job record names under the lease; at the deadline the lease is
released and a hand-on message queued. Whoever claims the job next -- that message's
invocation, a redelivery after a crash, the sweeper's re-drive -- continues from the
record's latest checkpoint. A message older than that checkpoint, finding the job
leased, is stale and acknowledged: the sequence number, not the message, decides.
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
    ChecksumMismatch,
    Conflict,
    CorruptAudio,
    JobCancelled,
    NotFound,
    ObjectMissing,
    ProcessingFailure,
    ProcessingTimeout,
    UnsupportedFormat,
)
from audiolift_core.job_events import JobEvents
from audiolift_core.jobs import Job, JobStatus
from audiolift_core.jobs_table import ClaimRefused, JobsTable
from audiolift_core.settings import ProcessorSettings
from audiolift_core.storage import UploadStore, result_key
from aws_lambda_powertools.metrics import MetricUnit

from .events import ObjectRef
from .observability import log, processor_metrics
from .resumable_sha256 import available as sha256_resumable

if TYPE_CHECKING:
    from audiolift_core.processing_queue import ProcessingQueue
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_s3 import S3Client

    from .continuation import Checkpoint
    from .decode import BlockDone, Resume
    from .s3reader import RetryPolicy, S3RangeReader

LEASE_MARGIN_SECONDS = 30.0
PHASE_ANALYZING = "analyzing"
# Removed from the record when the job ends: they describe a running analysis.
_RUNNING_FIELDS = (
    "lease_token",
    "lease_expires_at",
    "checkpoint",
    "phase",
    "fanout_tasks",
    "fanout_done",
)


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    IGNORED = "ignored"
    BUSY = "busy"  # held by a live lease elsewhere (direct events; SQS: LeaseHeld)
    CONTINUED = "continued"  # checkpointed and handed on to the next invocation


class LeaseHeld(Exception):
    """Another invocation holds the job's lease, for ``seconds_left`` more: this message
    must come back (not be deleted) in case that invocation has crashed."""

    def __init__(self, job_id: str, seconds_left: float):
        super().__init__(f"job {job_id} is leased for {seconds_left:.0f} s more")
        self.job_id = job_id
        self.seconds_left = seconds_left


@dataclass
class Deadline:
    """The invocation's time budget: what the Lambda context reports, and never more
    than the configured timeout (the lease, and so the visibility timeout, rely on it)."""

    context: LambdaContext | None
    margin_seconds: float
    budget_seconds: float
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    def remaining(self) -> float:
        remaining = self.budget_seconds - (time.monotonic() - self.started)
        if self.context is not None:
            remaining = min(remaining, self.context.get_remaining_time_in_millis() / 1000.0)
        return remaining

    def check(self) -> None:
        if self.remaining() < self.margin_seconds:
            raise ProcessingTimeout(
                "The analysis did not finish within the function's time limit; "
                "the recording may be too long for the configured timeout."
            )


class HandedOn(Exception):
    """The analysis was checkpointed and handed on: this invocation's part is done."""

    def __init__(self, seq: int):
        super().__init__(f"handed on at checkpoint {seq}")
        self.seq = seq


Analyze = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class StoredObject:
    """The object version an event announced, as S3 reports it now."""

    etag: str
    size: int


_MISSING = StoredObject(etag="", size=0)


@dataclass(frozen=True)
class Claim:
    """A job this invocation holds the processing lease of."""

    job: Job
    lease_token: str
    stored: StoredObject
    deadline: Deadline
    ref: ObjectRef


class Processor:
    def __init__(
        self,
        settings: ProcessorSettings,
        table: JobsTable,
        store: UploadStore,
        reader_s3: S3Client,
        *,
        analyze: Analyze | None = None,
        reader_retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        events: JobEvents | None = None,
        hand_on: ProcessingQueue | None = None,
    ):
        """``reader_s3`` is the client the range reader GETs with: the reader retries
        every failed range itself, so botocore must make one attempt per call on it
        (``s3_client(CallLimits(total_max_attempts=1))``). ``analyze`` replaces
        ``decode.analyze_stream`` (same signature). ``hand_on``: where an analysis that
        outlasts the invocation is handed on (None: it ends failed, code timeout)."""
        self.settings = settings
        self.hand_on = hand_on
        self.events = events  # None: no job events are published
        self.table = table
        self.store = store
        self.reader_s3 = reader_s3
        self._analyze_fn = analyze
        self._reader_retry = reader_retry  # None: the reader's default
        self._clock = clock

    # --- the per-object function ------------------------------------------------------

    def process(
        self, ref: ObjectRef, *, context: LambdaContext | None = None, receive_count: int = 1
    ) -> Outcome:
        """Analyze one object. Returns how it ended; raises for failures worth a retry
        (the message then comes back, and ends in the DLQ after the last try) and
        ``LeaseHeld`` when another invocation holds the job (the message must come back
        after the lease: that invocation may have crashed)."""
        found = self._look_up(ref)
        if isinstance(found, Outcome):
            return found
        job, stored = found
        deadline = Deadline(
            context,
            self.settings.deadline_margin_seconds,
            self.settings.processor_timeout_seconds,
        )
        if ref.part is not None or ref.merge:
            from .fanout import FanOut

            return FanOut(self).process(ref, job, stored, deadline, receive_count)
        claimed = self._claim(job, stored or _MISSING, deadline, ref)
        if isinstance(claimed, Outcome):
            return claimed
        if stored is None:
            # Deleted before it could be read: nothing will ever bring it back.
            self._fail(job.job_id, claimed.lease_token, ObjectMissing())
            return Outcome.FAILED
        return self._run(claimed, receive_count)

    # --- look-up, claim, run ----------------------------------------------------------

    def _look_up(self, ref: ObjectRef) -> tuple[Job, StoredObject | None] | Outcome:
        """The job the object belongs to and the object's version (None: the object is
        gone), or how the event ends without work (not ours, no job, already finished)."""
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
            self.discard(job_files(job))  # e.g. cancelled between invocations
            return self._already_finished(job, ref)
        try:
            head = self.store.head(ref.key)
        except NotFound:
            log.warning("object is gone; the job fails", extra=_ref_log(ref, job_id))
            return job, None
        etag = str(head.get("ETag", "")).strip('"')
        return job, StoredObject(etag=etag, size=int(head.get("ContentLength", 0)))

    def _claim(
        self, job: Job, stored: StoredObject, deadline: Deadline, ref: ObjectRef
    ) -> Claim | Outcome:
        lease_token = uuid.uuid4().hex
        try:
            claimed = self.table.claim(
                job.job_id,
                object_etag=stored.etag,
                lease_token=lease_token,
                lease_seconds=deadline.remaining() + LEASE_MARGIN_SECONDS,
                # continuing: progress keeps rising across invocations
                keep_progress=job.checkpoint is not None and job.object_etag == stored.etag,
                phase=PHASE_ANALYZING,
                message_checkpoint=ref.checkpoint,
            )
        except ClaimRefused as refused:
            return self._claim_refused(refused, ref)
        return Claim(claimed, lease_token, stored, deadline, ref)

    def _run(self, claim: Claim, receive_count: int) -> Outcome:
        """Analyze a claimed job and end it (or hand it on). The error policy: a
        cancellation stops quietly, a ProcessingFailure ends the job ``failed`` at once,
        anything else is retried (the lease released for the next delivery, which
        continues from the last checkpoint) until the last delivery, which records the
        failure before the message goes to the DLQ."""
        job_id = claim.job.job_id
        log.info(
            "analysis started",
            extra={
                "job_id": job_id,
                "size": claim.stored.size,
                "attempt": claim.job.attempts,
                "checkpoint": claim.job.checkpoint_seq,
            },
        )
        saver = Checkpointer(self, claim, JobLease(self, claim), claim.job.checkpoint)
        try:
            if claim.stored.size > self.settings.max_object_bytes:
                raise AudioTooLarge(
                    f"The file is {claim.stored.size} bytes; this service analyzes at most "
                    f"{self.settings.max_object_bytes}."
                )
            if self._fans_out(claim):
                from .fanout import FanOut

                fanned_out = FanOut(self).plan(claim)
                if fanned_out is not None:
                    return fanned_out
            document, sha256 = self._run_analysis(claim, saver)
            return self._complete(claim, document, sha256, saver.files())
        except HandedOn as handed:
            log.info("analysis handed on", extra={"job_id": job_id, "checkpoint": handed.seq})
            return Outcome.CONTINUED
        except JobCancelled:
            log.info("job cancelled during analysis", extra={"job_id": job_id})
            self.discard(saver.files())
            return Outcome.CANCELLED
        except ProcessingFailure as failure:
            self._fail(job_id, claim.lease_token, failure, saver.files())
            return Outcome.FAILED
        except Exception as error:
            if receive_count >= self.settings.max_receive_count:
                # The last delivery: record the failure, then let the message go to the DLQ.
                given_up = _give_up(error, receive_count)
                self._fail(job_id, claim.lease_token, given_up, saver.files())
            else:
                self._release(job_id, claim.lease_token)
            log.exception(
                "analysis failed; the message will be retried",
                extra={"job_id": job_id, "receive_count": receive_count},
            )
            raise

    def _fans_out(self, claim: Claim) -> bool:
        """Worth splitting into parallel parts (if the file's format allows): large
        enough, a queue for the parts' messages, a hash state that can be saved, and not
        already half analysed as a whole."""
        settings = self.settings
        return (
            0 < settings.fanout_min_bytes <= claim.stored.size
            and self.hand_on is not None
            and sha256_resumable()
            and claim.job.checkpoint is None
        )

    # --- steps ------------------------------------------------------------------------

    def _run_analysis(self, claim: Claim, saver: Checkpointer) -> tuple[dict[str, Any], str]:
        """The analysis document and the object's SHA-256 (hashed as the decoder reads,
        continued from the checkpoint's hash when there is one; a declared hash that
        differs ends the job ``checksum_mismatch``, no result)."""
        from .decode import ResumeMismatch, analyze_stream
        from .s3reader import S3RangeReader

        analyze = self._analyze_fn or analyze_stream
        settings = self.settings
        deadline = claim.deadline
        checkpoint = saver.load()
        last_beat = self._clock()

        def on_progress(frames_done: int, frames_total: int | None) -> None:
            nonlocal last_beat
            saver.progress = int(100 * frames_done / frames_total) if frames_total else 0
            now = self._clock()
            if now - last_beat < settings.progress_interval_seconds:
                return
            last_beat = now
            # The lease lasts as long as this invocation can, plus a margin: a crashed
            # invocation's job is free again by the time SQS redelivers its message.
            saver.lease.beat(
                progress=saver.progress,
                lease_seconds=deadline.remaining() + LEASE_MARGIN_SECONDS,
            )

        with S3RangeReader(
            self.reader_s3,
            self.store.bucket,
            claim.job.object_key,
            etag=claim.stored.etag,
            size=claim.stored.size,
            chunk_size=checkpoint.chunk_size if checkpoint else settings.read_chunk_bytes,
            cache_chunks=settings.cache_chunks,
            read_ahead=settings.read_ahead_chunks,
            retry=self._reader_retry,
            hash_state=checkpoint.hashed if checkpoint else None,
        ) as reader:
            saver.reader = reader
            resume = checkpoint.resume if checkpoint else None
            try:
                try:
                    document = self._analyze(analyze, reader, claim, resume, on_progress, saver)
                except ResumeMismatch as mismatch:
                    # Never seen with libsndfile's decoders; exact all the same: start over.
                    log.warning(
                        "checkpoint does not fit the decoder; analysing from the start",
                        extra={"job_id": claim.job.job_id, "why": str(mismatch)},
                    )
                    reader.seek(0)
                    document = self._analyze(analyze, reader, claim, None, on_progress, saver)
                reader.raise_if_failed()
            except (UnsupportedFormat, CorruptAudio):
                # Bytes damaged on the way look like bad audio: with a declared hash, a
                # mismatch is the failure to report. If the rest cannot be hashed (time,
                # storage), the decoder's failure stands.
                if claim.job.sha256:
                    digest = None
                    with contextlib.suppress(AudioliftError):
                        digest = reader.sha256(between_chunks=deadline.check)
                    if digest is not None:
                        _verify(claim.job, digest)
                raise
            sha256 = reader.sha256(between_chunks=deadline.check)
        _verify(claim.job, sha256)
        return document, sha256

    @staticmethod
    def _analyze(
        analyze: Analyze,
        reader: S3RangeReader,
        claim: Claim,
        resume: Resume | None,
        on_progress: Callable[[int, int | None], None],
        saver: Checkpointer,
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {"on_block": saver.on_block}
        if resume is not None:
            extra["resume"] = resume
        return analyze(reader, size=claim.stored.size, on_progress=on_progress, **extra)

    def _complete(
        self, claim: Claim, document: dict[str, Any], sha256: str, leftovers: list[str]
    ) -> Outcome:
        """Store the result document and end the job completed; ``leftovers``: the
        analysis's saved states, deleted once the job ended."""
        from .analysis import summarize

        job, stored = claim.job, claim.stored
        key = result_key(self.settings.storage.result_prefix, job.job_id)
        full = {
            "job_id": job.job_id,
            "filename": job.filename,
            "source": {
                "key": job.object_key,
                "etag": stored.etag,
                "size": stored.size,
                "sha256": sha256,
            },
            "analyzed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **document,
        }
        self.store.put_json(key, full)  # strict JSON: allow_nan=False
        try:
            finished = self.table.transition(
                job.job_id,
                JobStatus.COMPLETED,
                lease_token=claim.lease_token,
                set_fields={
                    "summary": summarize(document),
                    "result_key": key,
                    "progress": 100,
                    "verified_sha256": sha256,
                },
                remove_fields=_RUNNING_FIELDS,
            )
        except Conflict:
            current = self.table.get(job.job_id)
            if current is not None and current.status is JobStatus.CANCELLED:
                self.store.delete(key)  # cancelled at the last moment: keep no result
                self.discard(leftovers)
                return Outcome.CANCELLED
            raise
        self.discard(leftovers)
        self._announce(finished)
        processor_metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=1)
        # A published metric name (the dashboard and alarms read it): spelled as it was.
        processor_metrics.add_metric(name="BytesAnalysed", unit=MetricUnit.Bytes, value=stored.size)
        log.info("analysis completed", extra={"job_id": job.job_id, "size": stored.size})
        return Outcome.COMPLETED

    def _fail(
        self,
        job_id: str,
        lease_token: str,
        failure: AudioliftError,
        leftovers: list[str] | None = None,
        *,
        part: int | None = None,
    ) -> Job | None:
        """End the job failed (under the lease of the job, or of one ``part`` of a
        fanned-out analysis); None when it had ended already."""
        try:
            finished = self.table.transition(
                job_id,
                JobStatus.FAILED,
                lease_token=lease_token,
                part=part,
                set_fields={"error": {"code": failure.code, "message": failure.message}},
                # a fanned-out analysis's parts are kept, for the others to see it ended
                remove_fields=_RUNNING_FIELDS if part is None else ("lease_token", "phase"),
            )
        except (Conflict, NotFound):
            log.warning("could not record the failure: the job moved on", extra={"job_id": job_id})
            return None
        self.discard(leftovers or [])
        self._announce(finished)
        processor_metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        log.warning(
            "analysis failed",
            extra={"job_id": job_id, "code": failure.code, "reason": failure.message},
        )
        return finished

    def _announce(self, job: Job) -> None:
        if self.events is not None:
            self.events.publish(job)  # logs and counts its own failures; never raises

    def discard(self, keys: list[str]) -> None:
        """Delete saved analysis states no one will use (a lifecycle rule removes any
        missed)."""
        if keys:
            with contextlib.suppress(AudioliftError):
                self.store.delete(*keys)

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
        if job.status is JobStatus.PROCESSING and (job.fanout or {}).get("sent"):
            # Analysed in parts now: their messages carry the job (the sweeper re-drives
            # a part whose message was lost).
            log.info(
                "announcement of a job analysed in parts; acknowledged",
                extra=_ref_log(ref, job.job_id),
            )
            return Outcome.DUPLICATE
        if job.status is JobStatus.PROCESSING and ref.checkpoint < job.checkpoint_seq:
            # The analysis moved past what this message announces (a duplicated hand-on,
            # or the object's announcement of an analysis since checkpointed): the lease
            # holder carries it on (if it dies, its own message comes back), or the
            # message of a later hand-on does.
            log.info(
                "stale message for a job that continued; acknowledged",
                extra={**_ref_log(ref, job.job_id), "checkpoint": job.checkpoint_seq},
            )
            return Outcome.DUPLICATE
        if job.status is JobStatus.PROCESSING:
            # A live lease, perhaps of an invocation that crashed: not a duplicate to
            # drop. Its message may be this one, so it must come back.
            seconds_left = max(0.0, (job.lease_expires_at or 0.0) - time.time())
            log.info(
                "job is leased by another invocation; the message comes back later",
                extra={**_ref_log(ref, job.job_id), "lease_seconds_left": seconds_left},
            )
            raise LeaseHeld(job.job_id, seconds_left)
        return self._already_finished(job, ref)


def job_files(job: Job) -> list[str]:
    """Every saved state the record names: the checkpoint of a whole-file analysis, and
    each part's checkpoint and result of a fanned-out one."""
    records = [job.checkpoint]
    for task in (job.fanout_tasks or {}).values():
        records += [task.get("checkpoint"), task.get("result")]
    return [str(record["key"]) for record in records if record and record.get("key")]


def _ref_log(ref: ObjectRef, job_id: str | None = None) -> dict[str, Any]:
    return {"bucket": ref.bucket, "key": ref.key, "etag": ref.etag, "job_id": job_id}


def _verify(job: Job, sha256: str) -> None:
    declared = (job.sha256 or "").strip().lower()
    if declared and declared != sha256:
        raise ChecksumMismatch(
            f"The file's SHA-256 is {sha256}, not the {declared} declared for the upload: "
            "its bytes changed on the way. Upload it again."
        )


def _give_up(error: BaseException, deliveries: int) -> ProcessingFailure:
    if isinstance(error, ProcessingFailure):
        return error
    # The reason as a code, never the error's text: that may name buckets, keys or hosts.
    reason = error.code if isinstance(error, AudioliftError) else type(error).__name__
    return ProcessingFailure(
        f"The analysis failed {deliveries} times in a row, once per delivery, and was "
        f"abandoned (last error: {reason})."
    )


class JobLease:
    """The lease of a whole-file analysis: its heartbeats, checkpoints and hand-ons are
    writes to the job record's own fields."""

    def __init__(self, processor: Processor, claim: Claim):
        self.processor = processor
        self.claim = claim

    def beat(
        self, *, progress: int, lease_seconds: float, checkpoint: dict[str, Any] | None = None
    ) -> None:
        self.processor.table.heartbeat(
            self.claim.job.job_id,
            lease_token=self.claim.lease_token,
            progress=progress,
            lease_seconds=lease_seconds,
            set_fields={"checkpoint": checkpoint} if checkpoint else None,
            # progress was made: the sweeper's count of fruitless re-drives starts over
            remove_fields=("redrives",) if checkpoint else (),
        )

    def hand_on(self, seq: int) -> None:
        queue, ref, job_id = self.processor.hand_on, self.claim.ref, self.claim.job.job_id
        assert queue is not None
        queue.continue_from(
            job_id=job_id, bucket=ref.bucket, key=ref.key, etag=ref.etag, checkpoint=seq
        )
        self.processor.table.mark_handed_on(job_id, seq)

    def checkpoint_key(self, seq: int) -> str:
        from .continuation import checkpoint_key

        return checkpoint_key(self.claim.job.job_id, seq)


class Lease(Protocol):
    """What a `Checkpointer` writes through: `JobLease`, or a part's (`fanout`)."""

    def beat(
        self, *, progress: int, lease_seconds: float, checkpoint: dict[str, Any] | None = None
    ) -> None: ...

    def hand_on(self, seq: int) -> None: ...

    def checkpoint_key(self, seq: int) -> str: ...


class Checkpointer:
    """Saves the analysis every ``checkpoint_interval_seconds`` and hands it on when the
    invocation's time runs low, through ``lease``; knows the latest checkpoint
    (``record``, as the job record names it)."""

    def __init__(
        self,
        processor: Processor,
        claim: Claim,
        lease: Lease,
        record: dict[str, Any] | None,
    ):
        self.processor = processor
        self.claim = claim
        self.lease = lease
        self.record = record
        self.reader: S3RangeReader | None = None
        self.progress = claim.job.progress
        self._last_saved = processor._clock()
        # Continuation needs a queue to hand on to and a hash state that can be saved.
        self.enabled = processor.hand_on is not None and sha256_resumable()

    @property
    def seq(self) -> int:
        return int(self.record["seq"]) if self.record else 0

    def files(self) -> list[str]:
        """The saved state to delete when the analysis ends."""
        return [str(self.record["key"])] if self.record and self.record.get("key") else []

    def load(self) -> Checkpoint | None:
        """The checkpoint to continue from, if the record names a usable one."""
        from .continuation import Checkpoint, UnusableCheckpoint

        record, job = self.record, self.claim.job
        if not record or not self.enabled:
            return None
        try:
            checkpoint = Checkpoint.decode(
                self.processor.store.get_bytes(str(record["key"]), what="Reading the checkpoint")
            )
        except (NotFound, UnusableCheckpoint) as error:
            log.warning(
                "checkpoint unusable; analysing from the start",
                extra={"job_id": job.job_id, "why": str(error)},
            )
            return None
        if checkpoint.etag != self.claim.stored.etag or checkpoint.seq != self.seq:
            return None  # of an object since replaced (or not the one the record names)
        return checkpoint

    def on_block(self, block: BlockDone) -> None:
        """After each analysed block: save, or save and hand on, when it is time."""
        # What is left after the last block (the document, the hash of a tail the decoder
        # skipped) takes far less than the margin: finishing beats a hand-on.
        self.when_due(block.snapshot, last=block.last)

    def when_due(self, snapshot: Callable[[], Resume | None], *, last: bool = False) -> None:
        """Save (``snapshot()``: the analysis to continue from; None: only the hash)
        when the interval is up, and hand on (raising HandedOn) when the time is."""
        processor, deadline = self.processor, self.claim.deadline
        if not self.enabled:
            deadline.check()  # no one to hand on to: ProcessingTimeout when the time is up
            return
        if last:
            return
        if deadline.remaining() < deadline.margin_seconds:
            # Released before the message goes out, so its delivery finds the job free;
            # marked handed on after it went out, so a crash in between leaves the job to
            # this invocation's own message (older messages are stale only once marked).
            seq = self.save(snapshot(), release=True)
            self.lease.hand_on(seq)
            raise HandedOn(seq)
        interval = processor.settings.checkpoint_interval_seconds
        if interval > 0 and processor._clock() - self._last_saved >= interval:
            self.save(snapshot(), release=False)

    def save(self, resume: Resume | None, *, release: bool) -> int:
        """Store a checkpoint and name it in the job record (under the lease; released
        too when ``release``); the previous one is deleted once it is not named."""
        from .continuation import Checkpoint, record_of

        assert self.reader is not None
        processor, claim = self.processor, self.claim
        seq = self.seq + 1
        checkpoint = Checkpoint(
            seq=seq,
            etag=claim.stored.etag,
            chunk_size=self.reader.chunk_size,
            resume=resume,
            hashed=self.reader.hash_state(),
        )
        key = self.lease.checkpoint_key(seq)
        processor.store.put_bytes(key, checkpoint.encode(), what="Storing the checkpoint")
        lease = -1.0 if release else claim.deadline.remaining() + LEASE_MARGIN_SECONDS
        try:
            self.lease.beat(
                progress=self.progress, lease_seconds=lease, checkpoint=record_of(checkpoint, key)
            )
        except AudioliftError:
            processor.store.delete(key)  # cancelled or taken over: nobody will use it
            raise
        previous = self.files()
        self.record = record_of(checkpoint, key)
        processor.discard(previous)
        self._last_saved = processor._clock()
        processor_metrics.add_metric(name="Checkpoints", unit=MetricUnit.Count, value=1)
        return seq
