"""The SDK and CLI against the real upload API in process: the FastAPI app reached through
httpx's ASGI transport (bridged to the SDK's sync client), DynamoDB and S3 from moto's
server on 127.0.0.1, so part PUTs are real HTTP requests to presigned URLs.

Faults are injected by a transport wrapped around the real one (no patching): 5xx,
dropped connections, and the 403 S3 gives for an expired URL (moto does not enforce
presigned expiry; SeaweedFS does, see the integration tests).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import boto3
import google_crc32c
import httpx
import pytest
from audiolift import Client, ConflictError, JobFailedError, RetryConfig, UploadError
from audiolift.cli import main
from audiolift_devstack.clients import local_s3_config
from sdk_fakes import Faulty, dropped, is_put, s3_refusal, wav_bytes

PART_BYTES = 256 * 1024
API_KEY = "sdk-test-key"
REGION = "us-east-1"


class SyncASGITransport(httpx.BaseTransport):
    """httpx.ASGITransport for a sync client: each request runs on an event loop in a
    helper thread (anyio's blocking portal); the SDK's worker threads may call at once."""

    def __init__(self, app: Any):
        self._asgi = httpx.ASGITransport(app=app)
        self._portal_context = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_context.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        copy = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            response = await self._asgi.handle_async_request(copy)
            body = await response.aread()
            return response.status_code, response.headers.raw, body

        status, headers, body = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=body)

    def close(self) -> None:
        self._portal_context.__exit__(None, None, None)


@dataclass
class AppStack:
    url: str
    s3: Any
    bucket: str
    jobs: Any
    api: Faulty
    storage: Faulty
    make_client: Callable[..., Client]


@pytest.fixture
def app_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AppStack]:
    import moto.s3.models
    from audiolift_api.app import create_app
    from audiolift_api.service import UploadService
    from audiolift_core.jobs_table import JobsTable
    from audiolift_core.settings import ApiSettings, StorageSettings
    from audiolift_core.storage import UploadStore
    from audiolift_devstack.net import free_port
    from audiolift_devstack.template_resources import ResourceNames, create_resources
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB",
                 "AWS_PROFILE", "AWS_SESSION_TOKEN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # moto's server runs in this process: its part minimum is this module constant.
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1024)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=endpoint,
            config=local_s3_config(),
        )
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
        names = ResourceNames.with_prefix(
            "sdk-" + hashlib.md5(str(tmp_path).encode()).hexdigest()[:8]
        )
        created = create_resources(s3, dynamodb, sqs, names=names)
        settings = ApiSettings(
            storage=StorageSettings(
                jobs_table=created.table_name, upload_bucket=created.bucket_name
            ),
            auth_mode="api_key",
            api_key_hashes={hashlib.sha256(API_KEY.encode()).hexdigest(): "sdk-tester"},
            part_min_bytes=PART_BYTES,
            preferred_part_bytes=PART_BYTES,
        )
        jobs = JobsTable(dynamodb, created.table_name)
        service = UploadService(settings, jobs, UploadStore(s3, created.bucket_name))
        asgi = SyncASGITransport(create_app(service=service))
        api = Faulty(asgi)
        storage = Faulty(httpx.HTTPTransport())
        retry = RetryConfig(max_attempts=4, initial_backoff=0.01, max_backoff=0.05)

        def make_client(**options: Any) -> Client:
            return Client(
                "http://api.test", options.pop("api_key", API_KEY), transport=api,
                s3_transport=storage, retry=retry, **options,
            )  # fmt: skip

        yield AppStack("http://api.test", s3, created.bucket_name, jobs, api, storage, make_client)
        asgi.close()
    finally:
        server.stop()


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "session.wav"
    path.write_bytes(wav_bytes(PART_BYTES * 5 + 1234, b"session"))
    return path


def stored_object(stack: AppStack, job_id: str) -> bytes:
    body: bytes = stack.s3.get_object(Bucket=stack.bucket, Key=f"uploads/{job_id}")["Body"].read()
    return body


def test_parallel_upload_through_the_app(app_stack: AppStack, recording: Path) -> None:
    with app_stack.make_client() as client:
        job = client.upload(recording, concurrency=4)
    assert job.status == "uploaded"
    assert (job.part_size, job.part_count) == (PART_BYTES, 6)
    assert stored_object(app_stack, job.job_id) == recording.read_bytes()
    record = app_stack.jobs.get(job.job_id)
    assert record.status.value == "uploaded"
    assert record.sha256 == hashlib.sha256(recording.read_bytes()).hexdigest()
    assert job.sha256 == record.sha256  # declared at completion, shown in the job view
    assert record.owner == "sdk-tester"
    assert all("authorization" not in r.headers for r in app_stack.storage.seen)
    # Every part went with the CRC32C of its bytes, signed into its URL.
    data = recording.read_bytes()
    for put in app_stack.storage.puts():
        number = int(put.url.params["partNumber"])
        part = data[(number - 1) * PART_BYTES : number * PART_BYTES]
        crc = base64.b64encode(google_crc32c.value(part).to_bytes(4, "big")).decode()
        assert put.headers["x-amz-checksum-crc32c"] == crc
        assert put.url.params["X-Amz-SignedHeaders"] == "content-length;host;x-amz-checksum-crc32c"


def test_faults_are_retried_and_expired_urls_resigned(app_stack: AppStack, recording: Path) -> None:
    storage, api = app_stack.storage, app_stack.api
    storage.inject(is_put(2), s3_refusal(500, "InternalError", "try again"), times=2)
    storage.inject(is_put(3), dropped)
    storage.inject(is_put(5), s3_refusal(403, "AccessDenied", "Request has expired"))
    api.inject(lambda r: r.url.path == "/v1/uploads", dropped)  # before reaching the app

    with app_stack.make_client() as client:
        job = client.upload(recording, concurrency=3)

    assert stored_object(app_stack, job.job_id) == recording.read_bytes()
    assert len(storage.puts(2)) == 3 and len(storage.puts(3)) == 2 and len(storage.puts(5)) == 2
    signs = [r for r in api.seen if r.method == "POST" and r.url.path.endswith("/parts")]
    signed = [n for r in signs for n in json.loads(r.content)["part_numbers"]]
    assert sorted(signed) == [1, 2, 3, 4, 5, 5, 6]  # part 5 signed again after its 403


def test_resume_after_an_interrupted_upload_sends_only_missing_parts(
    app_stack: AppStack, recording: Path
) -> None:
    storage = app_stack.storage
    storage.inject(is_put(4), s3_refusal(400, "InvalidArgument", "crash"))
    with app_stack.make_client() as client:
        with pytest.raises(UploadError) as caught:
            client.upload(recording, concurrency=1)
        job_id = str(caught.value.job_id)
        assert [p.part_number for p in client.uploaded_parts(job_id)] == [1, 2, 3]
        before = len(storage.puts())

        job = client.resume(job_id, recording, concurrency=2)

    sent = [int(r.url.params["partNumber"]) for r in storage.puts()[before:]]
    assert sorted(sent) == [4, 5, 6]
    assert job.status == "uploaded"
    assert stored_object(app_stack, job_id) == recording.read_bytes()


def test_cancel_aborts_the_upload(app_stack: AppStack, recording: Path) -> None:
    app_stack.storage.inject(is_put(2), s3_refusal(400, "InvalidArgument", "crash"))
    with app_stack.make_client() as client:
        with pytest.raises(UploadError) as caught:
            client.upload(recording, concurrency=1)
        job_id = str(caught.value.job_id)
        assert client.cancel(job_id).status == "cancelled"
        with pytest.raises(ConflictError):
            client.resume(job_id, recording)
    assert app_stack.jobs.get(job_id).status.value == "cancelled"
    uploads = app_stack.s3.list_multipart_uploads(Bucket=app_stack.bucket).get("Uploads", [])
    assert not [u for u in uploads if u["Key"] == f"uploads/{job_id}"]


def test_wait_reports_a_failed_job(app_stack: AppStack, recording: Path) -> None:
    from audiolift_core.jobs import JobStatus

    with app_stack.make_client() as client:
        job = client.upload(recording)
        app_stack.jobs.transition(
            job.job_id,
            JobStatus.FAILED,
            set_fields={"error": {"code": "corrupt_audio", "message": "No audio frames."}},
        )
        with pytest.raises(JobFailedError) as caught:
            job.wait(timeout=5)
    assert caught.value.code == "corrupt_audio"
    assert "No audio frames." in caught.value.message


def test_cli_against_the_app(app_stack: AppStack, recording: Path, tmp_path: Path) -> None:
    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            list(argv),
            client_factory=lambda connection: app_stack.make_client(api_key=connection.api_key),
            stdout=out,
            stderr=err,
            stdin=io.StringIO(),
            env={"AUDIOLIFT_API_URL": app_stack.url, "AUDIOLIFT_API_KEY": API_KEY,
                 "AUDIOLIFT_STATE_DIR": str(tmp_path / "state")},
        )  # fmt: skip
        return code, out.getvalue(), err.getvalue()

    code, out, err = run("upload", str(recording), "--json")
    assert code == 0, err
    job_id = json.loads(out)["job_id"]
    assert stored_object(app_stack, job_id) == recording.read_bytes()

    code, out, _ = run("status", job_id)
    assert code == 0 and "uploaded" in out and "session.wav" in out
    code, out, _ = run("jobs")
    assert code == 0 and job_id in out
    code, _, err = run("result", job_id)
    assert code == 1 and "[conflict]" in err
    code, out, _ = run("cancel", job_id)
    assert (code, out) == (0, f"Job {job_id} is cancelled.\n")
    code, _, err = run("status", job_id, "--api-key", "wrong-key")
    assert code == 1 and "[unauthorized]" in err


def test_limits_from_the_app(app_stack: AppStack) -> None:
    from audiolift._formats import FORMATS

    with app_stack.make_client() as client:
        limits = client.limits()
    assert (limits.min_part_bytes, limits.preferred_part_bytes) == (PART_BYTES, PART_BYTES)
    assert limits.max_parts == 10_000
    # The formats the server lists are the SDK's own table (one source of truth).
    assert [f.name for f in limits.formats] == [f.name for f in FORMATS]
    assert limits.cost is not None and limits.cost.price_date
