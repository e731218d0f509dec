"""Helpers shared by the tests and the fixtures in tests/conftest.py (importable as
``audiolift_testkit``: pytest puts tests/ on sys.path for its conftest). Test modules
import from here, never from ``conftest`` (several directories have one)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from audiolift_devstack.clients import StackClients, clients_for, s3_client_for
from audiolift_devstack.lambda_context import LocalLambdaContext
from audiolift_devstack.launcher import StackProcess, start_stack_process
from audiolift_devstack.net import free_port

if TYPE_CHECKING:
    from audiolift_api.service import UploadService
    from audiolift_core.jobs import Job, JobStatus
    from audiolift_core.jobs_table import JobsTable
    from audiolift_core.storage import UploadStore
    from fastapi.testclient import TestClient

REGION = "us-east-1"
# Parts this small keep multipart tests fast; moto is told to accept them (small_s3_parts).
SMALL_PART_BYTES = 1024
API_KEYS = {"alice": "alice-secret-key-0001", "bob": "bob-secret-key-0002"}
# S3's minimum part size, which SeaweedFS enforces too (EntityTooSmall on complete): the
# smallest parts a live-stack test can use; a file of a few tens of MiB has several.
TEST_PART_BYTES = 5 * 1024 * 1024
# Failed deliveries on a test stack come back after this many seconds, not the template's
# 6x 15 minutes, so retry-and-DLQ tests take seconds. Processing a test file takes well
# under this.
TEST_VISIBILITY_TIMEOUT = 6

__all__ = [
    "API_KEYS",
    "REGION",
    "SMALL_PART_BYTES",
    "TEST_PART_BYTES",
    "TEST_VISIBILITY_TIMEOUT",
    "Api",
    "AwsClients",
    "LocalLambdaContext",
    "StackClients",
    "StackProcess",
    "api_key_hashes",
    "bearer",
    "clients_for",
    "complete_upload",
    "fetch_result",
    "free_port",
    "s3_client_for",
    "start_stack_process",
    "upload_through_api",
    "wait_for_job",
]


@dataclass
class AwsClients:
    s3: Any
    dynamodb: Any
    sqs: Any


def api_key_hashes() -> dict[str, str]:
    """sha256 hex -> owner, as ApiSettings keeps them (never the keys themselves)."""
    return {hashlib.sha256(key.encode()).hexdigest(): owner for owner, key in API_KEYS.items()}


def bearer(owner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEYS[owner]}"}


@dataclass
class Api:
    """The API under test and what it stands on, for assertions on side effects."""

    client: TestClient
    service: UploadService
    aws: AwsClients
    bucket: str
    table: str
    jobs: JobsTable
    store: UploadStore
    owners: dict[str, str] = field(default_factory=lambda: dict(API_KEYS))

    def auth(self, owner: str) -> dict[str, str]:
        return bearer(owner)

    def create_upload(
        self, owner: str = "alice", *, size: int = 3000, filename: str = "take.wav", **extra: Any
    ) -> dict[str, Any]:
        response = self.client.post(
            "/v1/uploads",
            json={"filename": filename, "size": size, **extra},
            headers=self.auth(owner),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def upload_parts(self, job_id: str, payload: bytes, numbers: Any = None) -> None:
        """PUT the parts as a client would (moto in process cannot take the presigned URLs'
        HTTP requests: tests/integration does that against moto's server)."""
        job = self.jobs.get(job_id)
        assert job is not None and job.upload_id
        for number in numbers or range(1, job.part_count + 1):
            offset, length = job.plan.part_range(number)
            self.aws.s3.upload_part(
                Bucket=self.bucket,
                Key=job.object_key,
                UploadId=job.upload_id,
                PartNumber=number,
                Body=payload[offset : offset + length],
            )


def tone_wav(
    seconds: float = 1.0, rate: int = 22050, *, amplitude: float = 0.3, frequency: float = 440.0
) -> bytes:
    """A mono 16-bit WAV of a sine tone."""
    import io

    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, amplitude * np.sin(2 * np.pi * frequency * t), rate, "PCM_16", format="WAV")
    return buffer.getvalue()


def add_job(
    table: JobsTable,
    s3: Any,
    bucket: str,
    body: bytes | None,
    *,
    status: JobStatus | None = None,
    filename: str = "take.wav",
    content_type: str = "audio/wav",
    sha256: str | None = None,
    upload_id: str | None = None,
) -> Job:
    """A job record of one part, ``uploaded`` unless told, and its object in the bucket
    (none when ``body`` is None), as the processor finds them."""
    from audiolift_core.jobs import Job, JobStatus, isoformat, new_job_id, utc_now

    job_id = new_job_id()
    now = isoformat(utc_now())
    size = len(body or b"")
    job = Job(
        job_id=job_id,
        owner="alice",
        status=status or JobStatus.UPLOADED,
        filename=filename,
        size=size,
        content_type=content_type,
        object_key=f"uploads/{job_id}",
        created_at=now,
        updated_at=now,
        part_size=size,
        part_count=1,
        upload_id=upload_id,
        sha256=sha256,
    )
    table.create(job)
    if body is not None:
        s3.put_object(Bucket=bucket, Key=job.object_key, Body=body)
    return job


# --- the live stack, through its HTTP API -------------------------------------------------

JOB_TIMEOUT = 120.0  # seconds a test job may take on the live stack


def upload_through_api(
    stack: StackProcess, path: Path, *, content_type: str = "audio/wav", complete: bool = True
) -> dict[str, Any]:
    """The client's side of the contract, by hand: create, PUT every part, complete
    (``complete=False``: not yet; ``complete_upload(stack, upload)`` does it, with the
    parts' ETags in ``upload["sent"]``)."""
    size = path.stat().st_size
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        created = api.post(
            "/v1/uploads",
            json={"filename": path.name, "size": size, "content_type": content_type},
        )
        assert created.status_code == 201, created.text
        upload = created.json()
        part_size, part_count = upload["part_size"], upload["part_count"]
        urls = {p["part_number"]: p["url"] for p in upload["parts"]}
        missing = [n for n in range(1, part_count + 1) if n not in urls]
        if missing:
            signed = api.post(
                f"/v1/uploads/{upload['job_id']}/parts", json={"part_numbers": missing}
            )
            assert signed.status_code == 200, signed.text
            urls.update({p["part_number"]: p["url"] for p in signed.json()["parts"]})
        etags = []
        with path.open("rb") as stream, httpx.Client(timeout=60) as s3:
            for number in range(1, part_count + 1):
                stream.seek((number - 1) * part_size)
                put = s3.put(urls[number], content=stream.read(part_size))
                assert put.status_code == 200, put.text
                etags.append({"part_number": number, "etag": put.headers["etag"]})
    upload["sent"] = etags
    if complete:
        complete_upload(stack, upload)
    return upload


def complete_upload(stack: StackProcess, upload: dict[str, Any]) -> None:
    """Complete an upload ``upload_through_api(..., complete=False)`` sent."""
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        completed = api.post(
            f"/v1/uploads/{upload['job_id']}/complete", json={"parts": upload["sent"]}
        )
        assert completed.status_code == 200, completed.text


def wait_for_job(stack: StackProcess, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        while True:
            response = api.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in ("completed", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(0.25)


def fetch_result(stack: StackProcess, job_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        response = api.get(f"/v1/jobs/{job_id}/result")
        if response.status_code == 303:
            response = httpx.get(response.headers["location"], timeout=30)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document
