"""The processor Lambda end to end in process: sample events from events/, the table and
bucket from template.yaml under moto, the real reader and the real analysis. Assertions
are on what ends up in DynamoDB and S3."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from audiolift_core.aws import CallLimits, s3_client
from audiolift_core.errors import ConfigurationError
from audiolift_core.jobs import Job, JobStatus
from audiolift_core.jobs_table import JobsTable
from audiolift_core.settings import ProcessorSettings, StorageSettings
from audiolift_core.storage import UploadStore
from audiolift_devstack.lambda_context import LocalLambdaContext
from audiolift_devstack.template_resources import CreatedResources, load_template
from audiolift_processor.decode import analyze_stream
from audiolift_processor.handler import handle_event
from audiolift_processor.processing import LEASE_MARGIN_SECONDS, Analyze, Processor
from audiolift_processor.s3reader import RetryPolicy
from audiolift_testkit import AwsClients, add_job
from botocore.awsrequest import AWSResponse, HTTPHeaders

EVENTS = Path(__file__).resolve().parents[3] / "events"
READER_RETRY = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def lambda_context(remaining_seconds: float = 600.0) -> LocalLambdaContext:
    return LocalLambdaContext("audiolift-processor", timeout_seconds=remaining_seconds)


def wav_bytes(
    seconds: float = 3.0, rate: int = 48000, channels: int = 2, amplitude: float = 0.25
) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = amplitude * np.sin(2 * np.pi * 997 * t)
    data = np.stack([tone] * channels, axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class Pipeline:
    """The processor over the template's table and bucket (moto), and what the tests
    need to arrange and inspect it."""

    def __init__(self, aws: AwsClients, resources: CreatedResources, reader_s3: Any):
        self.aws = aws
        self.bucket = resources.bucket_name
        self.table_name = resources.table_name
        self.table = JobsTable(aws.dynamodb, resources.table_name)
        self.store = UploadStore(aws.s3, resources.bucket_name)
        self.reader_s3 = reader_s3

    def processor(self, *, analyze: Analyze | None = None, **overrides: Any) -> Processor:
        settings = ProcessorSettings(
            storage=StorageSettings(jobs_table=self.table_name, upload_bucket=self.bucket),
            read_chunk_bytes=64 * 1024,
            progress_interval_seconds=0.0,
            **overrides,
        )
        return Processor(
            settings,
            self.table,
            self.store,
            self.reader_s3,
            analyze=analyze,
            reader_retry=READER_RETRY,
        )

    def add_job(
        self,
        body: bytes | None,
        status: JobStatus = JobStatus.AWAITING_UPLOAD,
        sha256: str | None = None,
    ) -> Job:
        return add_job(
            self.table, self.aws.s3, self.bucket, body, status=status, sha256=sha256,
            upload_id="u-1",
        )  # fmt: skip

    def job(self, job_id: str) -> Job:
        job = self.table.get(job_id)
        assert job is not None
        return job

    def results(self) -> list[str]:
        listing = self.aws.s3.list_objects_v2(Bucket=self.bucket, Prefix="results/")
        return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture
def reader_s3(aws: AwsClients) -> Any:
    """The reader's client made as the handler makes it (botocore makes one attempt per
    call), fresh per test: fault hooks registered on it end with the test."""
    return s3_client.__wrapped__(CallLimits(total_max_attempts=1))


@pytest.fixture
def pipeline(aws: AwsClients, aws_resources: CreatedResources, reader_s3: Any) -> Pipeline:
    return Pipeline(aws, aws_resources, reader_s3)


@pytest.fixture
def processor(pipeline: Pipeline) -> Processor:
    return pipeline.processor()


def s3_record_for(pipeline: Pipeline, job: Job, template: dict[str, Any]) -> dict[str, Any]:
    record = copy.deepcopy(template)
    head = pipeline.aws.s3.head_object(Bucket=pipeline.bucket, Key=job.object_key)
    record["s3"]["bucket"]["name"] = pipeline.bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{pipeline.bucket}"
    # As S3 (and moto) send it: URL-encoded, "/" included.
    record["s3"]["object"]["key"] = job.object_key.replace("/", "%2F")
    record["s3"]["object"]["eTag"] = head["ETag"].strip('"')
    record["s3"]["object"]["size"] = head["ContentLength"]
    return record


def sqs_event_for(
    pipeline: Pipeline,
    job: Job,
    *,
    receive_count: int = 1,
    event_file: str = "sqs-s3-put.json",
) -> dict[str, Any]:
    event = load_event(event_file)
    for index, message in enumerate(event["Records"]):
        body = json.loads(message["body"])
        body["Records"] = [s3_record_for(pipeline, job, r) for r in body["Records"]]
        message["body"] = json.dumps(body)
        message["messageId"] = f"message-{index}"
        message["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return event


def strict_json(raw: bytes) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(raw, parse_constant=refuse)


def no_failures() -> dict[str, Any]:
    return {"batchItemFailures": []}


# --- the happy path and at-least-once delivery ------------------------------------------


def test_sqs_wrapped_s3_event_completes_the_job(pipeline: Pipeline, processor: Processor) -> None:
    job = pipeline.add_job(wav_bytes())
    response = handle_event(sqs_event_for(pipeline, job), lambda_context(), processor)

    assert response == no_failures()
    stored = pipeline.job(job.job_id)
    assert stored.status is JobStatus.COMPLETED
    assert stored.progress == 100
    assert stored.lease_token is None
    assert stored.summary is not None
    assert stored.summary["channels"] == 2
    assert stored.summary["duration_seconds"] == pytest.approx(3.0, abs=1e-3)
    result = pipeline.aws.s3.get_object(Bucket=pipeline.bucket, Key=f"results/{job.job_id}.json")
    document = strict_json(result["Body"].read())
    assert document["job_id"] == job.job_id
    assert document["source"]["key"] == job.object_key
    assert document["format"]["channels"] == 2


def test_two_events_for_one_object_analyze_it_once(
    pipeline: Pipeline, processor: Processor
) -> None:
    job = pipeline.add_job(wav_bytes())
    put = sqs_event_for(pipeline, job)
    complete = sqs_event_for(pipeline, job, event_file="sqs-s3-complete-multipart.json")
    batch = {"Records": put["Records"] + complete["Records"]}
    batch["Records"][-1]["messageId"] = "message-complete"
    result_key = f"results/{job.job_id}.json"

    assert handle_event(batch, lambda_context(), processor) == no_failures()
    first = pipeline.aws.s3.head_object(Bucket=pipeline.bucket, Key=result_key)
    # A redelivery later is acknowledged without work, too.
    assert handle_event(put, lambda_context(), processor) == no_failures()

    stored = pipeline.job(job.job_id)
    assert stored.status is JobStatus.COMPLETED
    assert stored.attempts == 1
    again = pipeline.aws.s3.head_object(Bucket=pipeline.bucket, Key=result_key)
    assert again["ETag"] == first["ETag"]
    assert again["LastModified"] == first["LastModified"]


def test_event_before_the_api_recorded_the_upload(pipeline: Pipeline, processor: Processor) -> None:
    job = pipeline.add_job(wav_bytes(), status=JobStatus.AWAITING_UPLOAD)
    handle_event(sqs_event_for(pipeline, job), lambda_context(), processor)
    assert pipeline.job(job.job_id).status is JobStatus.COMPLETED


def test_a_live_lease_sends_the_message_back_until_it_ends_then_the_job_is_taken_over(
    pipeline: Pipeline, processor: Processor
) -> None:
    job = pipeline.add_job(wav_bytes())
    # An invocation claimed the job and crashed; its lease runs a little longer.
    pipeline.table.claim(job.job_id, object_etag="x", lease_token="crashed", lease_seconds=2.0)

    redelivery = sqs_event_for(pipeline, job, receive_count=2)
    # Not deleted as a duplicate: the message goes back to the queue.
    assert handle_event(redelivery, lambda_context(), processor) == {
        "batchItemFailures": [{"itemIdentifier": "message-0"}]
    }
    held = pipeline.job(job.job_id)
    assert (held.status, held.lease_token, held.attempts) == (
        JobStatus.PROCESSING,
        "crashed",
        1,
    )
    assert held.lease_expires_at is not None

    # The next delivery after the lease's end takes the job over and finishes it.
    time.sleep(max(0.0, held.lease_expires_at - time.time()) + 0.05)
    next_delivery = sqs_event_for(pipeline, job, receive_count=3)
    assert handle_event(next_delivery, lambda_context(), processor) == no_failures()
    done = pipeline.job(job.job_id)
    assert (done.status, done.attempts, done.lease_token) == (JobStatus.COMPLETED, 2, None)
    assert pipeline.results() == [f"results/{job.job_id}.json"]


def test_a_direct_event_for_a_leased_job_is_reported_busy(
    pipeline: Pipeline, processor: Processor
) -> None:
    job = pipeline.add_job(wav_bytes(seconds=1))
    pipeline.table.claim(job.job_id, object_etag="x", lease_token="other", lease_seconds=300)
    direct = load_event("s3-put.json")
    direct["Records"] = [s3_record_for(pipeline, job, r) for r in direct["Records"]]
    assert handle_event(direct, lambda_context(), processor) == {"outcomes": ["busy"]}
    assert pipeline.job(job.job_id).lease_token == "other"


def test_the_lease_lasts_the_configured_timeout_plus_a_margin(pipeline: Pipeline) -> None:
    job = pipeline.add_job(wav_bytes(seconds=1))
    leases: list[float] = []

    def analyze_and_look(reader: Any, **kwargs: Any) -> dict[str, Any]:
        held = pipeline.job(job.job_id)
        assert held.lease_expires_at is not None
        leases.append(held.lease_expires_at - time.time())
        return analyze_stream(reader, **kwargs)

    processor = pipeline.processor(analyze=analyze_and_look, processor_timeout_seconds=120)
    # Lambda's context would allow 600 s; the setting the visibility derives from says 120.
    handle_event(sqs_event_for(pipeline, job), lambda_context(600), processor)
    assert pipeline.job(job.job_id).status is JobStatus.COMPLETED
    assert leases and 120 < leases[0] <= 120 + LEASE_MARGIN_SECONDS


def test_every_visibility_timeout_outlasts_the_lease_of_its_function_timeout() -> None:
    """The template passes the function's timeout to the processor, and the queue's
    visibility timeout for each allowed timeout is longer than the longest lease: a
    message that comes back finds a crashed invocation's lease over."""
    template = load_template()
    function = template["Resources"]["ProcessorFunction"]["Properties"]
    assert function["Timeout"] == {"Ref": "ProcessorTimeoutSeconds"}
    variables = function["Environment"]["Variables"]
    assert variables["PROCESSOR_TIMEOUT_SECONDS"] == {"Ref": "ProcessorTimeoutSeconds"}
    allowed = template["Parameters"]["ProcessorTimeoutSeconds"]["AllowedValues"]
    rows = template["Mappings"]["VisibilityByTimeout"]
    for timeout in allowed:
        assert rows[str(timeout)]["Seconds"] > int(timeout) + LEASE_MARGIN_SECONDS


def test_processor_timeout_setting_is_read_and_bounded() -> None:
    env = {"JOBS_TABLE": "jobs", "UPLOAD_BUCKET": "uploads"}
    assert ProcessorSettings.from_env(env).processor_timeout_seconds == 900
    settings = ProcessorSettings.from_env({**env, "PROCESSOR_TIMEOUT_SECONDS": "120"})
    assert settings.processor_timeout_seconds == 120
    for bad in ("0", "901", "ten"):
        with pytest.raises(ConfigurationError, match="PROCESSOR_TIMEOUT_SECONDS"):
            ProcessorSettings.from_env({**env, "PROCESSOR_TIMEOUT_SECONDS": bad})


# --- the object's SHA-256 -----------------------------------------------------------------


def stored_item(pipeline: Pipeline, job_id: str) -> dict[str, Any]:
    response = pipeline.aws.dynamodb.get_item(
        TableName=pipeline.table_name, Key={"job_id": {"S": job_id}}
    )
    item: dict[str, Any] = response["Item"]
    return item


@pytest.mark.parametrize("declared", [False, True], ids=["undeclared", "declared"])
def test_the_hash_computed_while_streaming_is_on_the_job_and_in_the_result(
    pipeline: Pipeline, processor: Processor, declared: bool
) -> None:
    body = wav_bytes()
    digest = hashlib.sha256(body).hexdigest()
    job = pipeline.add_job(body, sha256=digest.upper() if declared else None)
    assert handle_event(sqs_event_for(pipeline, job), lambda_context(), processor) == no_failures()

    assert pipeline.job(job.job_id).status is JobStatus.COMPLETED
    assert stored_item(pipeline, job.job_id)["verified_sha256"] == {"S": digest}
    result = pipeline.aws.s3.get_object(Bucket=pipeline.bucket, Key=f"results/{job.job_id}.json")
    assert strict_json(result["Body"].read())["source"]["sha256"] == digest


def test_a_different_declared_hash_fails_the_job_and_writes_no_result(
    pipeline: Pipeline, processor: Processor
) -> None:
    body = wav_bytes()
    job = pipeline.add_job(body, sha256=hashlib.sha256(b"what the client had").hexdigest())
    assert handle_event(sqs_event_for(pipeline, job), lambda_context(), processor) == no_failures()

    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "checksum_mismatch"
    assert hashlib.sha256(body).hexdigest() in failed.error["message"]
    assert "verified_sha256" not in stored_item(pipeline, job.job_id)
    assert pipeline.results() == []


def test_damaged_bytes_with_a_declared_hash_are_a_checksum_mismatch_not_bad_audio(
    pipeline: Pipeline, processor: Processor
) -> None:
    good = wav_bytes()
    damaged = b"\0" * 64 + good[64:]  # the header lost on the way: not even a WAV now
    job = pipeline.add_job(damaged, sha256=hashlib.sha256(good).hexdigest())
    handle_event(sqs_event_for(pipeline, job), lambda_context(), processor)
    failed = pipeline.job(job.job_id)
    assert failed.error is not None and failed.error["code"] == "checksum_mismatch"


def test_bad_audio_that_arrived_intact_stays_bad_audio(
    pipeline: Pipeline, processor: Processor
) -> None:
    truncated = wav_bytes()[:50_000]  # what the client had, hash and all
    job = pipeline.add_job(truncated, sha256=hashlib.sha256(truncated).hexdigest())
    handle_event(sqs_event_for(pipeline, job), lambda_context(), processor)
    failed = pipeline.job(job.job_id)
    assert failed.error is not None and failed.error["code"] == "corrupt_audio"


def test_test_event_and_unknown_objects_are_acknowledged(
    pipeline: Pipeline, processor: Processor
) -> None:
    test_event = load_event("sqs-s3-testevent.json")
    assert handle_event(test_event, lambda_context(), processor) == no_failures()
    stray = pipeline.add_job(wav_bytes())
    event = sqs_event_for(pipeline, stray)
    # The record is gone, the object stays: acknowledged, nothing analyzed.
    pipeline.aws.dynamodb.delete_item(
        TableName=pipeline.table_name, Key={"job_id": {"S": stray.job_id}}
    )
    assert handle_event(event, lambda_context(), processor) == no_failures()
    assert pipeline.results() == []


def test_garbage_body_is_reported_as_a_batch_item_failure(
    pipeline: Pipeline, processor: Processor
) -> None:
    event = load_event("sqs-s3-garbage-body.json")
    response = handle_event(event, lambda_context(), processor)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_direct_s3_and_eventbridge_events(pipeline: Pipeline, processor: Processor) -> None:
    direct_job = pipeline.add_job(wav_bytes(seconds=1))
    direct = load_event("s3-put.json")
    direct["Records"] = [s3_record_for(pipeline, direct_job, r) for r in direct["Records"]]
    assert handle_event(direct, lambda_context(), processor) == {"outcomes": ["completed"]}

    bridged_job = pipeline.add_job(wav_bytes(seconds=1))
    bridged = load_event("eventbridge-object-created.json")
    bridged["detail"]["bucket"]["name"] = pipeline.bucket
    bridged["detail"]["object"]["key"] = bridged_job.object_key
    assert handle_event(bridged, lambda_context(), processor) == {"outcomes": ["completed"]}
    assert pipeline.job(bridged_job.job_id).status is JobStatus.COMPLETED


# --- failures -----------------------------------------------------------------------------


def test_not_audio_fails_with_unsupported_format_and_is_acknowledged(
    pipeline: Pipeline, processor: Processor
) -> None:
    job = pipeline.add_job(b"This is a text file that somebody named take.wav\n" * 100)
    assert handle_event(sqs_event_for(pipeline, job), lambda_context(), processor) == no_failures()
    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error["code"] == "unsupported_format"
    assert failed.error["message"]


def test_truncated_file_fails_as_corrupt(pipeline: Pipeline, processor: Processor) -> None:
    job = pipeline.add_job(wav_bytes()[:50_000])
    handle_event(sqs_event_for(pipeline, job), lambda_context(), processor)
    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "corrupt_audio"


def test_out_of_time_fails_with_timeout_not_stuck(pipeline: Pipeline, processor: Processor) -> None:
    job = pipeline.add_job(wav_bytes())
    handle_event(sqs_event_for(pipeline, job), lambda_context(remaining_seconds=5), processor)
    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "timeout"


class _ErrorBody:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b"<Error><Code>ServiceUnavailable</Code><Message>down</Message></Error>"


def _fail_gets(client: Any) -> list[str]:
    """Answer every GetObject on ``client`` with a 503; returns the ranges asked for, one
    entry per attempt that went over the (botocore) wire."""
    attempts: list[str] = []

    def answer_503(request: Any, **_: Any) -> AWSResponse:
        attempts.append(str(request.headers.get("Range", b""), "ascii"))
        return AWSResponse(request.url, 503, HTTPHeaders(), _ErrorBody())

    # First: moto answers in its own before-send handler, which would end the event.
    client.meta.events.register_first("before-send.s3.GetObject", answer_503)
    return attempts


def test_transient_failure_is_retried_then_fails_the_job_on_the_last_delivery(
    pipeline: Pipeline,
) -> None:
    processor = pipeline.processor(max_receive_count=2)
    job = pipeline.add_job(wav_bytes())
    attempts = _fail_gets(pipeline.reader_s3)

    first = handle_event(sqs_event_for(pipeline, job, receive_count=1), lambda_context(), processor)
    assert first == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    # One retry layer: each range (read-ahead ones too) is sent as often as the reader's
    # policy says, not that many times botocore's attempts.
    per_range = Counter(attempts)
    assert per_range[f"bytes=0-{64 * 1024 - 1}"] == READER_RETRY.max_attempts
    assert max(per_range.values()) == READER_RETRY.max_attempts
    retrying = pipeline.job(job.job_id)
    assert retrying.status is JobStatus.PROCESSING  # released for the next delivery
    assert retrying.lease_expires_at is not None

    last = handle_event(sqs_event_for(pipeline, job, receive_count=2), lambda_context(), processor)
    assert last == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}  # on to the DLQ
    assert max(Counter(attempts).values()) == 2 * READER_RETRY.max_attempts
    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == {
        "code": "internal",
        "message": "The analysis failed 2 times in a row, once per delivery, and was "
        "abandoned (last error: service_unavailable).",
    }


def test_cancellation_between_blocks_is_honoured(pipeline: Pipeline) -> None:
    job = pipeline.add_job(wav_bytes(seconds=20))
    cancelled = threading.Event()

    def analyze_then_cancel(reader: Any, **kwargs: Any) -> dict[str, Any]:
        inner = kwargs.pop("on_progress")

        def on_progress(done: int, total: int | None) -> None:
            if not cancelled.is_set():
                pipeline.table.transition(job.job_id, JobStatus.CANCELLED, owner="alice")
                cancelled.set()
            inner(done, total)

        return analyze_stream(reader, on_progress=on_progress, **kwargs)

    processor = pipeline.processor(analyze=analyze_then_cancel)
    assert handle_event(sqs_event_for(pipeline, job), lambda_context(), processor) == no_failures()
    assert pipeline.job(job.job_id).status is JobStatus.CANCELLED
    assert pipeline.results() == []


def test_object_replaced_mid_read_fails_with_object_changed(pipeline: Pipeline) -> None:
    # Long enough for several decoder blocks: the replacement lands between two of them.
    job = pipeline.add_job(wav_bytes(seconds=30))
    replaced = threading.Event()

    def analyze_and_replace(reader: Any, **kwargs: Any) -> dict[str, Any]:
        inner = kwargs.pop("on_progress")

        def on_progress(done: int, total: int | None) -> None:
            if not replaced.is_set():
                pipeline.aws.s3.put_object(
                    Bucket=pipeline.bucket, Key=job.object_key, Body=wav_bytes(10, amplitude=0.5)
                )
                replaced.set()
            inner(done, total)

        return analyze_stream(reader, on_progress=on_progress, **kwargs)

    processor = pipeline.processor(analyze=analyze_and_replace, read_ahead_chunks=0, cache_chunks=1)
    handle_event(sqs_event_for(pipeline, job), lambda_context(), processor)
    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "object_changed"
    assert pipeline.bucket not in failed.error["message"]


@pytest.mark.parametrize("status", [JobStatus.AWAITING_UPLOAD, JobStatus.UPLOADED])
def test_object_deleted_before_processing_fails_the_job_at_once(
    pipeline: Pipeline, processor: Processor, status: JobStatus
) -> None:
    job = pipeline.add_job(wav_bytes(seconds=1), status=status)
    event = sqs_event_for(pipeline, job)
    pipeline.aws.s3.delete_object(Bucket=pipeline.bucket, Key=job.object_key)

    # Acknowledged (nothing will bring the object back), and the job has ended.
    assert handle_event(event, lambda_context(), processor) == no_failures()
    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "object_missing"
    assert job.object_key not in failed.error["message"]
    assert failed.lease_token is None
    assert pipeline.results() == []


def test_object_deleted_mid_read_fails_with_object_missing(pipeline: Pipeline) -> None:
    job = pipeline.add_job(wav_bytes(seconds=30))
    deleted = threading.Event()

    def analyze_and_delete(reader: Any, **kwargs: Any) -> dict[str, Any]:
        inner = kwargs.pop("on_progress")

        def on_progress(done: int, total: int | None) -> None:
            if not deleted.is_set():
                pipeline.aws.s3.delete_object(Bucket=pipeline.bucket, Key=job.object_key)
                deleted.set()
            inner(done, total)

        return analyze_stream(reader, on_progress=on_progress, **kwargs)

    processor = pipeline.processor(analyze=analyze_and_delete, read_ahead_chunks=0, cache_chunks=1)
    assert handle_event(sqs_event_for(pipeline, job), lambda_context(), processor) == no_failures()
    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "object_missing"
    assert pipeline.results() == []


def test_object_over_the_limit_fails_with_too_large(pipeline: Pipeline) -> None:
    body = wav_bytes(seconds=1)
    job = pipeline.add_job(body)
    processor = pipeline.processor(max_object_bytes=len(body) - 1)
    handle_event(sqs_event_for(pipeline, job), lambda_context(), processor)
    failed = pipeline.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "too_large"


def test_the_deployed_reader_client_lets_botocore_try_once(
    aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the handler wires: botocore tries each of the reader's GETs once (the reader
    retries them)."""
    from audiolift_processor.handler import default_processor

    monkeypatch.setenv("JOBS_TABLE", "audiolift-jobs")
    monkeypatch.setenv("UPLOAD_BUCKET", "audiolift-uploads")
    processor = default_processor.__wrapped__()
    assert processor.reader_s3.meta.config.retries == {  # type: ignore[attr-defined]
        "mode": "standard",
        "total_max_attempts": 1,
    }
