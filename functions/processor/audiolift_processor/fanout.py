"""A large PCM file analysed in parallel parts, each by its own invocation, then merged.

1. **Plan.** The invocation that claims the job (an announcement of the object) reads the
   header; a splittable file (``fanout_plan``) of at least ``fanout_min_bytes`` gets a
   plan of N frame ranges in the job record, one message per part on the processing queue
   (ranges 0..N-1, and part N: the whole file's SHA-256, which cannot be split), then the
   record is marked ``sent`` and the job's own lease released. From then on an
   announcement of the object is acknowledged without work.
2. **Parts.** Each part has its own lease, progress and checkpoints in the record
   (``fanout_tasks.<n>``) and continues across invocations like a whole-file analysis
   (the same `Checkpointer`, through a `PartLease`). A range part warms its filters up on
   the frames before its start, analyses its frames with ranged GETs and stores its
   state (``checkpoints/<job>/part-<n>/result``); the hash part reads the file end to end
   and only hashes. Done, a part is counted with one conditional write
   (``ADD fanout_done :n`` unless it holds n): a duplicated part cannot count twice, and
   the write that completes the count sends the merge message.
3. **Merge.** The merge claims the job's own lease (phase ``merging``) once every part is
   counted, joins the range states (``StreamingAnalyzer.merge``), checks the declared
   SHA-256 against the hash part's and completes the job as a single analysis would.

A part that fails ends the job ``failed`` with its code; the others stop at their next
heartbeat (the job is no longer processing) and every saved state the record names is
deleted. A lost message or a crashed part is taken over by its message's redelivery or
the sweeper's re-drive (which sends the messages of parts not done, or the merge's).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from audiolift_core.errors import (
    AudioliftError,
    Conflict,
    JobCancelled,
    ObjectChanged,
    ObjectMissing,
    ProcessingFailure,
)
from audiolift_core.jobs import Job, JobStatus
from audiolift_core.jobs_table import ClaimRefused
from aws_lambda_powertools.metrics import MetricUnit

from .continuation import CHECKPOINT_PREFIX
from .fanout_plan import FanOutPlan, plan_ranges, splittable
from .observability import log, processor_metrics
from .processing import (
    LEASE_MARGIN_SECONDS,
    Checkpointer,
    Claim,
    Deadline,
    HandedOn,
    LeaseHeld,
    Outcome,
    Processor,
    StoredObject,
    _give_up,
    _verify,
    job_files,
)

if TYPE_CHECKING:
    from .events import ObjectRef
    from .s3reader import HashState, S3RangeReader

PHASE_MERGING = "merging"
PROBE_CHUNK_BYTES = 256 * 1024
HASH_READ_AHEAD_CHUNKS = 4


def part_prefix(job_id: str, part: int) -> str:
    return f"{CHECKPOINT_PREFIX}{job_id}/part-{part:04d}/"


def part_result_key(job_id: str, part: int) -> str:
    """Where a range part stores its final state (a checkpoint no one continues)."""
    return part_prefix(job_id, part) + "result"


class PartLease:
    """The lease of one part of a fanned-out analysis: its heartbeats, checkpoints and
    hand-ons are writes to the part's entry in the job record."""

    def __init__(self, processor: Processor, claim: Claim, part: int):
        self.processor = processor
        self.claim = claim
        self.part = part

    def beat(
        self, *, progress: int, lease_seconds: float, checkpoint: dict[str, Any] | None = None
    ) -> None:
        self.processor.table.part_heartbeat(
            self.claim.job.job_id,
            self.part,
            lease_token=self.claim.lease_token,
            progress=progress,
            lease_seconds=lease_seconds,
            checkpoint=checkpoint,
        )

    def hand_on(self, seq: int) -> None:
        queue, ref, job_id = self.processor.hand_on, self.claim.ref, self.claim.job.job_id
        assert queue is not None
        queue.continue_from(
            job_id=job_id,
            bucket=ref.bucket,
            key=ref.key,
            etag=ref.etag,
            checkpoint=seq,
            part=self.part,
        )
        self.processor.table.mark_part_handed_on(job_id, self.part, seq)

    def checkpoint_key(self, seq: int) -> str:
        return f"{part_prefix(self.claim.job.job_id, self.part)}{seq:08d}"

    def release(self) -> None:
        """Let the next delivery take the part at once."""
        with contextlib.suppress(AudioliftError):  # cancelled or taken over: nothing to do
            self.beat(progress=0, lease_seconds=-1)


class FanOut:
    """The fan-out's steps, on the processor's table, store, queue and settings."""

    def __init__(self, processor: Processor):
        self.processor = processor
        self.table = processor.table
        self.store = processor.store
        self.settings = processor.settings

    # --- the plan -----------------------------------------------------------------------

    def plan(self, claim: Claim) -> Outcome | None:
        """Split the claimed job's analysis into parts and send their messages; None
        when the file is not split (not PCM at fixed offsets, or too short)."""
        job, lease_token = claim.job, claim.lease_token
        plan = self._recorded_plan(job, claim.stored.etag)
        if plan is None:
            plan = self._new_plan(claim)
            if plan is None:
                return None
            job = self.table.plan_fanout(job.job_id, lease_token=lease_token, plan=plan.as_record())
        done = set(job.fanout_done or [])
        # The hash part first: it reads the whole file, so it should start at once.
        for part in (plan.hash_part, *range(len(plan.ranges))):
            if part not in done:
                self._send_part(job, claim.ref, part)
        self.table.mark_fanout_sent(job.job_id, lease_token=lease_token)
        processor_metrics.add_metric(name="AnalysesFannedOut", unit=MetricUnit.Count, value=1)
        log.info(
            "analysis split into parts",
            extra={"job_id": job.job_id, "ranges": len(plan.ranges), "frames": plan.frames},
        )
        return Outcome.CONTINUED

    @staticmethod
    def _recorded_plan(job: Job, etag: str) -> FanOutPlan | None:
        """The plan of an earlier invocation that died before it sent every message."""
        if job.fanout and job.fanout.get("etag") == etag:
            return FanOutPlan.from_record(job.fanout)
        return None

    def _new_plan(self, claim: Claim) -> FanOutPlan | None:
        from .analysis import part_alignment
        from .decode import probe_stream

        stored = claim.stored
        # The header is all it reads: small chunks, nothing read ahead.
        with self._reader(
            claim.job, stored.etag, stored.size, chunk_size=PROBE_CHUNK_BYTES, read_ahead=0
        ) as reader:
            stream = probe_stream(reader, size=stored.size)
        if not splittable(stream) or stream.expected is None:
            return None
        ranges = plan_ranges(
            stream.expected,
            stored.size,
            part_alignment(stream.samplerate),
            range_bytes=self.settings.fanout_range_bytes,
            max_ranges=self.settings.fanout_max_ranges,
        )
        if len(ranges) < 2:
            return None
        return FanOutPlan(etag=stored.etag, size=stored.size, frames=stream.expected, ranges=ranges)

    def _send_part(self, job: Job, ref: ObjectRef, part: int) -> None:
        task = (job.fanout_tasks or {}).get(str(part)) or {}
        checkpoint = task.get("checkpoint") or {}
        assert self.processor.hand_on is not None
        self.processor.hand_on.continue_from(
            job_id=job.job_id,
            bucket=ref.bucket,
            key=ref.key,
            etag=ref.etag,
            checkpoint=int(checkpoint.get("seq", 0)),
            part=part,
        )

    # --- a part -------------------------------------------------------------------------

    def process(
        self,
        ref: ObjectRef,
        job: Job,
        stored: StoredObject | None,
        deadline: Deadline,
        receive_count: int,
    ) -> Outcome:
        """Run the part (or the merge) ``ref`` names."""
        if not job.fanout:
            log.warning(
                "message for parts of an analysis without any", extra={"job_id": job.job_id}
            )
            return Outcome.IGNORED
        plan = FanOutPlan.from_record(job.fanout)
        if ref.merge:
            return self._merge(ref, job, plan, deadline, receive_count)
        if ref.part is None or ref.part >= plan.parts:
            log.warning("message for a part not in the plan", extra={"job_id": job.job_id})
            return Outcome.IGNORED
        lease_token = uuid.uuid4().hex
        try:
            claimed = self.table.claim_part(
                job.job_id,
                ref.part,
                lease_token=lease_token,
                lease_seconds=deadline.remaining() + LEASE_MARGIN_SECONDS,
                message_checkpoint=ref.checkpoint,
            )
        except ClaimRefused as refused:
            return self._part_refused(refused, ref, plan)
        claim = Claim(claimed, lease_token, stored or StoredObject("", 0), deadline, ref)
        return self._run_part(claim, plan, ref.part, receive_count)

    def _run_part(self, claim: Claim, plan: FanOutPlan, part: int, receive_count: int) -> Outcome:
        job_id = claim.job.job_id
        task = (claim.job.fanout_tasks or {}).get(str(part)) or {}
        lease = PartLease(self.processor, claim, part)
        saver = Checkpointer(self.processor, claim, lease, task.get("checkpoint"))
        saver.progress = int(task.get("progress", 0))
        log.info("part started", extra={"job_id": job_id, "part": part, "of": plan.parts})
        try:
            _check_object(claim.stored, plan)
            if part == plan.hash_part:
                result = self._hash(claim, plan, saver)
            else:
                result = self._analyze_range(claim, plan, part, saver)
            done = self._count(claim, part, result)
        except HandedOn:
            return Outcome.CONTINUED
        except (JobCancelled, Conflict):
            return self._stopped(job_id, saver)
        except ProcessingFailure as failure:
            self._fail(claim, part, failure, saver)
            return Outcome.FAILED
        except Exception as error:
            if receive_count >= self.settings.max_receive_count:
                self._fail(claim, part, _give_up(error, receive_count), saver)
            else:
                lease.release()
            log.exception("part failed; the message will be retried", extra={"job_id": job_id})
            raise
        self.processor.discard(saver.files())
        processor_metrics.add_metric(name="PartsAnalysed", unit=MetricUnit.Count, value=1)
        log.info("part done", extra={"job_id": job_id, "part": part, "done": len(done)})
        if len(done) == plan.parts:
            self._ask_merge(claim.job, claim.ref)
        return Outcome.CONTINUED

    def _count(self, claim: Claim, part: int, result: dict[str, Any]) -> list[int]:
        """Count the part done (once); the parts done then."""
        try:
            counted = self.table.complete_part(
                claim.job.job_id, part, lease_token=claim.lease_token, result=result
            )
        except AudioliftError:
            if result.get("key"):
                self.processor.discard([str(result["key"])])  # nobody will merge it
            raise
        return list(counted.fanout_done or [])

    def _ask_merge(self, job: Job, ref: ObjectRef) -> None:
        assert self.processor.hand_on is not None
        self.processor.hand_on.merge_parts(
            job_id=job.job_id, bucket=ref.bucket, key=ref.key, etag=ref.etag
        )

    def _part_refused(self, refused: ClaimRefused, ref: ObjectRef, plan: FanOutPlan) -> Outcome:
        job, part = refused.job, int(ref.part or 0)
        if job is None:
            return Outcome.IGNORED
        if job.status.finished:
            self.processor.discard(job_files(job))
            return self.processor._already_finished(job, ref)
        done = set(job.fanout_done or [])
        if part in done:
            # A duplicate, or the redelivery of a part whose invocation died after
            # counting it: if that count completed the set, the merge may still be owed.
            if len(done) == plan.parts and job.phase != PHASE_MERGING:
                self._ask_merge(job, ref)
            return Outcome.DUPLICATE
        task = (job.fanout_tasks or {}).get(str(part)) or {}
        checkpoint = task.get("checkpoint") or {}
        if checkpoint.get("handed_on") and ref.checkpoint < int(checkpoint.get("seq", 0)):
            return Outcome.DUPLICATE  # stale: a later hand-on of this part exists
        seconds_left = max(0.0, float(task.get("lease_expires_at") or 0.0) - time.time())
        raise LeaseHeld(job.job_id, seconds_left)

    def _stopped(self, job_id: str, saver: Checkpointer) -> Outcome:
        """The job ended elsewhere (cancelled, another part failed) or another invocation
        took this part over: stop, and delete what the ended job left."""
        self.processor.discard(saver.files())
        job = self.table.get(job_id)
        if job is None or not job.status.finished:
            return Outcome.DUPLICATE  # taken over: the new holder carries on
        self.processor.discard(job_files(job))
        log.info("part stopped: the job ended", extra={"job_id": job_id, "status": job.status})
        return Outcome.CANCELLED if job.status is JobStatus.CANCELLED else Outcome.FAILED

    def _fail(self, claim: Claim, part: int, failure: AudioliftError, saver: Checkpointer) -> None:
        job_id = claim.job.job_id
        failed = self.processor._fail(job_id, claim.lease_token, failure, saver.files(), part=part)
        ended = failed or self.table.get(job_id)
        if ended is not None and ended.status.finished:
            self.processor.discard(job_files(ended))  # the other parts' states

    # --- the work of a part --------------------------------------------------------------

    def _analyze_range(
        self, claim: Claim, plan: FanOutPlan, part: int, saver: Checkpointer
    ) -> dict[str, Any]:
        from .analysis.state import dumps
        from .decode import ResumeMismatch, analyze_range

        start, end = plan.ranges[part]
        checkpoint = saver.load()
        on_progress = self._heartbeats(claim, saver)
        chunk_size = checkpoint.chunk_size if checkpoint else self.settings.read_chunk_bytes
        resumed = checkpoint is not None and checkpoint.resume is not None
        with self._reader(
            claim.job,
            plan.etag,
            plan.size,
            chunk_size=chunk_size,
            # the header is read first, then the part's own frames, far into the file
            read_ahead_from=chunk_size if start or resumed else 0,
        ) as reader:
            saver.reader = reader
            arguments: dict[str, Any] = {
                "start": start,
                "end": end,
                "size": plan.size,
                "on_progress": on_progress,
                "on_block": saver.on_block,
            }
            try:
                try:
                    resume = checkpoint.resume if checkpoint else None
                    result = analyze_range(reader, resume=resume, **arguments)
                except ResumeMismatch:
                    reader.seek(0)
                    result = analyze_range(reader, **arguments)
                reader.raise_if_failed()
            except Exception:
                reader.raise_if_failed()  # the storage's failure, not the decoder's view of it
                raise
        key = part_result_key(claim.job.job_id, part)
        self.store.put_bytes(key, dumps(result), what="Storing a part of the analysis")
        return {"key": key}

    def _hash(self, claim: Claim, plan: FanOutPlan, saver: Checkpointer) -> dict[str, Any]:
        """The whole file's SHA-256, read end to end (continued from a checkpoint's hash
        state); a declared hash that differs fails the job now, ``checksum_mismatch``."""
        checkpoint = saver.load()
        on_progress = self._heartbeats(claim, saver)
        with self._reader(
            claim.job,
            plan.etag,
            plan.size,
            chunk_size=checkpoint.chunk_size if checkpoint else None,
            hash_state=checkpoint.hashed if checkpoint else None,
            # it only hashes: the reads are its bottleneck, so more of them at once
            read_ahead=max(self.settings.read_ahead_chunks, HASH_READ_AHEAD_CHUNKS),
        ) as reader:
            saver.reader = reader
            hashed_before = reader.stats.bytes_hashed

            def between_chunks() -> None:
                hashed = reader.stats.bytes_hashed
                on_progress(hashed, plan.size)
                if hashed > hashed_before:  # at least one chunk per invocation
                    saver.when_due(lambda: None)

            sha256 = reader.sha256(between_chunks=between_chunks)
        _verify(claim.job, sha256)
        return {"sha256": sha256}

    def _heartbeats(self, claim: Claim, saver: Checkpointer) -> Callable[[int, int | None], None]:
        """A progress callback that extends the part's lease every progress interval."""
        processor, deadline = self.processor, claim.deadline
        last_beat = processor._clock()

        def on_progress(done: int, total: int | None) -> None:
            nonlocal last_beat
            saver.progress = int(100 * done / total) if total else 0
            now = processor._clock()
            if now - last_beat < self.settings.progress_interval_seconds:
                return
            last_beat = now
            saver.lease.beat(
                progress=saver.progress,
                lease_seconds=deadline.remaining() + LEASE_MARGIN_SECONDS,
            )

        return on_progress

    def _reader(
        self,
        job: Job,
        etag: str,
        size: int,
        *,
        chunk_size: int | None = None,
        hash_state: HashState | None = None,
        read_ahead: int | None = None,
        read_ahead_from: int = 0,
    ) -> S3RangeReader:
        from .s3reader import S3RangeReader

        settings = self.settings
        return S3RangeReader(
            self.processor.reader_s3,
            self.store.bucket,
            job.object_key,
            etag=etag,
            size=size,
            chunk_size=chunk_size or settings.read_chunk_bytes,
            cache_chunks=settings.cache_chunks,
            read_ahead=settings.read_ahead_chunks if read_ahead is None else read_ahead,
            retry=self.processor._reader_retry,
            # only the hash part hashes: a range part's reader starts mid-file
            hash_while_reading=hash_state is not None,
            hash_state=hash_state,
            read_ahead_from=read_ahead_from,
        )

    # --- the merge -----------------------------------------------------------------------

    def _merge(
        self, ref: ObjectRef, job: Job, plan: FanOutPlan, deadline: Deadline, receive_count: int
    ) -> Outcome:
        lease_token = uuid.uuid4().hex
        try:
            claimed = self.table.claim(
                job.job_id,
                object_etag=plan.etag,
                lease_token=lease_token,
                lease_seconds=deadline.remaining() + LEASE_MARGIN_SECONDS,
                keep_progress=True,
                phase=PHASE_MERGING,
                parts_done=plan.parts,
            )
        except ClaimRefused as refused:
            if refused.job is not None and refused.job.status.finished:
                return self.processor._already_finished(refused.job, ref)
            return Outcome.DUPLICATE  # not every part is done, or a twin merges
        stored = StoredObject(etag=plan.etag, size=plan.size)
        claim = Claim(claimed, lease_token, stored, deadline, ref)
        leftovers = job_files(claimed)
        try:
            document, sha256 = self._merged(claimed, plan)
            _verify(claimed, sha256)
            return self.processor._complete(claim, document, sha256, leftovers)
        except ProcessingFailure as failure:
            self.processor._fail(job.job_id, lease_token, failure, leftovers)
            return Outcome.FAILED
        except Exception as error:
            if receive_count >= self.settings.max_receive_count:
                given_up = _give_up(error, receive_count)
                self.processor._fail(job.job_id, lease_token, given_up, leftovers)
            else:
                self.processor._release(job.job_id, lease_token)
            log.exception("merge failed; the message will be retried", extra={"job_id": job.job_id})
            raise

    def _merged(self, job: Job, plan: FanOutPlan) -> tuple[dict[str, Any], str]:
        """The document of the merged parts, and the whole file's SHA-256."""
        from .analysis import StreamingAnalyzer
        from .analysis.state import loads

        tasks = job.fanout_tasks or {}
        parts = [
            loads(self.store.get_bytes(str(tasks[str(part)]["result"]["key"])))
            for part in range(len(plan.ranges))
        ]
        started = time.monotonic()
        document = StreamingAnalyzer.merge([part["analysis"] for part in parts]).finish()
        document["format"].update(parts[0]["format"])
        seconds = time.monotonic() - started
        processor_metrics.add_metric(name="MergeSeconds", unit=MetricUnit.Seconds, value=seconds)
        log.info("parts merged", extra={"job_id": job.job_id, "merge_seconds": seconds})
        return document, str(tasks[str(plan.hash_part)]["result"]["sha256"])


def _check_object(stored: StoredObject, plan: FanOutPlan) -> None:
    if not stored.etag:
        raise ObjectMissing()
    if stored.etag != plan.etag:
        raise ObjectChanged("The file was replaced while it was being analysed.")
