"""Job events on EventBridge: every job that ends (completed, failed, cancelled) is
announced on the stack's bus, so integrators subscribe instead of polling.

    source:      "audiolift"
    detail-type: "Job Completed" | "Job Failed" | "Job Cancelled"
    detail:      {"job_id", "owner", "status", "filename", "size", "summary", "error",
                  "result": {"bucket", "key", "api_path"} | null, "job_path", "finished_at"}

Publishing never fails the job's transition, which has already been written: the job
record is the truth and stays readable at ``GET /v1/jobs/{id}``, while an exception here
would make the processor redeliver a finished analysis (or the API answer 500 to a cancel
that happened). A lost event is logged and counted (``JobEventsFailed``) for an alarm.
The table's own stream (an outbox) would make delivery certain, at the price of another
moving part for every deployment; PutEvents is retried by botocore first.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .aws import is_transient
from .errors import AudioliftError, TransientError
from .jobs import Job, JobStatus

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "audiolift"
DETAIL_TYPES = {
    JobStatus.COMPLETED: "Job Completed",
    JobStatus.FAILED: "Job Failed",
    JobStatus.CANCELLED: "Job Cancelled",
}
API_PREFIX = "/v1"


class EventNotPublished(AudioliftError):
    code = "event_not_published"
    default_message = "The job event could not be published."


def job_event_detail(job: Job, *, bucket: str) -> dict[str, Any]:
    """The event's detail for a finished job (pure: no AWS)."""
    result = None
    if job.status is JobStatus.COMPLETED and job.result_key:
        result = {
            "bucket": bucket,
            "key": job.result_key,
            "api_path": f"{API_PREFIX}/jobs/{job.job_id}/result",
        }
    return {
        "job_id": job.job_id,
        "owner": job.owner,
        "status": job.status.value,
        "filename": job.filename,
        "size": job.size,
        "summary": job.summary,
        "error": dict(job.error) if job.error else None,
        "result": result,
        "job_path": f"{API_PREFIX}/jobs/{job.job_id}",
        "finished_at": job.updated_at,
    }


def job_event_entry(job: Job, *, bus_name: str, bucket: str) -> PutEventsRequestEntryTypeDef:
    """One PutEvents entry. Raises ValueError for a job that has not ended."""
    detail_type = DETAIL_TYPES.get(job.status)
    if detail_type is None:
        raise ValueError(f"A {job.status.value} job has not ended; it has no event.")
    return {
        "Source": SOURCE,
        "DetailType": detail_type,
        "Detail": json.dumps(job_event_detail(job, bucket=bucket), separators=(",", ":")),
        "EventBusName": bus_name,
        "Resources": [],
    }


class JobEvents:
    """The one adapter of the job-events bus."""

    def __init__(
        self,
        events: EventBridgeClient,
        bus_name: str,
        *,
        bucket: str,
        log: Logger | None = None,
        metrics: Metrics | None = None,
    ):
        self.events = events
        self.bus_name = bus_name
        self.bucket = bucket
        self._log = log
        self._metrics = metrics

    def put(self, job: Job) -> str:
        """Publish the event of a finished job; returns its event id. Raises
        EventNotPublished (or TransientError) with botocore's errors translated."""
        entry = job_event_entry(job, bus_name=self.bus_name, bucket=self.bucket)
        try:
            response = self.events.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as error:
            if is_transient(error):
                raise TransientError("The event bus is unavailable for now.") from None
            raise EventNotPublished() from None
        results = response.get("Entries") or [{}]
        if response.get("FailedEntryCount") or not results[0].get("EventId"):
            code = str(results[0].get("ErrorCode") or "unknown")
            raise EventNotPublished(f"The event bus refused the job event ({code}).")
        return str(results[0]["EventId"])

    def publish(self, job: Job) -> bool:
        """Publish, and never raise for the bus: log and count a failure instead (the job's
        own record already says how it ended). True when the event was accepted."""
        try:
            event_id = self.put(job)
        except AudioliftError as error:
            if self._log is not None:
                self._log.error(
                    "job event not published",
                    extra={"job_id": job.job_id, "status": job.status.value, "why": error.message},
                )
            if self._metrics is not None:
                from aws_lambda_powertools.metrics import MetricUnit

                self._metrics.add_metric(name="JobEventsFailed", unit=MetricUnit.Count, value=1)
            return False
        if self._log is not None:
            self._log.debug("job event published", extra={"job_id": job.job_id, "id": event_id})
        return True
