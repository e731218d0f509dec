"""The local stack's timer for scheduled functions: EventBridge's "Scheduled Event"
payload and a Lambda context, every interval, until stopped; a failing run does not stop
the next."""

from __future__ import annotations

import threading
import time
from typing import Any

from audiolift_devstack.schedule import ScheduledFunction
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext


def test_the_handler_runs_on_the_timer_with_a_scheduled_event() -> None:
    calls: list[tuple[dict[str, Any], Any]] = []
    three = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append((event, context))
        if len(calls) == 1:
            raise RuntimeError("a failing run")
        if len(calls) == 3:
            three.set()

    scheduled = ScheduledFunction(
        handler, interval_seconds=0.05, function_name="sweeper", timeout_seconds=30
    ).start()
    try:
        assert three.wait(timeout=5)
    finally:
        scheduled.stop()
    runs = scheduled.runs
    time.sleep(0.2)
    assert scheduled.runs == runs  # stopped
    assert scheduled.failures == 1
    event, context = calls[0]
    parsed = EventBridgeEvent(event)
    assert parsed.detail_type == "Scheduled Event"
    assert parsed.source == "aws.events"
    assert parsed.resources == ["arn:aws:events:us-east-1:123456789012:rule/sweeper-schedule"]
    assert isinstance(context, LambdaContext)
    assert context.function_name == "sweeper"
    assert 29_000 < context.get_remaining_time_in_millis() <= 30_000


def test_a_dotted_path_is_imported_on_the_first_run() -> None:
    # operator.is_not(event, context) is True: any two-argument callable will do.
    scheduled = ScheduledFunction(
        "operator.is_not", interval_seconds=60, function_name="f", timeout_seconds=1
    )
    assert scheduled.run_once() is True
    assert scheduled.runs == 1


def test_stop_waits_for_a_hanging_run_only_its_grace() -> None:
    running, release = threading.Event(), threading.Event()

    def hanging(event: dict[str, Any], context: Any) -> None:
        running.set()
        release.wait(timeout=30)  # a run stuck on a server the stack is stopping

    scheduled = ScheduledFunction(
        hanging, interval_seconds=0.01, function_name="sweeper", timeout_seconds=60
    ).start()
    try:
        assert running.wait(timeout=5)
        started = time.monotonic()
        scheduled.stop(timeout=0.2)
        assert time.monotonic() - started < 2
    finally:
        release.set()
