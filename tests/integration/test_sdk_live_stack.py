"""The SDK and CLI against the live local stack (the session's ``local_stack``):
SeaweedFS as S3 — which, unlike moto, checks presigned signatures and expiry — moto's
server for SQS, the API under uvicorn, and the processor's poller. Real refusals from S3
are provoked by tampering with a URL on its way out (an old X-Amz-Date: "Request has
expired"; a changed signature: SignatureDoesNotMatch), in a transport wrapped around the
real one."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google_crc32c
import httpx
import pytest
from audiolift import Client, JobFailedError, RetryConfig, TransportError
from audiolift.cli import main
from audiolift_testkit import TEST_PART_BYTES, StackProcess
from sdk_fakes import Faulty, dropped, is_put

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(local_stack: StackProcess) -> StackProcess:
    return local_stack


def s3_of(stack: StackProcess) -> Any:
    return stack.clients.s3


def client_for(stack: StackProcess, storage: httpx.BaseTransport | None = None) -> Client:
    retry = RetryConfig(max_attempts=3, initial_backoff=0.05, max_backoff=0.2)
    return Client(stack.info.api_url, stack.info.api_key, s3_transport=storage, retry=retry)


@pytest.fixture
def noise(tmp_path: Path) -> Path:
    """Three parts (the last short): a RIFF/WAVE signature, so the SDK's local format check
    lets it through, then bytes no decoder accepts (no fmt or data chunk)."""
    path = tmp_path / "noise.wav"
    size = 2 * TEST_PART_BYTES + 12345
    riff = b"RIFF" + (size - 8).to_bytes(4, "little") + b"WAVE"
    path.write_bytes(riff + hashlib.shake_256(b"noise").digest(size - len(riff)))
    return path


def test_cli_upload_wait_then_every_command(stack: StackProcess, tmp_path: Path) -> None:
    from audiolift_devstack.samples import write_sample_recording

    recording = write_sample_recording(tmp_path / "concert.wav", 8.0)

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        env = {"AUDIOLIFT_STATE_DIR": str(tmp_path / "state")}
        code = main(["--stack-file", str(stack.stack_file), *argv], stdout=out, stderr=err,
                    stdin=io.StringIO(), env=env)  # fmt: skip
        return code, out.getvalue(), err.getvalue()

    code, out, err = run("upload", str(recording), "--wait", "--json", "--timeout", "120")
    assert code == 0, err
    document = json.loads(out)
    assert document["format"]["channels"] == 2
    assert isinstance(document["loudness"]["integrated_lufs"], float)

    (job_id,) = [
        j["job_id"] for j in json.loads(run("jobs", "--json")[1]) if j["status"] == "completed"
    ][:1]
    code, out, _ = run("result", job_id)
    assert code == 0 and "LUFS" in out and "true peak" in out
    code, out, _ = run("status", job_id)
    assert code == 0 and "completed" in out and "concert.wav" in out
    code, _, err = run("cancel", job_id)
    assert code == 1 and "already completed" in err


def test_upload_resigns_urls_real_s3_refuses(stack: StackProcess, noise: Path) -> None:
    storage = Faulty(httpx.HTTPTransport())
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")

    def expired(request: httpx.Request) -> httpx.Response:
        old = request.url.copy_set_param("X-Amz-Date", an_hour_ago)
        return storage.inner.handle_request(httpx.Request("PUT", old, headers=request.headers,
                                                          content=request.read()))  # fmt: skip

    def forged(request: httpx.Request) -> httpx.Response:
        signature = request.url.params["X-Amz-Signature"]
        bad = request.url.copy_set_param("X-Amz-Signature", signature[::-1])
        return storage.inner.handle_request(httpx.Request("PUT", bad, headers=request.headers,
                                                          content=request.read()))  # fmt: skip

    def corrupted(request: httpx.Request) -> httpx.Response:
        body = bytearray(request.read())
        body[len(body) // 2] ^= 0xFF
        return storage.inner.handle_request(httpx.Request("PUT", request.url,
                                                          headers=request.headers,
                                                          content=bytes(body)))  # fmt: skip

    storage.inject(is_put(1), expired)
    storage.inject(is_put(2), forged)
    storage.inject(is_put(3), corrupted)  # SeaweedFS checks the part's signed CRC32C
    with client_for(stack, storage) as client:
        job = client.upload(noise, concurrency=3)
        stored = s3_of(stack).get_object(Bucket=stack.info.bucket, Key=f"uploads/{job.job_id}")
        assert stored["Body"].read() == noise.read_bytes()
        assert [len(storage.puts(n)) for n in (1, 2, 3)] == [2, 2, 2]
        # S3 checked and keeps the whole file's CRC32C, which the SDK combined from the parts'.
        head = s3_of(stack).head_object(
            Bucket=stack.info.bucket, Key=f"uploads/{job.job_id}", ChecksumMode="ENABLED"
        )
        crc = google_crc32c.value(noise.read_bytes()).to_bytes(4, "big")
        assert head["ChecksumCRC32C"] == base64.b64encode(crc).decode()
        assert head["ChecksumType"] == "FULL_OBJECT"
        # Not audio: the processor fails the job, and wait says why.
        with pytest.raises(JobFailedError) as caught:
            job.wait(timeout=120)
    assert caught.value.code
    assert caught.value.job.status == "failed"


def test_resume_and_cancel_against_real_s3(stack: StackProcess, noise: Path) -> None:
    storage = Faulty(httpx.HTTPTransport())
    storage.inject(is_put(3), dropped, times=100)
    with client_for(stack, storage) as client, pytest.raises(TransportError) as caught:
        client.upload(noise, concurrency=2)
    job_id = str(caught.value.job_id)

    fresh = Faulty(httpx.HTTPTransport())
    with client_for(stack, fresh) as client:
        assert [p.part_number for p in client.uploaded_parts(job_id)] == [1, 2]
        job = client.resume(job_id, noise)
        assert [r.url.params["partNumber"] for r in fresh.puts()] == ["3"]
        assert job.status in ("uploaded", "processing", "failed")
        stored = s3_of(stack).get_object(Bucket=stack.info.bucket, Key=f"uploads/{job_id}")
        assert stored["Body"].read() == noise.read_bytes()

        # An interrupted upload, cancelled: S3 drops its parts.
        storage.rules.clear()
        storage.inject(is_put(2), dropped, times=100)
    with client_for(stack, storage) as client:
        with pytest.raises(TransportError) as caught:
            client.upload(noise, concurrency=1)
        other = str(caught.value.job_id)
        assert client.cancel(other).status == "cancelled"
    uploads = s3_of(stack).list_multipart_uploads(Bucket=stack.info.bucket).get("Uploads", [])
    assert f"uploads/{other}" not in {u["Key"] for u in uploads}
