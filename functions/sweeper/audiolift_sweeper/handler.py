"""Lambda entry point: one sweep per scheduled event (EventBridge, every few minutes)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from audiolift_core.aws import dynamodb_client, s3_client, sqs_client
from audiolift_core.jobs_table import JobsTable
from audiolift_core.observability import log_recorded_metrics
from audiolift_core.processing_queue import ProcessingQueue
from audiolift_core.settings import SweeperSettings
from audiolift_core.storage import UploadStore
from aws_lambda_powertools import Tracer

from .sweep import Sweeper, log, sweeper_metrics

tracer = Tracer(service="audiolift-sweeper")

# Without a Lambda context (tests, the local stack's timer): the template's timeout.
DEFAULT_BUDGET_SECONDS = 60.0


@functools.cache
def default_sweeper() -> Sweeper:
    """Made on the first event (settings checked then), reused while the sandbox lives."""
    settings = SweeperSettings.from_env()
    return Sweeper(
        settings,
        JobsTable(dynamodb_client(), settings.storage.jobs_table),
        UploadStore(s3_client(), settings.storage.upload_bucket),
        ProcessingQueue(sqs_client(), settings.processing_queue_url),
    )


def remaining_time(context: Any) -> Callable[[], float]:
    """The invocation's time left, in seconds."""
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return lambda: float(context.get_remaining_time_in_millis()) / 1000.0
    deadline = time.monotonic() + DEFAULT_BUDGET_SECONDS
    return lambda: deadline - time.monotonic()


def handle_event(event: Any, context: Any, sweeper: Sweeper | None = None) -> dict[str, Any]:
    sweeper = sweeper or default_sweeper()
    return sweeper.run(remaining_time(context)).as_dict()


@tracer.capture_lambda_handler
@log_recorded_metrics(sweeper_metrics)
@log.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_event(event, context)
