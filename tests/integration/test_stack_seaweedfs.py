"""What moto cannot show, shown by the stack's SeaweedFS: presigned URLs are really checked
(a tampered one and an expired one are refused, a good one works), unsigned requests are
refused, the bucket's CORS rules from template.yaml answer preflights, ranged GETs serve
exact byte ranges, and part and whole-file CRC32Cs are checked."""

from __future__ import annotations

import base64
import os
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import google_crc32c
import httpx
import pytest
from audiolift_testkit import StackProcess, s3_client_for

pytestmark = pytest.mark.integration


def replace_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def flip_last_hex_digit(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


@pytest.fixture
def part_url(local_stack: StackProcess) -> tuple[str, str, str]:
    """A presigned UploadPart URL for a fresh multipart upload: (url, key, upload id)."""
    key = f"uploads/presign-{time.time_ns()}"
    upload_id = local_stack.clients.s3.create_multipart_upload(
        Bucket=local_stack.info.bucket, Key=key
    )["UploadId"]
    url = local_stack.clients.s3.generate_presigned_url(
        "upload_part",
        Params={
            "Bucket": local_stack.info.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": 1,
        },
        ExpiresIn=300,
    )
    return url, key, upload_id


def uploaded_parts(local_stack: StackProcess, key: str, upload_id: str) -> list[int]:
    listing = local_stack.clients.s3.list_parts(
        Bucket=local_stack.info.bucket, Key=key, UploadId=upload_id
    )
    return [part["PartNumber"] for part in listing.get("Parts", [])]


def test_a_presigned_part_url_works_as_signed(
    local_stack: StackProcess, part_url: tuple[str, str, str]
) -> None:
    url, key, upload_id = part_url
    response = httpx.put(url, content=b"a" * 1000)
    assert response.status_code == 200, response.text
    assert response.headers["etag"]
    assert uploaded_parts(local_stack, key, upload_id) == [1]


@pytest.mark.parametrize(
    "tamper",
    ["signature", "part_number", "expiry", "key"],
)
def test_a_tampered_presigned_url_is_refused(
    local_stack: StackProcess, part_url: tuple[str, str, str], tamper: str
) -> None:
    url, key, upload_id = part_url
    query = parse_qs(urlsplit(url).query)
    if tamper == "signature":
        bad = replace_query(
            url, **{"X-Amz-Signature": flip_last_hex_digit(query["X-Amz-Signature"][0])}
        )
    elif tamper == "part_number":
        bad = replace_query(url, partNumber="2")
    elif tamper == "expiry":  # stretch the URL's life: the signature covers it
        bad = replace_query(url, **{"X-Amz-Expires": "604800"})
    else:  # someone else's object, same signature
        bad = url.replace(key, key + "-other")
    response = httpx.put(bad, content=b"b" * 1000)
    assert response.status_code == 403, response.text
    assert "SignatureDoesNotMatch" in response.text
    assert uploaded_parts(local_stack, key, upload_id) == []


def test_an_expired_presigned_url_is_refused(local_stack: StackProcess) -> None:
    key = f"results/expiry-{time.time_ns()}.json"
    local_stack.clients.s3.put_object(Bucket=local_stack.info.bucket, Key=key, Body=b"{}")
    url = local_stack.clients.s3.generate_presigned_url(
        "get_object", Params={"Bucket": local_stack.info.bucket, "Key": key}, ExpiresIn=1
    )
    time.sleep(2.2)
    response = httpx.get(url)
    assert response.status_code == 403, response.text
    assert "expired" in response.text.lower()
    # ... and a fresh one for the same object works (the refusal is about time only).
    fresh = local_stack.clients.s3.generate_presigned_url(
        "get_object", Params={"Bucket": local_stack.info.bucket, "Key": key}, ExpiresIn=60
    )
    assert httpx.get(fresh).content == b"{}"


def test_an_expired_part_url_uploads_nothing(
    local_stack: StackProcess,
) -> None:
    key = f"uploads/expired-part-{time.time_ns()}"
    upload_id = local_stack.clients.s3.create_multipart_upload(
        Bucket=local_stack.info.bucket, Key=key
    )["UploadId"]
    url = local_stack.clients.s3.generate_presigned_url(
        "upload_part",
        Params={
            "Bucket": local_stack.info.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": 1,
        },
        ExpiresIn=1,
    )
    time.sleep(2.2)
    response = httpx.put(url, content=b"c" * 1000)
    assert response.status_code == 403, response.text
    assert uploaded_parts(local_stack, key, upload_id) == []


def test_unsigned_and_wrongly_signed_requests_are_refused(local_stack: StackProcess) -> None:
    key = f"results/unsigned-{time.time_ns()}"
    local_stack.clients.s3.put_object(Bucket=local_stack.info.bucket, Key=key, Body=b"secret")
    assert (
        httpx.get(f"{local_stack.info.s3_endpoint}/{local_stack.info.bucket}/{key}").status_code
        == 403
    )

    from botocore.exceptions import ClientError

    stranger = s3_client_for({**local_stack.info.as_dict(), "aws_secret_access_key": "wrong"})
    with pytest.raises(ClientError) as refused:
        stranger.get_object(Bucket=local_stack.info.bucket, Key=key)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_bucket_cors_comes_from_the_template(local_stack: StackProcess) -> None:
    from audiolift_devstack.template_resources import bucket_cors_rules

    assert local_stack.clients.s3.get_bucket_cors(Bucket=local_stack.info.bucket)["CORSRules"] == (
        bucket_cors_rules()
    )
    object_url = f"{local_stack.info.s3_endpoint}/{local_stack.info.bucket}/uploads/anything"
    origin = "http://localhost:5173"
    preflight = httpx.options(
        object_url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in (origin, "*")
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    # A browser must be able to read each part's ETag to complete the upload.
    assert "etag" in preflight.headers["access-control-expose-headers"].lower()

    # DELETE is not in the template's rule: the preflight does not allow it.
    refused = httpx.options(
        object_url, headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"}
    )
    assert "DELETE" not in refused.headers.get("access-control-allow-methods", "")


def test_ranged_gets_serve_exact_bytes(local_stack: StackProcess) -> None:
    key = f"results/ranged-{time.time_ns()}"
    body = bytes(range(256)) * 4096  # 1 MiB
    local_stack.clients.s3.put_object(Bucket=local_stack.info.bucket, Key=key, Body=body)
    for first, last in ((0, 0), (1000, 70_000), (len(body) - 10, len(body) - 1)):
        response = local_stack.clients.s3.get_object(
            Bucket=local_stack.info.bucket, Key=key, Range=f"bytes={first}-{last}"
        )
        assert response["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
        assert response["Body"].read() == body[first : last + 1]


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def test_s3_checks_part_and_whole_file_crc32cs_given_through_the_api(
    local_stack: StackProcess,
) -> None:
    """An upload declared CRC32C: S3 refuses a part whose bytes differ from the CRC32C
    signed into its URL, and completion with a whole-file CRC32C that is not the object's
    (409, the upload stays open, so the right one still completes)."""
    payload = os.urandom(5 * 1024 * 1024 + 1234)
    api = httpx.Client(base_url=local_stack.info.api_url, headers=local_stack.auth, timeout=30)
    created = api.post(
        "/v1/uploads",
        json={"filename": "noise.wav", "size": len(payload), "checksum_algorithm": "CRC32C"},
    )
    assert created.status_code == 201, created.text
    job_id, part_size = created.json()["job_id"], created.json()["part_size"]
    chunks = [payload[i : i + part_size] for i in range(0, len(payload), part_size)]
    assert len(chunks) == 2
    signed = api.post(
        f"/v1/uploads/{job_id}/parts",
        json={
            "part_numbers": [1, 2],
            "checksum_crc32c": {str(n): crc32c_b64(c) for n, c in enumerate(chunks, 1)},
        },
    )
    assert signed.status_code == 200, signed.text
    parts = {p["part_number"]: p for p in signed.json()["parts"]}
    corrupted = bytearray(chunks[0])
    corrupted[12345] ^= 0x01
    refused = httpx.put(parts[1]["url"], content=bytes(corrupted), headers=parts[1]["headers"])
    assert refused.status_code == 400 and "BadDigest" in refused.text, refused.text
    for number, chunk in enumerate(chunks, 1):
        put = httpx.put(parts[number]["url"], content=chunk, headers=parts[number]["headers"])
        assert put.status_code == 200, put.text

    complete = f"/v1/uploads/{job_id}/complete"
    wrong = api.post(complete, json={"crc32c": crc32c_b64(payload[:-1])})
    assert wrong.status_code == 409, wrong.text
    assert wrong.json()["error"]["code"] == "checksum_mismatch"
    assert [p["part_number"] for p in api.get(f"/v1/uploads/{job_id}/parts").json()["parts"]] == [
        1,
        2,
    ]
    done = api.post(complete, json={"crc32c": crc32c_b64(payload)})
    assert done.status_code == 200, done.text
    head = local_stack.clients.s3.head_object(
        Bucket=local_stack.info.bucket, Key=f"uploads/{job_id}", ChecksumMode="ENABLED"
    )
    assert head["ContentLength"] == len(payload)
    assert head["ChecksumCRC32C"] == crc32c_b64(payload)


def test_completes_racing_each_other_all_answer_with_the_job(local_stack: StackProcess) -> None:
    """Completes of one upload at once (a client's retry while its first request is still
    being served): each lists the parts, then all ask S3 to complete together. S3 may
    answer all but one with NoSuchUpload (SeaweedFS does, often; S3's documentation allows
    it), though the object is there: every one answers with the job, none with 409."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from audiolift_api.service import UploadService
    from audiolift_core.jobs import JobStatus
    from audiolift_core.jobs_table import JobsTable
    from audiolift_core.settings import S3_MIN_PART_BYTES, ApiSettings, StorageSettings
    from audiolift_core.storage import UploadStore
    from audiolift_devstack.clients import clients_for

    info = local_stack.info
    clients = clients_for(info)  # clients of its own: the hook below stays on them
    settings = ApiSettings(
        storage=StorageSettings(jobs_table=info.table, upload_bucket=info.bucket),
        auth_mode="api_key",
        preferred_part_bytes=S3_MIN_PART_BYTES,
    )
    store = UploadStore(clients.s3, info.bucket)
    service = UploadService(settings, JobsTable(clients.dynamodb, info.table), store)
    racers, rounds = 4, 4
    together = threading.Barrier(racers, timeout=30)

    def complete_together(**_: object) -> None:
        together.wait()  # every racer has listed the parts: now all complete at once

    clients.s3.meta.events.register("before-call.s3.CompleteMultipartUpload", complete_together)
    try:
        for _ in range(rounds):
            payload = os.urandom(S3_MIN_PART_BYTES + 1024)
            job = service.create_upload(
                "race-owner", filename="race.wav", size=len(payload), content_type="audio/wav"
            )
            assert job.upload_id and job.part_count == 2
            for number, offset in ((1, 0), (2, S3_MIN_PART_BYTES)):
                clients.s3.upload_part(
                    Bucket=info.bucket, Key=job.object_key, UploadId=job.upload_id,
                    PartNumber=number, Body=payload[offset : offset + S3_MIN_PART_BYTES],
                )  # fmt: skip
            with ThreadPoolExecutor(racers) as pool:
                answers = list(pool.map(service.complete, [job] * racers))
            for done in answers:
                assert done.job_id == job.job_id and done.size == len(payload)
                assert done.status not in (JobStatus.AWAITING_UPLOAD, JobStatus.CANCELLED)
            stored = clients.s3.get_object(Bucket=info.bucket, Key=job.object_key)
            assert stored["Body"].read() == payload
    finally:
        clients.s3.meta.events.unregister(
            "before-call.s3.CompleteMultipartUpload", complete_together
        )


def test_a_part_url_carries_only_its_planned_length(local_stack: StackProcess) -> None:
    """A planned part's URL binds its length: S3 refuses a longer or shorter body
    (SignatureDoesNotMatch) and stores nothing, so a URL that leaks cannot carry more than
    the part it was made for; the planned length goes up."""
    size = 5 * 1024 * 1024 + 1234
    api = httpx.Client(base_url=local_stack.info.api_url, headers=local_stack.auth, timeout=30)
    created = api.post("/v1/uploads", json={"filename": "noise.wav", "size": size})
    assert created.status_code == 201, created.text
    job = created.json()
    last = job["parts"][job["part_count"] - 1]
    last_bytes = size - (job["part_count"] - 1) * job["part_size"]
    key = f"uploads/{job['job_id']}"
    upload_id = local_stack.clients.s3.list_multipart_uploads(
        Bucket=local_stack.info.bucket, Prefix=key
    )["Uploads"][0]["UploadId"]
    for wrong in (last_bytes + 1, last_bytes - 1, 64 * 1024 * 1024):
        refused = httpx.put(last["url"], content=os.urandom(wrong), timeout=60)
        assert refused.status_code == 403, refused.text
        assert "SignatureDoesNotMatch" in refused.text
    assert uploaded_parts(local_stack, key, upload_id) == []
    stored = httpx.put(last["url"], content=os.urandom(last_bytes))
    assert stored.status_code == 200, stored.text
    assert uploaded_parts(local_stack, key, upload_id) == [last["part_number"]]
    api.delete(f"/v1/uploads/{job['job_id']}")
