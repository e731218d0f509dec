"""A crashed invocation's job is taken over through the queue itself: moto's S3 announces
the object on the processing queue (template.yaml's notification), the devstack's poller
delivers it as Lambda's SQS event source does, and a delivery that finds a live lease
leaves the message on the queue instead of deleting it as a duplicate."""

from __future__ import annotations

import time
from typing import Any

from audiolift_core.aws import CallLimits, s3_client
from audiolift_core.jobs import Job, JobStatus
from audiolift_core.jobs_table import JobsTable
from audiolift_core.settings import ProcessorSettings, StorageSettings
from audiolift_core.storage import UploadStore
from audiolift_devstack.poller import BatchOutcome, SqsPoller
from audiolift_devstack.template_resources import (
    CreatedResources,
    ResourceNames,
    create_resources,
)
from audiolift_processor.handler import handle_event
from audiolift_processor.processing import Processor
from audiolift_processor.s3reader import RetryPolicy
from audiolift_testkit import AwsClients, add_job, tone_wav

VISIBILITY_SECONDS = 2
LEASE_SECONDS = 3.0  # longer than the visibility timeout: the local-stack case


def _add_job(aws: AwsClients, resources: CreatedResources, table: JobsTable) -> Job:
    return add_job(table, aws.s3, resources.bucket_name, tone_wav(amplitude=0.25))


def _status(table: JobsTable, job_id: str) -> JobStatus | None:
    job = table.get(job_id)
    return job.status if job is not None else None


def _queue_is_empty(aws: AwsClients, url: str) -> bool:
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(value) == 0 for value in attributes.values())


def test_a_crashed_invocations_job_is_taken_over_from_the_queue(
    aws: AwsClients, resource_names: ResourceNames
) -> None:
    resources = create_resources(
        aws.s3,
        aws.dynamodb,
        aws.sqs,
        names=resource_names,
        visibility_timeout=VISIBILITY_SECONDS,
    )
    table = JobsTable(aws.dynamodb, resources.table_name)
    settings = ProcessorSettings(
        storage=StorageSettings(
            jobs_table=resources.table_name, upload_bucket=resources.bucket_name
        ),
        progress_interval_seconds=0.0,
    )
    processor = Processor(
        settings,
        table,
        UploadStore(aws.s3, resources.bucket_name),
        s3_client.__wrapped__(CallLimits(total_max_attempts=1)),
        reader_retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
    )
    job = _add_job(aws, resources, table)  # moto puts the S3 event on the queue
    # An invocation took the job and died: its lease outlasts the visibility timeout.
    table.claim(job.job_id, object_etag="x", lease_token="crashed", lease_seconds=LEASE_SECONDS)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return handle_event(event, context, processor)

    poller = SqsPoller(
        aws.sqs,
        resources.queue_url,
        queue_arn=resources.queue_arn,
        handler=handler,
        wait_seconds=0,
        timeout_seconds=60,
    )
    outcomes: list[BatchOutcome] = []
    deadline = time.monotonic() + 30
    while _status(table, job.job_id) is not JobStatus.COMPLETED:
        assert time.monotonic() < deadline, f"not taken over; polls: {outcomes}"
        outcome = poller.poll_once(wait_seconds=1)
        if outcome is not None:
            outcomes.append(outcome)

    # While the lease lived, the job's message stayed on the queue (not deleted).
    assert any(outcome.retried for outcome in outcomes)
    done = table.get(job.job_id)
    assert done is not None
    assert (done.status, done.attempts, done.lease_token) == (JobStatus.COMPLETED, 2, None)
    listing = aws.s3.list_objects_v2(Bucket=resources.bucket_name, Prefix="results/")
    assert [item["Key"] for item in listing["Contents"]] == [f"results/{job.job_id}.json"]
    # Nothing left behind: the message was deleted once the job was done, none dead-lettered.
    assert _queue_is_empty(aws, resources.queue_url)
    assert _queue_is_empty(aws, resources.dlq_url)
