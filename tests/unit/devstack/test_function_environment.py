"""The local stack's function settings (a pure function of the template's processor, the
created resources and the stack's options) and the queue's visibility rule."""

from __future__ import annotations

import hashlib

import pytest
from audiolift_devstack.stack import FunctionSettings, function_environment
from audiolift_devstack.template_resources import (
    CreatedResources,
    QueueSettings,
    visibility_timeout_for,
)

FUNCTION = FunctionSettings(
    timeout_seconds=900,
    memory_mb=1769,
    environment={"POWERTOOLS_SERVICE_NAME": "audiolift-processor", "READ_AHEAD_CHUNKS": "2"},
)
RESOURCES = CreatedResources(
    table_name="t-jobs",
    bucket_name="t-uploads",
    queue_url="http://sqs/q",
    queue_arn="arn:aws:sqs:us-east-1:123456789012:q",
    dlq_url="http://sqs/dlq",
    dlq_arn="arn:aws:sqs:us-east-1:123456789012:dlq",
    queue_settings=QueueSettings(
        visibility_timeout=5400,
        message_retention_seconds=345600,
        max_receive_count=3,
        batch_size=1,
        report_batch_item_failures=True,
    ),
    upload_prefix="uploads/",
    with_notifications=False,
)


def test_the_template_variables_the_resources_and_the_key_hash() -> None:
    environment = function_environment(
        FUNCTION, RESOURCES, api_key="al_dev_secret", timeout_seconds=30, log_level="INFO"
    )
    assert environment["READ_AHEAD_CHUNKS"] == "2"
    assert "POWERTOOLS_SERVICE_NAME" not in environment  # each function names itself
    assert environment["JOBS_TABLE"] == "t-jobs"
    assert environment["UPLOAD_BUCKET"] == "t-uploads"
    assert environment["MAX_RECEIVE_COUNT"] == "3"
    assert environment["PROCESSOR_TIMEOUT_SECONDS"] == "30"
    assert environment["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert environment["POWERTOOLS_METRICS_DISABLED"] == "true"
    digest = hashlib.sha256(b"al_dev_secret").hexdigest()
    assert environment["API_KEY_HASHES"] == f"dev:{digest}"
    assert "al_dev_secret" not in "".join(environment.values())
    assert "PART_MIN_BYTES" not in environment and "PART_SIZE_BYTES" not in environment


def test_part_sizes_and_extra_variables_win() -> None:
    environment = function_environment(
        FUNCTION,
        RESOURCES,
        api_key="k",
        timeout_seconds=900,
        part_min_bytes=1024,
        part_size_bytes=2048,
        extra={"CORS_ALLOW_ORIGINS": "http://127.0.0.1:8000", "JOBS_TABLE": "other"},
    )
    assert environment["PART_MIN_BYTES"] == "1024"
    assert environment["PART_SIZE_BYTES"] == "2048"
    assert environment["CORS_ALLOW_ORIGINS"] == "http://127.0.0.1:8000"
    assert environment["JOBS_TABLE"] == "other"


@pytest.mark.parametrize(("timeout", "visibility"), [(60, 360), (900, 5400), (20, 120), (45, 270)])
def test_the_visibility_timeout_is_the_templates_six_times_the_function_timeout(
    timeout: int, visibility: int
) -> None:
    assert visibility_timeout_for(timeout) == visibility
