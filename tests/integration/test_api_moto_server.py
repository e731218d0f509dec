"""An upload that really travels over HTTP: the API (uvicorn, the devstack's in-process
stack on moto) signs part URLs for moto's server, the test PUTs the bytes to them with
httpx, completes through the API, and reads the object back. moto does not check SigV4
signatures or expiry: that a URL is signed right and refused once expired is for the local
stack's real S3 (SeaweedFS) to prove."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from audiolift_core.jobs import JobStatus
from audiolift_core.jobs_table import JobsTable
from audiolift_core.storage import UploadStore, result_key
from audiolift_devstack.stack import Stack
from audiolift_testkit import SMALL_PART_BYTES, bearer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@dataclass
class MotoPipeline:
    """The stack's API over HTTP, and its resources for assertions on side effects."""

    client: httpx.Client
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    jobs: JobsTable
    store: UploadStore


@pytest.fixture
def stack(moto_stack: Stack) -> Iterator[MotoPipeline]:
    info = moto_stack.info
    assert info is not None and moto_stack.s3 is not None
    assert moto_stack.dynamodb is not None and moto_stack.sqs is not None
    with httpx.Client(base_url=info.api_url, timeout=30) as client:
        yield MotoPipeline(
            client=client,
            s3=moto_stack.s3,
            sqs=moto_stack.sqs,
            bucket=info.bucket,
            queue_url=info.queue_url,
            jobs=JobsTable(moto_stack.dynamodb, info.table),
            store=UploadStore(moto_stack.s3, info.bucket),
        )


def test_put_bytes_to_presigned_urls_and_complete(stack: MotoPipeline) -> None:
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
        assert (done.json()["job_id"], done.json()["status"]) == (job_id, "uploaded")

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


def test_just_in_time_signing_then_put(stack: MotoPipeline) -> None:
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


def test_large_result_redirect_is_downloadable(stack: MotoPipeline) -> None:
    body = stack.client.post(
        "/v1/uploads", json={"filename": "r.wav", "size": 10}, headers=bearer("alice")
    ).json()
    job_id = body["job_id"]
    with httpx.Client(timeout=30) as http:
        assert http.put(body["parts"][0]["url"], content=b"0123456789").status_code == 200
    stack.client.post(f"/v1/uploads/{job_id}/complete", headers=bearer("alice"))
    stack.jobs.claim(job_id, object_etag="e", lease_token="t", lease_seconds=60)
    # Larger than the API's inline limit (4 MiB): answered with a redirect to S3.
    document = {"loudness": {"integrated_lufs": -16.0}, "waveform": list(range(700_000))}
    key = result_key("results/", job_id)
    stack.store.put_json(key, document)
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
