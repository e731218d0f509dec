"""An upload that really travels over HTTP: the API (in process) signs part URLs for moto's
server, the test PUTs the bytes to them with httpx, completes through the API, and reads
the object back. moto does not check SigV4 signatures or expiry: that a URL is signed
right and refused once expired is for the local stack's real S3 (SeaweedFS) to prove."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import boto3
import httpx
import pytest
from audiolift_api.app import create_app
from audiolift_api.service import UploadService
from audiolift_core.jobs import JobStatus
from audiolift_core.jobs_table import JobsTable
from audiolift_core.settings import ApiSettings, StorageSettings
from audiolift_core.storage import UploadStore, result_key
from audiolift_devstack.template_resources import ResourceNames, create_resources
from audiolift_testkit import SMALL_PART_BYTES, api_key_hashes, bearer
from botocore.config import Config
from fastapi.testclient import TestClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def moto_server(
    aws_credentials: None, small_s3_parts: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # Bucket CORS answers instead of moto's allow-everything default.
    monkeypatch.setenv("MOTO_DISABLE_GLOBAL_CORS", "true")
    # The server runs in this process: small_s3_parts has lowered its part minimum; the
    # variable is for anything that imports moto afresh.
    monkeypatch.setenv("S3_UPLOAD_PART_MIN_SIZE", str(small_s3_parts))
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass
class Stack:
    client: TestClient
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    jobs: JobsTable


@pytest.fixture
def stack(moto_server: str) -> Iterator[Stack]:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    # moto's server keeps its state for the whole process: names unique to this test.
    names = ResourceNames.with_prefix(f"it-api-{uuid.uuid4().hex[:8]}")
    created = create_resources(s3, dynamodb, sqs, names=names)
    settings = ApiSettings(
        storage=StorageSettings(jobs_table=created.table_name, upload_bucket=created.bucket_name),
        auth_mode="api_key",
        api_key_hashes=api_key_hashes(),
        part_min_bytes=SMALL_PART_BYTES,
        preferred_part_bytes=SMALL_PART_BYTES,
        presign_ttl_seconds=120,
    )
    jobs = JobsTable(dynamodb, created.table_name)
    service = UploadService(settings, jobs, UploadStore(s3, created.bucket_name))
    with TestClient(create_app(service=service)) as client:
        yield Stack(client, s3, sqs, created.bucket_name, created.queue_url, jobs)


def test_put_bytes_to_presigned_urls_and_complete(stack: Stack) -> None:
    payload = os.urandom(5 * SMALL_PART_BYTES + 321)
    created = stack.client.post(
        "/v1/uploads",
        json={"filename": "session.wav", "size": len(payload), "content_type": "audio/wav"},
        headers=bearer("alice"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    job_id = body["job_id"]
    assert body["part_count"] == 6 and len(body["parts"]) == 6

    etags = []
    with httpx.Client(timeout=30) as http:
        for part in body["parts"]:
            number = part["part_number"]
            assert part["url"].startswith(str(stack.s3.meta.endpoint_url))
            chunk = payload[(number - 1) * SMALL_PART_BYTES : number * SMALL_PART_BYTES]
            put = http.put(part["url"], content=chunk)
            assert put.status_code == 200, put.text
            etags.append({"part_number": number, "etag": put.headers["etag"]})
        # A resuming client sees what S3 holds.
        listed = stack.client.get(f"/v1/uploads/{job_id}/parts", headers=bearer("alice"))
        assert [p["part_number"] for p in listed.json()["parts"]] == list(range(1, 7))
        assert [p["etag"] for p in listed.json()["parts"]] == [e["etag"] for e in etags]

        done = stack.client.post(
            f"/v1/uploads/{job_id}/complete", json={"parts": etags}, headers=bearer("alice")
        )
        assert done.status_code == 200, done.text
        assert done.json() == {"job_id": job_id, "status": "uploaded"}

    stored = stack.s3.get_object(Bucket=stack.bucket, Key=f"uploads/{job_id}")
    assert stored["Body"].read() == payload
    assert stored["ContentLength"] == len(payload)
    assert stored["Metadata"] == {"job-id": job_id}
    assert stack.s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", []) == []
    job = stack.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.UPLOADED

    # The bucket's notification (from the template) announced the object to the queue.
    messages = stack.sqs.receive_message(
        QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2
    ).get("Messages", [])
    announced = [
        unquote_plus(record["s3"]["object"]["key"])  # S3 sends keys URL-encoded
        for message in messages
        for record in json.loads(message["Body"]).get("Records", [])
    ]
    assert f"uploads/{job_id}" in announced


def test_just_in_time_signing_then_put(stack: Stack) -> None:
    payload = os.urandom(3 * SMALL_PART_BYTES)
    body = stack.client.post(
        "/v1/uploads",
        json={"filename": "late.flac", "size": len(payload)},
        headers=bearer("alice"),
    ).json()
    job_id = body["job_id"]
    signed = stack.client.post(
        f"/v1/uploads/{job_id}/parts", json={"part_numbers": [3, 1, 2]}, headers=bearer("alice")
    )
    assert signed.status_code == 200
    with httpx.Client(timeout=30) as http:
        for part in signed.json()["parts"]:  # re-signed URLs, not botocore's own
            number = part["part_number"]
            chunk = payload[(number - 1) * SMALL_PART_BYTES : number * SMALL_PART_BYTES]
            assert http.put(part["url"], content=chunk).status_code == 200
    done = stack.client.post(f"/v1/uploads/{job_id}/complete", headers=bearer("alice"))
    assert done.status_code == 200, done.text
    stored = stack.s3.get_object(Bucket=stack.bucket, Key=f"uploads/{job_id}")["Body"].read()
    assert stored == payload


def test_large_result_redirect_is_downloadable(stack: Stack) -> None:
    from dataclasses import replace

    service: UploadService = stack.client.app.state.service  # type: ignore[attr-defined]
    service.settings = replace(service.settings, result_inline_max_bytes=16)
    body = stack.client.post(
        "/v1/uploads", json={"filename": "r.wav", "size": 10}, headers=bearer("alice")
    ).json()
    job_id = body["job_id"]
    with httpx.Client(timeout=30) as http:
        assert http.put(body["parts"][0]["url"], content=b"0123456789").status_code == 200
    stack.client.post(f"/v1/uploads/{job_id}/complete", headers=bearer("alice"))
    stack.jobs.claim(job_id, object_etag="e", lease_token="t", lease_seconds=60)
    document = {"loudness": {"integrated_lufs": -16.0}, "waveform": list(range(50))}
    key = result_key("results/", job_id)
    service.store.put_json(key, document)
    stack.jobs.transition(
        job_id, JobStatus.COMPLETED, lease_token="t", set_fields={"result_key": key}
    )
    redirect = stack.client.get(
        f"/v1/jobs/{job_id}/result", headers=bearer("alice"), follow_redirects=False
    )
    assert redirect.status_code == 303
    with httpx.Client(timeout=30) as http:
        fetched = http.get(redirect.headers["location"])
    assert fetched.status_code == 200 and fetched.json() == document
