"""Find jobs that will never finish on their own, and finish them.

A job is stuck when:
- ``processing`` and its lease ran out: the invocation that held it crashed or was killed
  and no message is left to bring it back;
- ``uploaded`` and quiet for longer than the queue could take to deliver, retry and
  dead-letter its message (visibility timeout x max receives): the message was lost;
- ``awaiting_upload`` for longer than an upload may take (the bucket aborts incomplete
  multipart uploads after a day).

Each stuck job is re-driven (a new ObjectCreated message, when its object is there), or
ended ``failed``: ``object_missing`` (the object is gone), ``upload_expired`` (never
uploaded; its multipart upload is aborted), ``stalled`` (re-driven ``max_redrives`` times
and stuck again). Every write is conditional on the job being unchanged since it was
read, so concurrent sweeps, the processor and the API never undo each other; a re-driven
job is only re-driven again after the queue has had its full time for the new message.

A run is bounded: at most ``max_jobs_per_run`` jobs, and no new job once the invocation
has less than ``safety_margin_seconds`` left. What is left over waits for the next run
(the oldest first, so nothing starves).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from audiolift_core.errors import AudioliftError, Conflict, NotFound
from audiolift_core.jobs import Job, JobStatus, isoformat
from audiolift_core.observability import logger, metrics
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from audiolift_core.jobs_table import JobsTable
    from audiolift_core.processing_queue import ProcessingQueue
    from audiolift_core.settings import SweeperSettings
    from audiolift_core.storage import UploadStore

log = logger("audiolift-sweeper")
sweeper_metrics = metrics("audiolift-sweeper")

PAGE_SIZE = 100

OBJECT_MISSING = {
    "code": "object_missing",
    "message": "The uploaded file was deleted before it could be analysed.",
}
UPLOAD_EXPIRED = {
    "code": "upload_expired",
    "message": "The upload was not completed in time; start a new upload.",
}


def stalled_error(redrives: int) -> dict[str, str]:
    return {
        "code": "stalled",
        "message": (
            f"The analysis was restarted {redrives} times and never finished; "
            "the file may be too large or damaged for this service."
        ),
    }


@dataclass
class SweepReport:
    examined: int = 0
    redriven: int = 0
    object_missing: int = 0
    upload_expired: int = 0
    stalled: int = 0
    moved_on: int = 0  # not stuck after all, or changed while we looked
    errors: int = 0
    truncated: bool = False  # stopped by the job limit or the time budget

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rule:
    """One kind of stuck job: the index query that finds candidates."""

    status: JobStatus
    updated_before: str
    lease_expired_at: float | None = None
    redriven_before: float | None = None


def _iso(epoch: float) -> str:
    return isoformat(datetime.fromtimestamp(epoch, UTC))


def rules(settings: SweeperSettings, now: float) -> list[Rule]:
    wait = settings.redrive_wait_seconds
    return [
        Rule(
            JobStatus.PROCESSING,
            updated_before=_iso(now - settings.processing_quiet_seconds),
            lease_expired_at=now,
            redriven_before=now - wait,
        ),
        Rule(JobStatus.UPLOADED, updated_before=_iso(now - wait)),
        Rule(JobStatus.AWAITING_UPLOAD, updated_before=_iso(now - settings.upload_ttl_seconds)),
    ]


def is_stuck(job: Job, rule: Rule) -> bool:
    """The same test as the index query, on a consistent read of the job."""
    if job.status is not rule.status or not job.updated_at < rule.updated_before:
        return False
    if rule.lease_expired_at is not None and (job.lease_expires_at or 0) >= rule.lease_expired_at:
        return False
    redriven_at = job.extra.get("redriven_at")
    return not (
        rule.redriven_before is not None
        and redriven_at is not None
        and float(redriven_at) >= rule.redriven_before
    )


class Sweeper:
    def __init__(
        self,
        settings: SweeperSettings,
        table: JobsTable,
        store: UploadStore,
        queue: ProcessingQueue,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.table = table
        self.store = store
        self.queue = queue
        self._clock = clock

    def run(self, remaining_seconds: Callable[[], float]) -> SweepReport:
        """One sweep; ``remaining_seconds`` is the invocation's time left."""
        now = self._clock()
        report = SweepReport()
        for rule in rules(self.settings, now):
            for job_id in self._candidates(rule):
                if (
                    report.examined >= self.settings.max_jobs_per_run
                    or remaining_seconds() < self.settings.safety_margin_seconds
                ):
                    report.truncated = True
                    break
                report.examined += 1
                self._sweep_one(job_id, rule, now, report)
            if report.truncated:
                break
        self._record(report)
        return report

    def _candidates(self, rule: Rule) -> Iterator[str]:
        start_key = None
        while True:
            ids, start_key = self.table.quiet_job_ids(
                rule.status,
                updated_before=rule.updated_before,
                limit=PAGE_SIZE,
                lease_expired_at=rule.lease_expired_at,
                redriven_before=rule.redriven_before,
                start_key=start_key,
            )
            yield from ids
            if not start_key:
                return

    def _sweep_one(self, job_id: str, rule: Rule, now: float, report: SweepReport) -> None:
        try:
            job = self.table.get(job_id)
            if job is None or not is_stuck(job, rule):
                report.moved_on += 1
                return
            self._finish(job, now, report)
        except Conflict:
            report.moved_on += 1  # the processor, the API or another sweep was first
        except AudioliftError:
            report.errors += 1
            log.exception("could not sweep the job", extra={"job_id": job_id})

    def _finish(self, job: Job, now: float, report: SweepReport) -> None:
        try:
            head = self.store.head(job.object_key)
        except NotFound:
            head = None
        if head is None and job.status is JobStatus.AWAITING_UPLOAD:
            self.table.fail_stuck(job, UPLOAD_EXPIRED, now=now)
            if job.upload_id:
                self.store.abort(job.object_key, job.upload_id)
            report.upload_expired += 1
            log.info("upload expired", extra={"job_id": job.job_id})
            return
        if head is None:
            self.table.fail_stuck(job, OBJECT_MISSING, now=now)
            report.object_missing += 1
            log.info("object missing", extra={"job_id": job.job_id, "status": job.status})
            return
        redrives = int(job.extra.get("redrives", 0))
        if redrives >= self.settings.max_redrives:
            self.table.fail_stuck(job, stalled_error(redrives), now=now)
            report.stalled += 1
            log.warning("job stalled", extra={"job_id": job.job_id, "redrives": redrives})
            return
        # Recorded before the message goes out: a sweep that runs meanwhile finds the job
        # changed and leaves it, so each deadline gives at most one new message.
        self.table.mark_redriven(job, now=now)
        etag = str(head.get("ETag", "")).strip('"')
        if job.status is JobStatus.PROCESSING and (job.fanout or {}).get("sent"):
            self._redrive_parts(job, etag, now)
            report.redriven += 1
            return
        self.queue.announce_object(
            bucket=self.store.bucket,
            key=job.object_key,
            etag=etag,
            size=int(head.get("ContentLength", 0)),
            # a checkpointed analysis continues from its latest checkpoint
            job_id=job.job_id,
            checkpoint=job.checkpoint_seq if job.status is JobStatus.PROCESSING else 0,
        )
        report.redriven += 1
        log.info(
            "job re-driven",
            extra={"job_id": job.job_id, "status": job.status, "redrive": redrives + 1},
        )

    def _redrive_parts(self, job: Job, etag: str, now: float) -> None:
        """A job analysed in parallel parts: a message for each part neither done nor
        held by a live lease (from its checkpoint), or the merge's when all are done."""
        done = set(job.fanout_done or [])
        parts = len((job.fanout or {}).get("ranges", [])) + 1
        if len(done) >= parts:
            self.queue.merge_parts(
                job_id=job.job_id, bucket=self.store.bucket, key=job.object_key, etag=etag
            )
            log.info("merge re-driven", extra={"job_id": job.job_id})
            return
        tasks = job.fanout_tasks or {}
        for part in range(parts):
            task = tasks.get(str(part)) or {}
            if part in done or float(task.get("lease_expires_at") or 0.0) >= now:
                continue
            self.queue.continue_from(
                job_id=job.job_id,
                bucket=self.store.bucket,
                key=job.object_key,
                etag=etag,
                checkpoint=int((task.get("checkpoint") or {}).get("seq", 0)),
                part=part,
            )
            log.info("part re-driven", extra={"job_id": job.job_id, "part": part})

    def _record(self, report: SweepReport) -> None:
        count = MetricUnit.Count
        sweeper_metrics.add_metric(name="JobsRedriven", unit=count, value=report.redriven)
        sweeper_metrics.add_metric(
            name="JobsObjectMissing", unit=count, value=report.object_missing
        )
        sweeper_metrics.add_metric(
            name="JobsUploadExpired", unit=count, value=report.upload_expired
        )
        sweeper_metrics.add_metric(name="JobsStalled", unit=count, value=report.stalled)
        sweeper_metrics.add_metric(name="SweepErrors", unit=count, value=report.errors)
        sweeper_metrics.add_metric(name="SweepTruncated", unit=count, value=int(report.truncated))
        log.info("sweep finished", extra=report.as_dict())
