"""Lambda entry point. SQS batches (S3 notifications, the deployed path) go through
Powertools' batch processor with partial batch responses; direct S3 and EventBridge
events go through the same per-object function."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from audiolift_core.aws import (
    CallLimits,
    dynamodb_client,
    events_client,
    s3_client,
    sqs_client,
)
from audiolift_core.job_events import JobEvents
from audiolift_core.jobs_table import JobsTable
from audiolift_core.observability import log_recorded_metrics
from audiolift_core.processing_queue import ProcessingQueue
from audiolift_core.settings import ProcessorSettings
from audiolift_core.storage import UploadStore
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from .events import (
    MalformedEvent,
    ObjectRef,
    is_eventbridge,
    is_sqs,
    refs_from_eventbridge,
    refs_from_s3_event,
    refs_from_sqs_body,
)
from .observability import log, processor_metrics
from .processing import LeaseHeld, Outcome, Processor

tracer = Tracer(service="audiolift-processor")


@functools.cache
def default_processor() -> Processor:
    """Made on the first event (settings checked then), reused while the sandbox lives."""
    settings = ProcessorSettings.from_env()
    events = None
    if settings.event_bus_name:
        events = JobEvents(
            events_client(),
            settings.event_bus_name,
            bucket=settings.storage.upload_bucket,
            log=log,
            metrics=processor_metrics,
        )
    hand_on = None
    if settings.processing_queue_url:
        hand_on = ProcessingQueue(sqs_client(), settings.processing_queue_url)
    return Processor(
        settings,
        JobsTable(dynamodb_client(), settings.storage.jobs_table),
        UploadStore(s3_client(), settings.storage.upload_bucket),
        # The range reader retries every failed GET itself (a body broken mid-transfer
        # only it can retry): botocore must not retry underneath it as well.
        s3_client(CallLimits(total_max_attempts=1)),
        events=events,
        hand_on=hand_on,
    )


def handle_record(record: SQSRecord, processor: Processor, context: LambdaContext | None) -> None:
    """One SQS message: raise to have it retried (and, in the end, dead-lettered)."""
    receive_count = int(record.attributes.approximate_receive_count or 1)
    try:
        refs = refs_from_sqs_body(record.body)
    except MalformedEvent as error:
        # Not ours to interpret: keep it (it ends in the DLQ, where the alarm sees it).
        log.error("unreadable message", extra={"message_id": record.message_id, "why": str(error)})
        raise
    for ref in refs:
        # LeaseHeld propagates too: the message is reported as a batch item failure and
        # comes back after the visibility timeout, which outlasts any lease.
        processor.process(ref, context=context, receive_count=receive_count)


def handle_event(
    event: Mapping[str, Any], context: LambdaContext | None, processor: Processor | None = None
) -> dict[str, Any]:
    processor = processor or default_processor()
    if is_sqs(event):
        # Always answer with batchItemFailures, even when every record failed.
        batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event=dict(event),
            record_handler=lambda record: handle_record(record, processor, context),
            processor=batch,
            context=context,
        )
        return dict(response)
    refs = refs_from_eventbridge(event) if is_eventbridge(event) else refs_from_s3_event(event)
    return {"outcomes": [_process_direct(processor, ref, context).value for ref in refs]}


def _process_direct(processor: Processor, ref: ObjectRef, context: LambdaContext | None) -> Outcome:
    try:
        return processor.process(ref, context=context)
    except LeaseHeld:
        return Outcome.BUSY


@tracer.capture_lambda_handler
@log_recorded_metrics(processor_metrics)
@log.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(event, context)
