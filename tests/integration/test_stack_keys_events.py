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
from audiolift_devstack.samples import write_sample_recording
from stack_support import LocalStack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "api_keys.py"
JOB_TIMEOUT = 120.0


def api_keys(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/api_keys.py against the stack, as an operator runs it."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--stack-file", str(stack.handle.stack_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_with(stack: LocalStack, key: str) -> int:
    response = httpx.get(
        f"{stack.api_url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    return response.status_code


def becomes(stack: LocalStack, key: str, status: int, within: float) -> float:
    """Seconds until the API answers ``status`` for ``key``; fails after ``within``."""
    started = time.monotonic()
    while True:
        if status_with(stack, key) == status:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"the API did not answer {status} within {within} s")
        time.sleep(0.1)


def test_a_key_added_with_the_script_works_and_a_revoked_one_is_refused(
    local_stack: LocalStack,
) -> None:
    stack = local_stack
    cache = float(stack.info["api_keys_cache_seconds"])
    assert stack.info["api_keys_parameter"] and 0 < cache <= 60

    added = api_keys(stack, "--json", "add", "--owner", "erin")
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)["key"]
    becomes(stack, key, 200, within=cache + 1)

    listed = api_keys(stack, "list")
    assert "erin" in listed.stdout and key not in listed.stdout

    revoked = api_keys(stack, "revoke", json.loads(added.stdout)["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    becomes(stack, key, 401, within=cache + 1)
    assert status_with(stack, stack.api_key) == 200  # the dev key is untouched


# --- job events -----------------------------------------------------------------------------


@pytest.fixture
def subscription(local_stack: LocalStack) -> Iterator[tuple[Any, str]]:
    """A queue and a rule on the stack's bus routing every audiolift event to it."""
    session = local_stack.boto3_session()
    events = session.client("events", endpoint_url=local_stack.aws_endpoint)
    sqs = local_stack.sqs
    bus = local_stack.info["event_bus_name"]
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


def upload(stack: LocalStack, path: Path) -> str:
    size = path.stat().st_size
    with httpx.Client(base_url=stack.api_url, headers=stack.auth, timeout=30) as api:
        created = api.post("/v1/uploads", json={"filename": path.name, "size": size})
        assert created.status_code == 201, created.text
        body = created.json()
        urls = {p["part_number"]: p for p in body["parts"]}
        missing = [n for n in range(1, body["part_count"] + 1) if n not in urls]
        if missing:
            signed = api.post(f"/v1/uploads/{body['job_id']}/parts", json={"part_numbers": missing})
            assert signed.status_code == 200, signed.text
            urls.update({p["part_number"]: p for p in signed.json()["parts"]})
        parts = []
        with path.open("rb") as stream, httpx.Client(timeout=60) as s3:
            for number in range(1, body["part_count"] + 1):
                stream.seek((number - 1) * body["part_size"])
                part = urls[number]
                put = s3.put(
                    part["url"],
                    content=stream.read(body["part_size"]),
                    headers=part.get("headers") or {},
                )
                assert put.status_code == 200, put.text
                parts.append({"part_number": number, "etag": put.headers["etag"]})
        completed = api.post(f"/v1/uploads/{body['job_id']}/complete", json={"parts": parts})
        assert completed.status_code == 200, completed.text
    return str(body["job_id"])


def test_an_upload_ends_in_a_job_completed_event_and_a_cancel_in_job_cancelled(
    local_stack: LocalStack, subscription: tuple[Any, str], tmp_path: Path
) -> None:
    stack = local_stack
    sqs, queue_url = subscription
    sample = tmp_path / "take.wav"
    write_sample_recording(sample, seconds=2.0)
    job_id = upload(stack, sample)

    event = event_for(sqs, queue_url, job_id, JOB_TIMEOUT)
    assert (event["source"], event["detail-type"]) == ("audiolift", "Job Completed")
    job = httpx.get(f"{stack.api_url}/v1/jobs/{job_id}", headers=stack.auth, timeout=10).json()
    detail = event["detail"]
    assert detail["status"] == job["status"] == "completed"
    assert detail["owner"] == "dev" and detail["filename"] == "take.wav"
    assert detail["summary"] == job["summary"] and detail["error"] is None
    result = detail["result"]
    assert result["bucket"] == stack.bucket
    assert result["api_path"] == f"/v1/jobs/{job_id}/result"
    document = json.loads(
        stack.s3.get_object(Bucket=stack.bucket, Key=result["key"])["Body"].read()
    )
    assert document["job_id"] == job_id

    with httpx.Client(base_url=stack.api_url, headers=stack.auth, timeout=30) as api:
        created = api.post("/v1/uploads", json={"filename": "later.wav", "size": 10_000_000})
        assert created.status_code == 201, created.text
        cancelled_id = created.json()["job_id"]
        assert api.post(f"/v1/jobs/{cancelled_id}/cancel").status_code == 202
    cancelled = event_for(sqs, queue_url, cancelled_id, 30)
    assert cancelled["detail-type"] == "Job Cancelled"
    assert cancelled["detail"]["status"] == "cancelled" and cancelled["detail"]["result"] is None
