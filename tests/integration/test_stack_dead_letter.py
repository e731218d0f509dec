"""A processor run that keeps failing is retried by the queue, ends in the DLQ, and the
job ends ``failed`` with a code — never stuck in ``processing``.

The whole local path is real: the SDK uploads through the API, moto's S3 announces the
object on the queue, the poller delivers Lambda-shaped batches to the real processor
handler, the queue's redrive (from template.yaml) moves the message to the DLQ. The
only fault is injected at the processor's S3 transport: every GetObject answers 503, as
during an S3 outage."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from audiolift import Client
from audiolift_core.jobs_table import JobsTable
from audiolift_core.settings import ProcessorSettings
from audiolift_core.storage import UploadStore
from audiolift_devstack.samples import write_sample_recording
from audiolift_devstack.stack import Stack, StackConfig
from audiolift_processor.handler import handle_event
from audiolift_processor.processing import Processor
from audiolift_processor.s3reader import RetryPolicy
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

pytestmark = pytest.mark.integration

SMALL_PART = 256 * 1024


class _ErrorBody:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b"<Error><Code>ServiceUnavailable</Code><Message>outage</Message></Error>"


class ProcessorDuringAnS3Outage:
    """The real processor handler; its S3 reads fail. Built on the first delivery, once
    the stack has set the functions' environment."""

    def __init__(self) -> None:
        self.processor: Processor | None = None
        self.deliveries = 0

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if self.processor is None:
            settings = ProcessorSettings.from_env()
            region = os.environ["AWS_DEFAULT_REGION"]
            s3 = boto3.client("s3", region_name=region, config=Config(retries={"max_attempts": 1}))
            events: Any = s3.meta.events  # botocore's stubs want handlers that return None
            events.register(
                "before-send.s3.GetObject",
                lambda request, **_: AWSResponse(request.url, 503, HTTPHeaders(), _ErrorBody()),
            )
            self.processor = Processor(
                settings,
                JobsTable(
                    boto3.client("dynamodb", region_name=region), settings.storage.jobs_table
                ),
                UploadStore(s3, settings.storage.upload_bucket),
                s3,
                reader_retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
            )
        self.deliveries += len(event.get("Records", []))
        return handle_event(event, context, self.processor)


def test_a_failing_run_is_retried_then_dead_lettered_and_the_job_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.s3.models

    # moto runs in this process and read its part minimum at import: lower it here.
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", SMALL_PART)
    handler = ProcessorDuringAnS3Outage()
    config = StackConfig(
        state_dir=tmp_path / "state",
        s3_backend="moto",
        part_min_bytes=SMALL_PART,
        part_size_bytes=SMALL_PART,
        visibility_timeout=1,
        poll_wait_seconds=1,
        processor_handler=handler,
    )
    recording = write_sample_recording(tmp_path / "take.wav", seconds=3, samplerate=22050)
    with Stack(config) as stack:
        info = stack.info
        assert info is not None
        with Client(info.api_url, info.api_key) as client:
            job = client.upload(recording)
            deadline = time.monotonic() + 90
            while True:
                job = client.get_job(job.job_id)
                if job.status in ("completed", "failed", "cancelled"):
                    break
                assert time.monotonic() < deadline, f"job stuck in {job.status}"
                time.sleep(0.25)
        sqs = boto3.client("sqs", region_name=info.region, endpoint_url=info.aws_endpoint)
        dead: list[Any] = []
        deadline = time.monotonic() + 30
        while not dead and time.monotonic() < deadline:
            dead = sqs.receive_message(QueueUrl=info.dlq_url, WaitTimeSeconds=1).get("Messages", [])

    assert job.status == "failed"
    assert job.error is not None
    assert job.error["code"] in ("internal", "service_unavailable")
    assert "times" in job.error["message"]
    # Every delivery up to the redrive's maxReceiveCount was tried, then the DLQ took it.
    assert handler.deliveries >= info.max_receive_count
    assert dead, "the failing message did not reach the DLQ"
    assert job.job_id in dead[0]["Body"]
