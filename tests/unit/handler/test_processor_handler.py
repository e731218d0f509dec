"""The processor Lambda end to end in process: sample events from events/, the table and
bucket from template.yaml under moto, the real reader and the real analysis. Assertions
are on what ends up in DynamoDB and S3."""

from __future__ import annotations

import copy
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import numpy as np
import pytest
import soundfile as sf
from audiolift_core.jobs import Job, JobStatus, isoformat, new_job_id, utc_now
from audiolift_core.jobs_table import JobsTable
from audiolift_core.settings import ProcessorSettings, StorageSettings
from audiolift_core.storage import UploadStore
from audiolift_devstack.template_resources import ResourceNames, create_resources
from audiolift_processor.decode import analyze_stream
from audiolift_processor.handler import handle_event
from audiolift_processor.processing import Processor
from audiolift_processor.s3reader import RetryPolicy
from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto import mock_aws

EVENTS = Path(__file__).resolve().parents[3] / "events"
NAMES = ResourceNames.with_prefix("proc-test")


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


class FakeContext:
    """The bits of Lambda's context the processor and Powertools read."""

    function_name = "ProcessorFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ProcessorFunction"
    aws_request_id = "test-request"

    def __init__(self, remaining_seconds: float = 600.0):
        self.remaining_seconds = remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_seconds * 1000)


def wav_bytes(
    seconds: float = 3.0, rate: int = 48000, channels: int = 2, amplitude: float = 0.25
) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = amplitude * np.sin(2 * np.pi * 997 * t)
    data = np.stack([tone] * channels, axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        created = create_resources(s3, dynamodb, sqs, names=NAMES, with_notifications=False)
        yield SimpleNamespace(s3=s3, dynamodb=dynamodb, sqs=sqs, created=created)


def make_processor(aws: SimpleNamespace, **overrides: Any) -> Processor:
    settings = ProcessorSettings(
        storage=StorageSettings(jobs_table=NAMES.table, upload_bucket=NAMES.bucket),
        read_chunk_bytes=64 * 1024,
        progress_interval_seconds=0.0,
        **overrides,
    )
    return Processor(
        settings,
        JobsTable(aws.dynamodb, NAMES.table),
        UploadStore(aws.s3, NAMES.bucket),
        aws.s3,
        reader_retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
    )


@pytest.fixture
def processor(aws: SimpleNamespace) -> Processor:
    return make_processor(aws)


def add_job(
    aws: SimpleNamespace, body: bytes | None, status: JobStatus = JobStatus.AWAITING_UPLOAD
) -> Job:
    job_id = new_job_id()
    now = isoformat(utc_now())
    size = len(body or b"")
    job = Job(
        job_id=job_id,
        owner="alice",
        status=status,
        filename="take.wav",
        size=size,
        content_type="audio/wav",
        object_key=f"uploads/{job_id}",
        created_at=now,
        updated_at=now,
        part_size=size,
        part_count=1,
        upload_id="u-1",
    )
    JobsTable(aws.dynamodb, NAMES.table).create(job)
    if body is not None:
        aws.s3.put_object(Bucket=NAMES.bucket, Key=job.object_key, Body=body)
    return job


def s3_record_for(aws: SimpleNamespace, job: Job, template: dict[str, Any]) -> dict[str, Any]:
    record = copy.deepcopy(template)
    head = aws.s3.head_object(Bucket=NAMES.bucket, Key=job.object_key)
    record["s3"]["bucket"]["name"] = NAMES.bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{NAMES.bucket}"
    # As S3 (and moto) send it: URL-encoded, "/" included.
    record["s3"]["object"]["key"] = job.object_key.replace("/", "%2F")
    record["s3"]["object"]["eTag"] = head["ETag"].strip('"')
    record["s3"]["object"]["size"] = head["ContentLength"]
    return record


def sqs_event_for(
    aws: SimpleNamespace, job: Job, *, receive_count: int = 1, event_file: str = "sqs-s3-put.json"
) -> dict[str, Any]:
    event = load_event(event_file)
    for index, message in enumerate(event["Records"]):
        body = json.loads(message["body"])
        body["Records"] = [s3_record_for(aws, job, r) for r in body["Records"]]
        message["body"] = json.dumps(body)
        message["messageId"] = f"message-{index}"
        message["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return event


def job_item(aws: SimpleNamespace, job_id: str) -> Job:
    job = JobsTable(aws.dynamodb, NAMES.table).get(job_id)
    assert job is not None
    return job


def strict_json(raw: bytes) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(raw, parse_constant=refuse)


# --- the happy path and at-least-once delivery ------------------------------------------


def test_sqs_wrapped_s3_event_completes_the_job(aws: SimpleNamespace, processor: Processor) -> None:
    job = add_job(aws, wav_bytes())
    response = handle_event(sqs_event_for(aws, job), FakeContext(), processor)

    assert response == {"batchItemFailures": []}
    stored = job_item(aws, job.job_id)
    assert stored.status is JobStatus.COMPLETED
    assert stored.progress == 100
    assert stored.lease_token is None
    assert stored.summary is not None
    assert stored.summary["channels"] == 2
    assert stored.summary["duration_seconds"] == pytest.approx(3.0, abs=1e-3)
    result = aws.s3.get_object(Bucket=NAMES.bucket, Key=f"results/{job.job_id}.json")
    document = strict_json(result["Body"].read())
    assert document["job_id"] == job.job_id
    assert document["object"]["key"] == job.object_key
    assert document["format"]["channels"] == 2


def test_two_events_for_one_object_analyse_it_once(
    aws: SimpleNamespace, processor: Processor
) -> None:
    job = add_job(aws, wav_bytes())
    put = sqs_event_for(aws, job)
    complete = sqs_event_for(aws, job, event_file="sqs-s3-complete-multipart.json")
    batch = {"Records": put["Records"] + complete["Records"]}
    batch["Records"][-1]["messageId"] = "message-complete"

    assert handle_event(batch, FakeContext(), processor) == {"batchItemFailures": []}
    first = aws.s3.head_object(Bucket=NAMES.bucket, Key=f"results/{job.job_id}.json")
    # A redelivery later is acknowledged without work, too.
    assert handle_event(put, FakeContext(), processor) == {"batchItemFailures": []}

    stored = job_item(aws, job.job_id)
    assert stored.status is JobStatus.COMPLETED
    assert stored.attempts == 1
    again = aws.s3.head_object(Bucket=NAMES.bucket, Key=f"results/{job.job_id}.json")
    assert again["ETag"] == first["ETag"]
    assert again["LastModified"] == first["LastModified"]


def test_event_before_the_api_recorded_the_upload(
    aws: SimpleNamespace, processor: Processor
) -> None:
    job = add_job(aws, wav_bytes(), status=JobStatus.AWAITING_UPLOAD)
    handle_event(sqs_event_for(aws, job), FakeContext(), processor)
    assert job_item(aws, job.job_id).status is JobStatus.COMPLETED


def test_live_lease_is_not_duplicated_but_an_expired_one_is_taken_over(
    aws: SimpleNamespace, processor: Processor
) -> None:
    job = add_job(aws, wav_bytes())
    table = JobsTable(aws.dynamodb, NAMES.table)
    table.claim(job.job_id, object_etag="x", lease_token="someone-else", lease_seconds=300)

    assert handle_event(sqs_event_for(aws, job), FakeContext(), processor) == {
        "batchItemFailures": []
    }
    held = job_item(aws, job.job_id)
    assert (held.status, held.lease_token, held.attempts) == (
        JobStatus.PROCESSING,
        "someone-else",
        1,
    )

    # The other invocation crashed: its lease runs out and the next delivery takes over.
    table.heartbeat(job.job_id, lease_token="someone-else", progress=10, lease_seconds=-1)
    handle_event(sqs_event_for(aws, job, receive_count=2), FakeContext(), processor)
    done = job_item(aws, job.job_id)
    assert (done.status, done.attempts) == (JobStatus.COMPLETED, 2)


def test_test_event_and_unknown_objects_are_acknowledged(
    aws: SimpleNamespace, processor: Processor
) -> None:
    assert handle_event(load_event("sqs-s3-testevent.json"), FakeContext(), processor) == {
        "batchItemFailures": []
    }
    stray = add_job(aws, wav_bytes())
    event = sqs_event_for(aws, stray)
    # The record is gone, the object stays: acknowledged, nothing analysed.
    aws.dynamodb.delete_item(TableName=NAMES.table, Key={"job_id": {"S": stray.job_id}})
    assert handle_event(event, FakeContext(), processor) == {"batchItemFailures": []}
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=NAMES.bucket, Prefix="results/")


def test_garbage_body_is_reported_as_a_batch_item_failure(
    aws: SimpleNamespace, processor: Processor
) -> None:
    event = load_event("sqs-s3-garbage-body.json")
    response = handle_event(event, FakeContext(), processor)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_direct_s3_and_eventbridge_events(aws: SimpleNamespace, processor: Processor) -> None:
    direct_job = add_job(aws, wav_bytes(seconds=1))
    direct = load_event("s3-put.json")
    direct["Records"] = [s3_record_for(aws, direct_job, r) for r in direct["Records"]]
    assert handle_event(direct, FakeContext(), processor) == {"outcomes": ["completed"]}

    bridged_job = add_job(aws, wav_bytes(seconds=1))
    bridged = load_event("eventbridge-object-created.json")
    bridged["detail"]["bucket"]["name"] = NAMES.bucket
    bridged["detail"]["object"]["key"] = bridged_job.object_key
    assert handle_event(bridged, FakeContext(), processor) == {"outcomes": ["completed"]}
    assert job_item(aws, bridged_job.job_id).status is JobStatus.COMPLETED


# --- failures -----------------------------------------------------------------------------


def test_not_audio_fails_with_unsupported_format_and_is_acknowledged(
    aws: SimpleNamespace, processor: Processor
) -> None:
    job = add_job(aws, b"This is a text file that somebody named take.wav\n" * 100)
    assert handle_event(sqs_event_for(aws, job), FakeContext(), processor) == {
        "batchItemFailures": []
    }
    failed = job_item(aws, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error["code"] == "unsupported_format"
    assert failed.error["message"]


def test_truncated_file_fails_as_corrupt(aws: SimpleNamespace, processor: Processor) -> None:
    job = add_job(aws, wav_bytes()[:50_000])
    handle_event(sqs_event_for(aws, job), FakeContext(), processor)
    failed = job_item(aws, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "corrupt_audio"


def test_out_of_time_fails_with_timeout_not_stuck(
    aws: SimpleNamespace, processor: Processor
) -> None:
    job = add_job(aws, wav_bytes())
    handle_event(sqs_event_for(aws, job), FakeContext(remaining_seconds=5), processor)
    failed = job_item(aws, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "timeout"


class _ErrorBody:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b"<Error><Code>ServiceUnavailable</Code><Message>down</Message></Error>"


def _fail_gets(aws: SimpleNamespace) -> None:
    def answer_503(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 503, HTTPHeaders(), _ErrorBody())

    aws.s3.meta.events.register("before-send.s3.GetObject", answer_503)


def test_transient_failure_is_retried_then_fails_the_job_on_the_last_delivery(
    aws: SimpleNamespace,
) -> None:
    processor = make_processor(aws, max_receive_count=2)
    job = add_job(aws, wav_bytes())
    _fail_gets(aws)

    first = handle_event(sqs_event_for(aws, job, receive_count=1), FakeContext(), processor)
    assert first == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    retrying = job_item(aws, job.job_id)
    assert retrying.status is JobStatus.PROCESSING  # released for the next delivery
    assert retrying.lease_expires_at is not None

    last = handle_event(sqs_event_for(aws, job, receive_count=2), FakeContext(), processor)
    assert last == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}  # on to the DLQ
    failed = job_item(aws, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] in ("internal", "service_unavailable")
    assert "2 times" in failed.error["message"] or failed.error["message"]


def test_cancellation_between_blocks_is_honoured(aws: SimpleNamespace) -> None:
    job = add_job(aws, wav_bytes(seconds=20))
    table = JobsTable(aws.dynamodb, NAMES.table)
    cancelled = threading.Event()

    def analyze_then_cancel(reader: Any, **kwargs: Any) -> dict[str, Any]:
        inner = kwargs.pop("on_progress")

        def on_progress(done: int, total: int | None) -> None:
            if not cancelled.is_set():
                table.transition(job.job_id, JobStatus.CANCELLED, owner="alice")
                cancelled.set()
            inner(done, total)

        return analyze_stream(reader, on_progress=on_progress, **kwargs)

    processor = make_processor(aws)
    processor._analyze = analyze_then_cancel
    assert handle_event(sqs_event_for(aws, job), FakeContext(), processor) == {
        "batchItemFailures": []
    }
    assert job_item(aws, job.job_id).status is JobStatus.CANCELLED
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=NAMES.bucket, Prefix="results/")


def test_object_replaced_mid_read_fails_with_object_changed(aws: SimpleNamespace) -> None:
    # Long enough for several decoder blocks: the replacement lands between two of them.
    job = add_job(aws, wav_bytes(seconds=30))
    replaced = threading.Event()

    def analyze_and_replace(reader: Any, **kwargs: Any) -> dict[str, Any]:
        inner = kwargs.pop("on_progress")

        def on_progress(done: int, total: int | None) -> None:
            if not replaced.is_set():
                aws.s3.put_object(
                    Bucket=NAMES.bucket, Key=job.object_key, Body=wav_bytes(10, amplitude=0.5)
                )
                replaced.set()
            inner(done, total)

        return analyze_stream(reader, on_progress=on_progress, **kwargs)

    processor = make_processor(aws, read_ahead_chunks=0, cache_chunks=1)
    processor._analyze = analyze_and_replace
    handle_event(sqs_event_for(aws, job), FakeContext(), processor)
    failed = job_item(aws, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "object_changed"


def test_object_over_the_limit_fails_with_too_large(aws: SimpleNamespace) -> None:
    body = wav_bytes(seconds=1)
    job = add_job(aws, body)
    processor = make_processor(aws, max_object_bytes=len(body) - 1)
    handle_event(sqs_event_for(aws, job), FakeContext(), processor)
    failed = job_item(aws, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "too_large"
