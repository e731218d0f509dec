"""The upload contract's edges, probed as a hostile or careless client would: the client's
part list against S3's, duplicate part listings, authentication before the body, strict
integers, invisible characters in filenames, the body limit, per-part Content-MD5, the
whole-file SHA-256 at completion, and an OpenAPI document that says all of this."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_crc32c
import pytest
from audiolift_api.body_limit import MAX_BODY_BYTES
from audiolift_core.jobs import JobStatus
from audiolift_core.presign import PartUrlSigner, SignedPartHeaders
from audiolift_testkit import SMALL_PART_BYTES, Api
from botocore.credentials import ReadOnlyCredentials

pytestmark = pytest.mark.timeout(120)


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


def open_upload_count(api: Api) -> int:
    return len(api.aws.s3.list_multipart_uploads(Bucket=api.bucket).get("Uploads", []))


def uploaded(api: Api, parts: int = 2, *, extra: int = 0, **create: Any) -> tuple[str, bytes]:
    """A job whose parts are all in S3 (PUT as a client would)."""
    payload = os.urandom(parts * SMALL_PART_BYTES + extra)
    job_id = api.create_upload(size=len(payload), **create)["job_id"]
    api.upload_parts(job_id, payload)
    return job_id, payload


def listed_parts(api: Api, job_id: str) -> list[dict[str, Any]]:
    response = api.client.get(f"/v1/uploads/{job_id}/parts", headers=api.auth("alice"))
    assert response.status_code == 200, response.text
    parts: list[dict[str, Any]] = response.json()["parts"]
    return parts


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


# --- the client's part list is checked against S3's, before S3 is asked to complete -----


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda parts: [*parts, {"part_number": 3, "etag": '"e"'}], {"not_in_s3": [3]}),
        (lambda parts: parts[:1], {"not_declared": [2]}),
    ],
    ids=["names-a-part-s3-lacks", "omits-a-part-s3-holds"],
)
def test_complete_refuses_a_part_list_that_differs_from_s3s(
    api: Api, edit: Any, problem: dict[str, list[int]]
) -> None:
    job_id, _ = uploaded(api)
    parts = [
        {"part_number": p["part_number"], "etag": p["etag"]} for p in listed_parts(api, job_id)
    ]
    response = api.client.post(
        f"/v1/uploads/{job_id}/complete", json={"parts": edit(parts)}, headers=api.auth("alice")
    )
    assert response.status_code == 409, response.text
    details = error_of(response)["details"]
    assert {k: v for k, v in details.items() if v} == problem
    assert open_upload_count(api) == 1  # nothing completed
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.AWAITING_UPLOAD


def test_companion_complete_checks_the_part_list_too(api: Api) -> None:
    job_id, _ = uploaded(api)
    job = api.jobs.get(job_id)
    assert job is not None
    parts = [{"PartNumber": p["part_number"], "ETag": p["etag"]} for p in listed_parts(api, job_id)]
    response = api.client.post(
        f"/s3/multipart/{job.upload_id}/complete",
        params={"key": job.object_key},
        json={"parts": parts[:1]},
        headers=api.auth("alice"),
    )
    assert response.status_code == 409, response.text
    assert error_of(response)["details"]["not_declared"] == [2]
    assert open_upload_count(api) == 1


def test_a_part_list_naming_a_part_twice_is_400(api: Api) -> None:
    job_id, _ = uploaded(api)
    parts = [
        {"part_number": p["part_number"], "etag": p["etag"]} for p in listed_parts(api, job_id)
    ]
    response = api.client.post(
        f"/v1/uploads/{job_id}/complete",
        json={"parts": [*parts, parts[0]]},
        headers=api.auth("alice"),
    )
    assert response.status_code == 400, response.text
    assert error_of(response)["details"]["repeated"] == [1]
    assert open_upload_count(api) == 1


# --- a part uploaded twice: one entry per part number, the latest ------------------------


def test_moto_like_s3_lists_only_the_latest_upload_of_a_part(api: Api) -> None:
    job_id, payload = uploaded(api)
    job = api.jobs.get(job_id)
    assert job is not None
    again = api.aws.s3.upload_part(
        Bucket=api.bucket, Key=job.object_key, UploadId=job.upload_id,
        PartNumber=1, Body=payload[:SMALL_PART_BYTES],
    )  # fmt: skip
    parts = listed_parts(api, job_id)
    assert [p["part_number"] for p in parts] == [1, 2]
    assert parts[0]["etag"] == again["ETag"]


@pytest.fixture
def seaweedfs_like_listing(api: Api) -> Iterator[None]:
    """What SeaweedFS's ListParts answers for a part uploaded twice: both uploads of the
    number, the stale one (older, another ETag and size) listed after the latest. moto and
    real S3 list only the latest, so the case is built on moto's own answer, through
    botocore's event hooks (the parsed response, before the adapter sees it)."""

    def add_stale_duplicate(parsed: dict[str, Any], **_: Any) -> None:
        parts = parsed.get("Parts") or []
        if parts:
            latest = parts[0]
            stale = dict(latest, ETag='"0000stale"', Size=latest["Size"] - 1)
            stale["LastModified"] = latest["LastModified"] - datetime.timedelta(seconds=5)
            parts.append(stale)

    events = api.aws.s3.meta.events
    events.register("after-call.s3.ListParts", add_stale_duplicate, unique_id="stale-part")
    yield
    events.unregister("after-call.s3.ListParts", unique_id="stale-part")


def test_a_part_listed_twice_counts_once_as_its_latest_upload(
    api: Api, seaweedfs_like_listing: None
) -> None:
    job_id, payload = uploaded(api)
    parts = listed_parts(api, job_id)
    assert [p["part_number"] for p in parts] == [1, 2]
    assert parts[0]["etag"] != '"0000stale"' and parts[0]["size"] == SMALL_PART_BYTES
    done = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert done.status_code == 200, done.text
    stored = api.aws.s3.get_object(Bucket=api.bucket, Key=f"uploads/{job_id}")
    assert stored["Body"].read() == payload


# --- authentication comes before the body -----------------------------------------------


def test_without_credentials_a_garbage_body_is_401_on_every_route(api: Api) -> None:
    job_id = api.create_upload()["job_id"]
    for method, path in [
        ("POST", "/v1/uploads"),
        ("POST", f"/v1/uploads/{job_id}/parts"),
        ("POST", f"/v1/uploads/{job_id}/complete"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("POST", "/s3/multipart"),
        ("POST", f"/s3/multipart/x/complete?key=uploads/{job_id}"),
    ]:
        for body in (b"{not json", b"\xff\xfe", os.urandom(2 * MAX_BODY_BYTES)):
            response = api.client.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 401, (method, path, response.text)
            assert error_of(response)["code"] == "unauthorized"


# --- strict integers ----------------------------------------------------------------------


@pytest.mark.parametrize("size", ["10", True, 10.0, "1e3"])
def test_size_must_be_a_json_integer(api: Api, size: Any) -> None:
    response = api.client.post(
        "/v1/uploads", json={"filename": "a.wav", "size": size}, headers=api.auth("alice")
    )
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "validation_error"
    assert open_upload_count(api) == 0


@pytest.mark.parametrize("number", ["1", True])
def test_part_numbers_must_be_json_integers(api: Api, number: Any) -> None:
    job_id, _ = uploaded(api)
    sign = api.client.post(
        f"/v1/uploads/{job_id}/parts", json={"part_numbers": [number]}, headers=api.auth("alice")
    )
    assert sign.status_code == 422, sign.text
    complete = api.client.post(
        f"/v1/uploads/{job_id}/complete",
        json={"parts": [{"part_number": number, "etag": '"e"'}]},
        headers=api.auth("alice"),
    )
    assert complete.status_code == 422, complete.text
    job = api.jobs.get(job_id)
    assert job is not None
    companion = api.client.post(
        f"/s3/multipart/{job.upload_id}/complete",
        params={"key": job.object_key},
        json={"parts": [{"PartNumber": number, "ETag": '"e"'}]},
        headers=api.auth("alice"),
    )
    assert companion.status_code == 422, companion.text
    assert open_upload_count(api) == 1


@pytest.mark.parametrize("size", [True, 10.5, "1e3", "-5", "ten", "\uff11\uff10"])
def test_companion_metadata_size_must_be_a_whole_number(api: Api, size: Any) -> None:
    """A JSON integer or decimal digits (Companion metadata is text): nothing else."""
    response = api.client.post(
        "/s3/multipart",
        json={"filename": "a.wav", "type": "audio/wav", "metadata": {"size": size}},
        headers=api.auth("alice"),
    )
    assert response.status_code == 400, response.text
    assert open_upload_count(api) == 0


# --- invisible characters in filenames --------------------------------------------------


def test_filenames_lose_control_and_format_characters(api: Api) -> None:
    raw = "inv\u202eoice\u200b\x85\x9b.wav"
    job_id = api.create_upload(filename=raw)["job_id"]
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert view["filename"] == "invoice.wav"


# --- the request body limit -------------------------------------------------------------


def test_a_body_over_the_limit_is_413_declared_or_not(api: Api) -> None:
    big = json.dumps({"filename": "a.wav", "size": 10, "pad": "x" * MAX_BODY_BYTES}).encode()
    declared = api.client.post(
        "/v1/uploads", content=big,
        headers={**api.auth("alice"), "content-type": "application/json"},
    )  # fmt: skip
    assert declared.status_code == 413, declared.text
    assert error_of(declared)["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = api.client.post(
        "/v1/uploads", content=chunks(),
        headers={**api.auth("alice"), "content-type": "application/json"},
    )  # fmt: skip
    assert streamed.status_code == 413, streamed.text
    lying = api.client.post(
        "/v1/uploads", content=big,
        headers={**api.auth("alice"), "content-type": "application/json", "content-length": "20"},
    )  # fmt: skip
    assert lying.status_code in (400, 413, 422), lying.text
    assert open_upload_count(api) == 0


def test_the_largest_legitimate_body_fits_the_limit(api: Api) -> None:
    """A completion naming all 10,000 parts with S3-style ETags is under the limit."""
    job_id, _ = uploaded(api, parts=1)
    parts = [{"part_number": n, "etag": f'"{"f" * 32}-10000"'} for n in range(1, 10_001)]
    body = json.dumps({"parts": parts, "sha256": "a" * 64})
    assert len(body) < MAX_BODY_BYTES
    response = api.client.post(
        f"/v1/uploads/{job_id}/complete", content=body,
        headers={**api.auth("alice"), "content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 409, response.text  # read and checked, not refused unread


# --- per-part Content-MD5 -----------------------------------------------------------------


def signed_headers(parts: dict[int, dict[str, Any]]) -> dict[int, list[str]]:
    """Each part URL's X-Amz-SignedHeaders, by part number."""
    return {n: parse_qs(urlsplit(p["url"]).query)["X-Amz-SignedHeaders"] for n, p in parts.items()}


def test_sign_parts_signs_a_content_md5_into_the_url_and_returns_the_header(api: Api) -> None:
    job_id = api.create_upload(size=3 * SMALL_PART_BYTES)["job_id"]
    checksum = md5_b64(b"part two")
    response = api.client.post(
        f"/v1/uploads/{job_id}/parts",
        json={"part_numbers": [1, 2, 3], "content_md5": {"2": checksum}},
        headers=api.auth("alice"),
    )
    assert response.status_code == 200, response.text
    parts = {p["part_number"]: p for p in response.json()["parts"]}
    assert parts[2]["headers"] == {"Content-MD5": checksum}
    assert parts[1]["headers"] == {} and parts[3]["headers"] == {}
    assert signed_headers(parts) == {
        1: ["content-length;host"], 2: ["content-length;content-md5;host"],
        3: ["content-length;host"],
    }  # fmt: skip


def test_a_planned_parts_url_binds_its_length(api: Api) -> None:
    """Each URL is valid only for a PUT of its part's planned length (S3 checks the
    signed Content-Length), so a URL cannot carry more than its part; the length is not in
    ``headers``: clients send the part's bytes and their HTTP stack sets it."""
    size = 3 * SMALL_PART_BYTES - 1000
    created = api.create_upload(size=size)
    # What the API's S3 client signs with: the credentials conftest's environment gives.
    credentials = ReadOnlyCredentials("testing", "testing", None)
    assert created["part_size"] == SMALL_PART_BYTES and created["part_count"] == 3
    lengths = {1: SMALL_PART_BYTES, 2: SMALL_PART_BYTES, 3: SMALL_PART_BYTES - 1000}
    assert [p["part_number"] for p in created["parts"]] == [1, 2, 3]
    for part in created["parts"]:
        url, length = part["url"], lengths[part["part_number"]]
        assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == ["content-length;host"]
        assert part["headers"] == {}
        # The signature verifies for the planned length, and for no other.
        assert PartUrlSigner.from_url(url, credentials, SignedPartHeaders(length)) is not None
        for other in (length - 1, length + 1):
            assert PartUrlSigner.from_url(url, credentials, SignedPartHeaders(other)) is None


def test_every_signed_part_carries_headers(api: Api) -> None:
    created = api.create_upload(size=2 * SMALL_PART_BYTES)
    assert all(part["headers"] == {} for part in created["parts"])


@pytest.mark.parametrize(
    ("content_md5", "status"),
    [
        ({"3": md5_b64(b"x")}, 400),  # a part not asked for
        ({"1": "not-base64"}, 422),
        ({"1": base64.b64encode(b"short").decode()}, 422),
        ({"0": md5_b64(b"x")}, 422),
    ],
)
def test_bad_content_md5_is_refused(api: Api, content_md5: dict[str, str], status: int) -> None:
    job_id = api.create_upload(size=3 * SMALL_PART_BYTES)["job_id"]
    response = api.client.post(
        f"/v1/uploads/{job_id}/parts",
        json={"part_numbers": [1, 2], "content_md5": content_md5},
        headers=api.auth("alice"),
    )
    assert response.status_code == status, response.text


# --- CRC32C: per part, and the whole file's at completion ---------------------------------


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def multipart_upload_of(api: Api, job_id: str) -> dict[str, Any]:
    job = api.jobs.get(job_id)
    assert job is not None
    uploads = api.aws.s3.list_multipart_uploads(Bucket=api.bucket, Prefix=job.object_key)
    (upload,) = uploads["Uploads"]
    return dict(upload)


def test_an_upload_declared_crc32c_is_created_with_that_algorithm(api: Api) -> None:
    job_id = api.create_upload(size=2 * SMALL_PART_BYTES, checksum_algorithm="CRC32C")["job_id"]
    assert multipart_upload_of(api, job_id)["ChecksumAlgorithm"] == "CRC32C"
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert view["checksum_algorithm"] == "CRC32C"
    plain = api.create_upload(size=2 * SMALL_PART_BYTES)["job_id"]
    assert "ChecksumAlgorithm" not in multipart_upload_of(api, plain)


@pytest.mark.parametrize("algorithm", ["crc32c", "MD5", "SHA256", 1, True])
def test_only_crc32c_can_be_declared(api: Api, algorithm: Any) -> None:
    response = api.client.post(
        "/v1/uploads",
        json={"filename": "a.wav", "size": 10, "checksum_algorithm": algorithm},
        headers=api.auth("alice"),
    )
    assert response.status_code == 422, response.text


def test_sign_parts_signs_a_crc32c_into_the_url_and_returns_the_header(api: Api) -> None:
    job_id = api.create_upload(size=3 * SMALL_PART_BYTES, checksum_algorithm="CRC32C")["job_id"]
    checksum = crc32c_b64(b"part two")
    response = api.client.post(
        f"/v1/uploads/{job_id}/parts",
        json={"part_numbers": [1, 2, 3], "checksum_crc32c": {"2": checksum},
              "content_md5": {"3": md5_b64(b"three")}},
        headers=api.auth("alice"),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    parts = {p["part_number"]: p for p in response.json()["parts"]}
    assert parts[2]["headers"] == {"x-amz-checksum-crc32c": checksum}
    assert parts[1]["headers"] == {}
    assert signed_headers(parts) == {
        1: ["content-length;host"], 2: ["content-length;host;x-amz-checksum-crc32c"],
        3: ["content-length;content-md5;host"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("create", "body", "status", "code"),
    [
        # S3 would refuse such a part only after it was sent (checksum type mismatch).
        ({}, {"checksum_crc32c": {"1": crc32c_b64(b"x")}}, 400, "checksum_not_declared"),
        ({"checksum_algorithm": "CRC32C"},
         {"checksum_crc32c": {"1": crc32c_b64(b"x")}, "content_md5": {"1": md5_b64(b"x")}},
         400, "invalid_request"),
        ({"checksum_algorithm": "CRC32C"}, {"checksum_crc32c": {"3": crc32c_b64(b"x")}},
         400, "invalid_request"),
        ({"checksum_algorithm": "CRC32C"}, {"checksum_crc32c": {"1": md5_b64(b"x")}},
         422, "validation_error"),
        ({"checksum_algorithm": "CRC32C"}, {"checksum_crc32c": {"1": "AAAA"}},
         422, "validation_error"),
    ],
)  # fmt: skip
def test_bad_part_crc32c_is_refused(
    api: Api, create: dict[str, Any], body: dict[str, Any], status: int, code: str
) -> None:
    job_id = api.create_upload(size=3 * SMALL_PART_BYTES, **create)["job_id"]
    response = api.client.post(
        f"/v1/uploads/{job_id}/parts",
        json={"part_numbers": [1, 2], **body},
        headers=api.auth("alice"),
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_crc32c_upload_completes_only_with_the_whole_files_crc32c(api: Api) -> None:
    job_id, payload = uploaded(api, checksum_algorithm="CRC32C")
    url = f"/v1/uploads/{job_id}/complete"
    missing = api.client.post(url, json={}, headers=api.auth("alice"))
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"]["code"] == "checksum_required"
    assert api.jobs.get(job_id).status is JobStatus.AWAITING_UPLOAD
    done = api.client.post(url, json={"crc32c": crc32c_b64(payload)}, headers=api.auth("alice"))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "uploaded"
    job = api.jobs.get(job_id)
    assert job is not None
    head = api.aws.s3.head_object(Bucket=api.bucket, Key=job.object_key)
    assert head["ContentLength"] == len(payload)
    # A retry of a completed upload answers as before, with or without the checksum.
    again = api.client.post(url, json={}, headers=api.auth("alice"))
    assert again.status_code == 200, again.text


def test_a_whole_file_crc32c_needs_an_upload_declared_crc32c(api: Api) -> None:
    job_id, payload = uploaded(api)
    response = api.client.post(
        f"/v1/uploads/{job_id}/complete",
        json={"crc32c": crc32c_b64(payload)},
        headers=api.auth("alice"),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "checksum_not_declared"
    assert api.jobs.get(job_id).status is JobStatus.AWAITING_UPLOAD


# --- the whole file's SHA-256 at completion ------------------------------------------------


def test_a_sha256_declared_at_completion_is_recorded_and_shown(api: Api) -> None:
    job_id, payload = uploaded(api)
    digest = hashlib.sha256(payload).hexdigest()
    response = api.client.post(
        f"/v1/uploads/{job_id}/complete", json={"sha256": digest.upper()}, headers=api.auth("alice")
    )
    assert response.status_code == 200, response.text
    job = api.jobs.get(job_id)
    assert job is not None and job.sha256 == digest and job.status is JobStatus.UPLOADED
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert view["sha256"] == digest and view["verified_sha256"] is None


def test_a_different_sha256_at_completion_is_409_and_nothing_is_completed(api: Api) -> None:
    declared = "a" * 64
    job_id, _ = uploaded(api, sha256=declared)
    response = api.client.post(
        f"/v1/uploads/{job_id}/complete", json={"sha256": "b" * 64}, headers=api.auth("alice")
    )
    assert response.status_code == 409, response.text
    assert error_of(response)["code"] == "checksum_conflict"
    assert open_upload_count(api) == 1
    job = api.jobs.get(job_id)
    assert job is not None and job.sha256 == declared and job.status is JobStatus.AWAITING_UPLOAD
    same = api.client.post(
        f"/v1/uploads/{job_id}/complete", json={"sha256": declared}, headers=api.auth("alice")
    )
    assert same.status_code == 200, same.text


def test_the_job_view_shows_the_verified_sha256(api: Api) -> None:
    job_id, _ = uploaded(api, sha256="c" * 64)
    api.jobs.transition(job_id, JobStatus.FAILED, set_fields={"verified_sha256": "d" * 64})
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert (view["sha256"], view["verified_sha256"]) == ("c" * 64, "d" * 64)


# --- the OpenAPI document says what the API does -------------------------------------------


def test_openapi_states_the_contract(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    paths = document["paths"]
    for path in ("/v1/uploads/{job_id}/complete", "/s3/multipart/{upload_id}/complete"):
        assert "400" in paths[path]["post"]["responses"], path
    schemas = document["components"]["schemas"]
    assert schemas["CreateUploadRequest"]["properties"]["size"]["minimum"] == 1
    items = schemas["SignPartsRequest"]["properties"]["part_numbers"]["items"]
    assert (items["minimum"], items["maximum"]) == (1, 10_000)
    for path, item in paths.items():
        for method, operation in item.items():
            if "requestBody" in operation:
                assert "413" in operation["responses"], (path, method)
    assert str(MAX_BODY_BYTES) in document["info"]["description"]
