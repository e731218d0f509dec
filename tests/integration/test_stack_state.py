"""The local stack keeps its state and takes its children with it.

- Restarted on the same state directory, even after a SIGKILL, it still has every job
  (dynalite's table on disk), every object and every result (SeaweedFS's data), and the
  same dev key.
- A SIGKILL of ``up`` leaves no process behind: SeaweedFS and dynalite die with it.
- ``--function-timeout`` is the processor's timeout: the handler's deadline, the queue's
  visibility timeout (six times, the template's rule) and PROCESSOR_TIMEOUT_SECONDS.
- Scheduled functions run on the stack's timer; the sweeper among them, every
  ``sweep_interval_seconds`` (0: never), with the settings of the stack's own queue.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from audiolift_devstack.samples import write_sample_recording
from audiolift_devstack.stack import Stack, StackConfig
from audiolift_testkit import (
    TEST_PART_BYTES,
    fetch_result,
    start_stack_process,
    upload_through_api,
    wait_for_job,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DEV_KEY = "al_dev_restart-test-key-000000000001"


def test_a_sigkilled_stack_leaves_nothing_behind_and_restarts_with_its_state(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    arguments = ("--api-key", DEV_KEY, "--part-size-bytes", str(TEST_PART_BYTES))
    first = start_stack_process(state, *arguments)
    try:
        children = {p.name() for p in first.descendants}
        assert {"weed", "node"} <= children, children
        path = write_sample_recording(tmp_path / "kept.wav", seconds=8, samplerate=22050)
        done = upload_through_api(first, path)
        job = wait_for_job(first, done["job_id"])
        assert job["status"] == "completed", job
        result = fetch_result(first, done["job_id"])
        with httpx.Client(base_url=first.info.api_url, headers=first.auth, timeout=30) as api:
            waiting = api.post("/v1/uploads", json={"filename": "later.wav", "size": 1000})
            assert waiting.status_code == 201, waiting.text
    finally:
        first.stop(signal.SIGKILL)
    assert first.survivors(grace=5.0) == []

    second = start_stack_process(state, *arguments)
    try:
        with httpx.Client(base_url=second.info.api_url, headers=second.auth, timeout=30) as api:
            kept = api.get(f"/v1/jobs/{done['job_id']}")
            assert kept.status_code == 200, kept.text
            assert kept.json() == job
            pending = api.get(f"/v1/jobs/{waiting.json()['job_id']}")
            assert pending.status_code == 200 and pending.json()["status"] == "awaiting_upload"
        assert fetch_result(second, done["job_id"]) == result
        head = second.clients.s3.head_object(
            Bucket=second.info.bucket, Key=f"uploads/{done['job_id']}"
        )
        assert head["ContentLength"] == path.stat().st_size
    finally:
        second.stop_checked(signal.SIGTERM)


def test_fresh_wipes_the_kept_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_stack_process(state, "--api-key", DEV_KEY, "--s3", "moto")
    try:
        with httpx.Client(base_url=first.info.api_url, headers=first.auth, timeout=30) as api:
            created = api.post("/v1/uploads", json={"filename": "gone.wav", "size": 1000})
            assert created.status_code == 201
    finally:
        first.stop_checked()
    second = start_stack_process(state, "--api-key", DEV_KEY, "--s3", "moto", "--fresh")
    try:
        with httpx.Client(base_url=second.info.api_url, headers=second.auth, timeout=30) as api:
            assert api.get(f"/v1/jobs/{created.json()['job_id']}").status_code == 404
    finally:
        second.stop_checked()


def test_the_dev_key_is_kept_with_the_state(tmp_path: Path) -> None:
    """Started again on its state, the stack keeps its dev key (the jobs it kept stay
    reachable with the key a person saved, and so does the page's URL); --fresh makes a
    new one."""
    state = tmp_path / "state"
    keys = []
    for extra in ((), (), ("--fresh",)):
        stack = start_stack_process(state, "--s3", "moto", "--no-poller", *extra)
        try:
            keys.append(stack.info.api_key)
            with httpx.Client(base_url=stack.info.api_url, headers=stack.auth) as api:
                assert api.get("/v1/jobs").status_code == 200
        finally:
            stack.stop_checked()
    assert keys[0].startswith("al_dev_")
    assert keys[1] == keys[0]
    assert keys[2] != keys[0]
    assert (state / "dev-api-key").stat().st_mode & 0o777 == 0o600


def test_the_function_timeout_sets_the_deadline_and_the_visibility_timeout(
    tmp_path: Path,
) -> None:
    contexts: list[Any] = []
    delivered = threading.Event()
    scheduled = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        contexts.append((context.get_remaining_time_in_millis(), os.environ.copy()))
        delivered.set()
        return {"batchItemFailures": []}

    config = StackConfig(
        state_dir=tmp_path / "state",
        s3_backend="moto",
        table_backend="moto",
        run_api=False,
        function_timeout=20,
        processor_handler=handler,
        schedules=[(lambda event, context: scheduled.set(), 0.2)],
    )
    with Stack(config) as stack:
        assert stack.info is not None and stack.sqs is not None
        assert stack.info.visibility_timeout == 120
        attributes = stack.sqs.get_queue_attributes(
            QueueUrl=stack.info.queue_url, AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        assert attributes["VisibilityTimeout"] == "120"
        stack.sqs.send_message(QueueUrl=stack.info.queue_url, MessageBody="{}")
        assert delivered.wait(timeout=20)
        assert scheduled.wait(timeout=5), "the stack's timer did not run its function"
    # Every invocation (also the bucket's s3:TestEvent) had the function's 20 s.
    assert contexts
    for remaining_ms, environment in contexts:
        assert 18_000 < remaining_ms <= 20_000
        assert environment["PROCESSOR_TIMEOUT_SECONDS"] == "20"


def test_the_sweeper_runs_on_the_stacks_timer_with_the_stacks_settings(tmp_path: Path) -> None:
    config = StackConfig(
        state_dir=tmp_path / "state",
        s3_backend="moto",
        table_backend="moto",
        run_api=False,
        function_timeout=10,
        sweep_interval_seconds=0.2,
    )
    with Stack(config) as stack:
        assert stack.info is not None
        (sweeper,) = stack.schedules
        deadline = time.monotonic() + 20
        while sweeper.runs < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Its settings load (the queue it re-drives into, the local visibility timeout):
        # a sweep that could not start would count as a failure.
        assert sweeper.runs >= 3 and sweeper.failures == 0
        assert os.environ["PROCESSING_QUEUE_URL"] == stack.info.queue_url
        assert os.environ["VISIBILITY_TIMEOUT_SECONDS"] == "60"


def test_a_sweep_interval_of_zero_runs_no_sweeper(tmp_path: Path) -> None:
    config = StackConfig(
        state_dir=tmp_path / "state",
        s3_backend="moto",
        table_backend="moto",
        run_api=False,
        sweep_interval_seconds=0,
    )
    with Stack(config) as stack:
        assert stack.schedules == []
