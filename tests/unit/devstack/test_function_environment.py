"""The local stack's function settings (a pure function of the template's processor and
sweeper, the created resources and the stack's options), the queue's visibility rule, and
``up``'s sweep interval."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from audiolift_core.settings import ProcessorSettings, SweeperSettings
from audiolift_devstack.__main__ import _parser
from audiolift_devstack.stack import (
    FunctionSettings,
    function_environment,
    processor_function_settings,
    sweeper_function_settings,
)
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


SWEEPER = FunctionSettings(
    timeout_seconds=60,
    memory_mb=256,
    environment={
        "POWERTOOLS_SERVICE_NAME": "audiolift-sweeper",
        "VISIBILITY_TIMEOUT_SECONDS": "5400",  # the template's, for its own timeout
        "MAX_RECEIVE_COUNT": "3",
        "UPLOAD_TTL_SECONDS": "86400",
        "SWEEP_MAX_JOBS": "200",
        "SWEEP_MAX_REDRIVES": "2",
    },
)


def local_resources(visibility_timeout: int, max_receive_count: int) -> CreatedResources:
    settings = dataclasses.replace(
        RESOURCES.queue_settings,
        visibility_timeout=visibility_timeout,
        max_receive_count=max_receive_count,
    )
    return dataclasses.replace(RESOURCES, queue_settings=settings)


def test_the_sweeper_watches_the_local_queue_with_its_visibility_timeout() -> None:
    environment = function_environment(
        FUNCTION,
        local_resources(visibility_timeout=60, max_receive_count=4),
        api_key="k",
        timeout_seconds=10,
        sweeper=SWEEPER,
    )
    settings = SweeperSettings.from_env(environment)
    assert settings.processing_queue_url == "http://sqs/q"
    # The queue's, not the template's 5400: a lost message is one quiet for 60 s x 4.
    assert settings.visibility_timeout_seconds == 60
    assert settings.max_receive_count == 4
    assert settings.redrive_wait_seconds == 240
    assert settings.upload_ttl_seconds == 86_400
    assert (settings.max_jobs_per_run, settings.max_redrives) == (200, 2)
    assert settings.storage.jobs_table == "t-jobs"
    assert settings.storage.upload_bucket == "t-uploads"
    assert "POWERTOOLS_SERVICE_NAME" not in environment
    # The processor's variables win where both functions have one.
    assert environment["READ_AHEAD_CHUNKS"] == "2"


def test_without_a_sweeper_in_the_template_the_sweeper_still_has_its_settings() -> None:
    environment = function_environment(FUNCTION, RESOURCES, api_key="k", timeout_seconds=900)
    settings = SweeperSettings.from_env(environment)
    assert settings.visibility_timeout_seconds == 5400
    assert settings.upload_ttl_seconds == 86_400  # the bucket's one-day abort rule


def test_the_template_sweepers_variables_reach_the_stack() -> None:
    sweeper = sweeper_function_settings()
    assert sweeper is not None
    environment = function_environment(
        processor_function_settings(),
        local_resources(visibility_timeout=60, max_receive_count=3),
        api_key="k",
        timeout_seconds=10,
        sweeper=sweeper,
        extra={"UPLOAD_TTL_SECONDS": "120"},
    )
    settings = SweeperSettings.from_env(environment)
    assert settings.upload_ttl_seconds == 120  # extra wins
    assert settings.visibility_timeout_seconds == 60
    assert settings.max_redrives == int(sweeper.environment["SWEEP_MAX_REDRIVES"])


@pytest.mark.parametrize(
    ("arguments", "interval"),
    [([], 60.0), (["--sweep-interval", "2"], 2.0), (["--sweep-interval", "0"], 0.0)],
)
def test_up_takes_the_sweep_interval(arguments: list[str], interval: float) -> None:
    args = _parser().parse_args(["up", *arguments])
    assert args.sweep_interval == interval


def test_up_refuses_a_negative_sweep_interval(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--sweep-interval", "-1"])
    assert "0 or more" in capsys.readouterr().err


@pytest.mark.parametrize(("timeout", "margin"), [(900, "20"), (80, "20"), (40, "10"), (10, "2.5")])
def test_a_short_function_timeout_leaves_the_processor_time_to_work(
    timeout: int, margin: str
) -> None:
    environment = function_environment(FUNCTION, RESOURCES, api_key="k", timeout_seconds=timeout)
    settings = ProcessorSettings.from_env(environment)
    assert environment["DEADLINE_MARGIN_SECONDS"] == margin
    assert settings.deadline_margin_seconds <= settings.processor_timeout_seconds / 4


def test_the_templates_deadline_margin_is_kept_within_a_short_local_timeout() -> None:
    function = dataclasses.replace(
        FUNCTION, environment={**FUNCTION.environment, "DEADLINE_MARGIN_SECONDS": "5"}
    )
    environment = function_environment(function, RESOURCES, api_key="k", timeout_seconds=60)
    assert environment["DEADLINE_MARGIN_SECONDS"] == "5"
    environment = function_environment(function, RESOURCES, api_key="k", timeout_seconds=10)
    assert environment["DEADLINE_MARGIN_SECONDS"] == "2.5"  # a quarter of the timeout


def test_up_takes_variables_for_the_functions() -> None:
    args = _parser().parse_args(
        ["up", "--env", "READ_CHUNK_BYTES=1048576", "--env", "SWEEP_MAX_JOBS=5", "--env", "E="]
    )
    assert dict(args.env) == {"READ_CHUNK_BYTES": "1048576", "SWEEP_MAX_JOBS": "5", "E": ""}


@pytest.mark.parametrize("variable", ["READ_CHUNK_BYTES", "=1"])
def test_up_refuses_a_variable_without_a_name_or_value(
    variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--env", variable])
    assert "NAME=VALUE" in capsys.readouterr().err
