"""API keys and job events on the live local stack (moto's SSM and EventBridge): a key added
with scripts/api_keys.py works within the stack's cache time and a revoked one is refused;
an upload ends in a "Job Completed" event and a cancel in "Job Cancelled", routed by an
EventBridge rule to an SQS queue, as an integrator would subscribe."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from audiolift_devstack.clients import boto3_session
from audiolift_devstack.launcher import StackProcess
from audiolift_devstack.samples import write_sample_recording
from audiolift_testkit import upload_through_api

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "api_keys.py"
JOB_TIMEOUT = 120.0


def api_keys(stack: StackProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/api_keys.py against the stack, as an operator runs it."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--stack-file", str(stack.stack_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_with(stack: StackProcess, key: str) -> int:
    response = httpx.get(
        f"{stack.info.api_url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    return response.status_code


def becomes(stack: StackProcess, key: str, status: int, within: float) -> float:
    """Seconds until the API answers ``status`` for ``key``; fails after ``within``."""
    started = time.monotonic()
    while True:
        if status_with(stack, key) == status:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"the API did not answer {status} within {within} s")
        time.sleep(0.1)


def test_a_key_added_with_the_script_works_and_a_revoked_one_is_refused(
    local_stack: StackProcess,
) -> None:
    stack = local_stack
    cache = float(stack.info.api_keys_cache_seconds)
    assert stack.info.api_keys_parameter and 0 < cache <= 60

    added = api_keys(stack, "--json", "add", "--owner", "erin")
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)["key"]
    becomes(stack, key, 200, within=cache + 1)

    listed = api_keys(stack, "list")
    assert "erin" in listed.stdout and key not in listed.stdout

    revoked = api_keys(stack, "revoke", json.loads(added.stdout)["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    becomes(stack, key, 401, within=cache + 1)
    assert status_with(stack, stack.info.api_key) == 200  # the dev key is untouched


# --- job events -----------------------------------------------------------------------------


@pytest.fixture
def subscription(local_stack: StackProcess) -> Iterator[tuple[Any, str]]:
    """A queue and a rule on the stack's bus routing every audiolift event to it."""
    info = local_stack.info
    events = boto3_session(info).client("events", endpoint_url=info.aws_endpoint)
    sqs = local_stack.clients.sqs
    bus = info.event_bus_name
    queue_url = sqs.create_queue(QueueName="integrator-job-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="audiolift-to-queue", EventBusName=bus, EventPattern='{"source": ["audiolift"]}'
    )
    events.put_targets(
        Rule="audiolift-to-queue", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    yield sqs, queue_url
    events.remove_targets(Rule="audiolift-to-queue", EventBusName=bus, Ids=["q"])
    events.delete_rule(Name="audiolift-to-queue", EventBusName=bus)
    sqs.delete_queue(QueueUrl=queue_url)


def event_for(sqs: Any, queue_url: str, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            event: dict[str, Any] = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if event["detail"]["job_id"] == job_id:
                return event
    raise AssertionError(f"no event for job {job_id} within {timeout} s")


def test_an_upload_ends_in_a_job_completed_event_and_a_cancel_in_job_cancelled(
    local_stack: StackProcess, subscription: tuple[Any, str], tmp_path: Path
) -> None:
    stack = local_stack
    sqs, queue_url = subscription
    sample = tmp_path / "take.wav"
    write_sample_recording(sample, seconds=2.0)
    job_id = upload_through_api(stack, sample)["job_id"]

    event = event_for(sqs, queue_url, job_id, JOB_TIMEOUT)
    assert (event["source"], event["detail-type"]) == ("audiolift", "Job Completed")
    job = httpx.get(f"{stack.info.api_url}/v1/jobs/{job_id}", headers=stack.auth, timeout=10).json()
    detail = event["detail"]
    assert detail["status"] == job["status"] == "completed"
    assert detail["owner"] == "dev" and detail["filename"] == "take.wav"
    assert detail["summary"] == job["summary"] and detail["error"] is None
    result = detail["result"]
    assert result["bucket"] == stack.info.bucket
    assert result["api_path"] == f"/v1/jobs/{job_id}/result"
    document = json.loads(
        stack.clients.s3.get_object(Bucket=stack.info.bucket, Key=result["key"])["Body"].read()
    )
    assert document["job_id"] == job_id

    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        created = api.post("/v1/uploads", json={"filename": "later.wav", "size": 10_000_000})
        assert created.status_code == 201, created.text
        cancelled_id = created.json()["job_id"]
        assert api.post(f"/v1/jobs/{cancelled_id}/cancel").status_code == 202
    cancelled = event_for(sqs, queue_url, cancelled_id, 30)
    assert cancelled["detail-type"] == "Job Cancelled"
    assert cancelled["detail"]["status"] == "cancelled" and cancelled["detail"]["result"] is None
