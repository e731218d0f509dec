"""The /v1/uploads routes against moto: every status of the contract, with the side
effects checked in S3 and DynamoDB (not in mocks)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from audiolift_core.jobs import JobStatus
from audiolift_core.settings import GiB
from audiolift_testkit import API_KEYS, SMALL_PART_BYTES, Api

pytestmark = pytest.mark.timeout(120)


def open_uploads(api: Api) -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = api.aws.s3.list_multipart_uploads(Bucket=api.bucket).get(
        "Uploads", []
    )
    return uploads


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    error: dict[str, Any] = body["error"]
    return error


# --- POST /v1/uploads --------------------------------------------------------------------


def test_create_records_job_opens_upload_and_signs_first_batch(api: Api) -> None:
    size = 250 * SMALL_PART_BYTES + 7  # 251 parts: the first batch stops at 100
    response = api.client.post(
        "/v1/uploads",
        json={"filename": "../../etc/Concert 2024.WAV", "size": size, "content_type": None},
        headers=api.auth("alice"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "awaiting_upload"
    assert body["part_size"] == SMALL_PART_BYTES
    assert body["part_count"] == 251
    assert [p["part_number"] for p in body["parts"]] == list(range(1, 101))
    assert body["expires_at"] == body["parts"][0]["expires_at"]

    job = api.jobs.get(body["job_id"])
    assert job is not None
    assert job.owner == "alice"
    assert job.status is JobStatus.AWAITING_UPLOAD
    assert job.filename == "Concert 2024.WAV"  # display name only: no path
    assert job.content_type == "audio/wav"  # from the extension
    assert job.object_key == f"uploads/{body['job_id']}"  # nothing from the filename
    assert job.purge_at is not None and job.purge_at > 0  # the table's TTL attribute

    (upload,) = open_uploads(api)
    assert upload["Key"] == job.object_key
    assert upload["UploadId"] == job.upload_id

    url = urlsplit(body["parts"][41]["url"])
    query = parse_qs(url.query)
    assert url.path.endswith(f"/{job.object_key}")
    assert query["partNumber"] == ["42"]
    assert query["uploadId"] == [job.upload_id]
    assert query["X-Amz-Expires"] == [str(api.service.settings.presign_ttl_seconds)]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "SignedHeaders" not in query or query["X-Amz-SignedHeaders"] == ["host"]


def test_create_small_file_is_one_part(api: Api) -> None:
    body = api.create_upload(size=10)
    assert body["part_count"] == 1 and body["part_size"] == 10
    assert len(body["parts"]) == 1


def test_over_the_limit_is_413_before_any_s3_call(api: Api) -> None:
    limit = api.service.settings.max_upload_bytes
    response = api.client.post(
        "/v1/uploads",
        json={"filename": "huge.wav", "size": limit + 1},
        headers=api.auth("alice"),
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"
    assert open_uploads(api) == []
    assert api.aws.dynamodb.scan(TableName=api.table)["Count"] == 0


def test_size_zero_is_422(api: Api) -> None:
    response = api.client.post(
        "/v1/uploads", json={"filename": "empty.wav", "size": 0}, headers=api.auth("alice")
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "empty_file"
    assert open_uploads(api) == []


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("notes.txt", None),
        ("notes.txt", "application/octet-stream"),
        ("movie.wav", "video/mp4"),
        ("track.exe", "audio/wav"),
        ("no-extension", None),
    ],
)
def test_non_audio_is_415(api: Api, filename: str, content_type: str | None) -> None:
    response = api.client.post(
        "/v1/uploads",
        json={"filename": filename, "size": 100, "content_type": content_type},
        headers=api.auth("alice"),
    )
    assert response.status_code == 415, response.text
    assert error_of(response)["code"] == "unsupported_media_type"
    assert open_uploads(api) == []


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.wav"},  # no size
        {"filename": "a.wav", "size": -1},
        {"filename": "a.wav", "size": "big"},
        {"filename": "", "size": 10},
        {"filename": "a.wav", "size": 10, "sha256": "not-a-digest"},
        [],
    ],
)
def test_malformed_bodies_are_4xx_with_the_error_shape(api: Api, body: Any) -> None:
    response = api.client.post("/v1/uploads", json=body, headers=api.auth("alice"))
    assert 400 <= response.status_code < 500, response.text
    assert error_of(response)["code"]


def test_filename_that_sanitises_to_nothing_is_400(api: Api) -> None:
    response = api.client.post(
        "/v1/uploads", json={"filename": "../..", "size": 10}, headers=api.auth("alice")
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


def test_invalid_json_is_4xx(api: Api) -> None:
    response = api.client.post(
        "/v1/uploads",
        content=b"{not json",
        headers={**api.auth("alice"), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"


def test_long_filename_is_capped_keeping_the_extension(api: Api) -> None:
    body = api.create_upload(filename="x" * 900 + ".flac")
    job = api.jobs.get(body["job_id"])
    assert job is not None
    assert len(job.filename) == 200 and job.filename.endswith(".flac")


def test_100_gib_upload_plans_within_s3_limits(api: Api) -> None:
    from audiolift_api.service import UploadService
    from audiolift_core.settings import ApiSettings

    settings = ApiSettings(
        storage=api.service.settings.storage,
        auth_mode="api_key",
        api_key_hashes=api.service.settings.api_key_hashes,
        max_upload_bytes=5 * 1024 * GiB,
    )
    service = UploadService(settings, api.jobs, api.store)
    job = service.create_upload("alice", filename="long.flac", size=100 * GiB, content_type=None)
    assert job.part_count <= 10_000
    assert job.part_size >= 5 * 1024 * 1024
    assert job.part_size * (job.part_count - 1) < job.size <= job.part_size * job.part_count


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Basic YWxpY2U6eA=="},
        {"Authorization": "Bearer "},
        {"Authorization": "alice-secret-key-0001"},  # the key without the scheme
    ],
)
def test_no_or_wrong_key_is_401(api: Api, headers: dict[str, str]) -> None:
    response = api.client.post(
        "/v1/uploads", json={"filename": "a.wav", "size": 10}, headers=headers
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert open_uploads(api) == []


def test_every_route_but_health_needs_a_caller(api: Api) -> None:
    job_id = api.create_upload()["job_id"]
    calls = [
        ("POST", "/v1/uploads", {"filename": "a.wav", "size": 1}),
        ("POST", f"/v1/uploads/{job_id}/parts", {"part_numbers": [1]}),
        ("GET", f"/v1/uploads/{job_id}/parts", None),
        ("POST", f"/v1/uploads/{job_id}/complete", {}),
        ("DELETE", f"/v1/uploads/{job_id}", None),
        ("GET", f"/v1/jobs/{job_id}", None),
        ("GET", "/v1/jobs", None),
        ("GET", f"/v1/jobs/{job_id}/result", None),
        ("DELETE", f"/v1/jobs/{job_id}", None),
        ("POST", "/s3/multipart", {"filename": "a.wav", "type": "audio/wav", "metadata": {}}),
        ("GET", f"/s3/multipart/x?key=uploads/{job_id}", None),
        ("GET", f"/s3/multipart/x/1?key=uploads/{job_id}", None),
        ("POST", f"/s3/multipart/x/complete?key=uploads/{job_id}", {"parts": []}),
        ("DELETE", f"/s3/multipart/x?key=uploads/{job_id}", None),
    ]
    for method, path, body in calls:
        response = api.client.request(method, path, json=body)
        assert response.status_code == 401, (method, path, response.text)
    assert api.client.get("/health").status_code == 200
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.AWAITING_UPLOAD


# --- POST /v1/uploads/{id}/parts -----------------------------------------------------------


def test_sign_parts_just_in_time(api: Api) -> None:
    created = api.create_upload(size=150 * SMALL_PART_BYTES)
    job_id = created["job_id"]
    response = api.client.post(
        f"/v1/uploads/{job_id}/parts",
        json={"part_numbers": [150, 101, 101, 120]},
        headers=api.auth("alice"),
    )
    assert response.status_code == 200, response.text
    parts = response.json()["parts"]
    assert [p["part_number"] for p in parts] == [101, 120, 150]
    for part in parts:
        query = parse_qs(urlsplit(part["url"]).query)
        assert query["partNumber"] == [str(part["part_number"])]
        assert part["expires_at"].endswith("Z")


@pytest.mark.parametrize("numbers", [[0], [4], [-1], [1, 2, 5]])
def test_sign_parts_outside_the_plan_is_400(api: Api, numbers: list[int]) -> None:
    job_id = api.create_upload(size=3 * SMALL_PART_BYTES)["job_id"]
    response = api.client.post(
        f"/v1/uploads/{job_id}/parts", json={"part_numbers": numbers}, headers=api.auth("alice")
    )
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "invalid_request"


def test_sign_parts_at_most_1000_at_once(api: Api) -> None:
    job_id = api.create_upload(size=1500 * SMALL_PART_BYTES)["job_id"]
    ok = api.client.post(
        f"/v1/uploads/{job_id}/parts",
        json={"part_numbers": list(range(1, 1001))},
        headers=api.auth("alice"),
    )
    assert ok.status_code == 200 and len(ok.json()["parts"]) == 1000
    too_many = api.client.post(
        f"/v1/uploads/{job_id}/parts",
        json={"part_numbers": list(range(1, 1002))},
        headers=api.auth("alice"),
    )
    assert 400 <= too_many.status_code < 500
    empty = api.client.post(
        f"/v1/uploads/{job_id}/parts", json={"part_numbers": []}, headers=api.auth("alice")
    )
    assert 400 <= empty.status_code < 500
    assert error_of(empty)["code"]


def test_sign_parts_of_a_closed_upload_is_409(api: Api) -> None:
    payload = os.urandom(2 * SMALL_PART_BYTES)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload)
    assert (
        api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice")).status_code
        == 200
    )
    response = api.client.post(
        f"/v1/uploads/{job_id}/parts", json={"part_numbers": [1]}, headers=api.auth("alice")
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"


# --- GET /v1/uploads/{id}/parts ------------------------------------------------------------


def test_list_parts_shows_what_s3_holds(api: Api) -> None:
    payload = os.urandom(3 * SMALL_PART_BYTES + 5)
    job_id = api.create_upload(size=len(payload))["job_id"]
    assert api.client.get(f"/v1/uploads/{job_id}/parts", headers=api.auth("alice")).json() == {
        "parts": []
    }
    api.upload_parts(job_id, payload, [1, 4])
    parts = api.client.get(f"/v1/uploads/{job_id}/parts", headers=api.auth("alice")).json()["parts"]
    assert [(p["part_number"], p["size"]) for p in parts] == [(1, SMALL_PART_BYTES), (4, 5)]
    assert all(p["etag"] for p in parts)


def test_list_parts_over_1000_parts_reads_every_page(api: Api) -> None:
    """S3 answers ListParts 1,000 parts a page: a resuming client must see them all."""
    count = 1003
    payload = os.urandom(count)  # 1-byte parts: moto's minimum only applies on complete
    from audiolift_api.service import UploadService
    from audiolift_core.settings import ApiSettings

    settings = ApiSettings(
        storage=api.service.settings.storage,
        auth_mode="api_key",
        api_key_hashes=api.service.settings.api_key_hashes,
        part_min_bytes=1,
        preferred_part_bytes=1,
    )
    job = UploadService(settings, api.jobs, api.store).create_upload(
        "alice", filename="many.wav", size=count, content_type=None
    )
    assert job.part_count == count
    api.upload_parts(job.job_id, payload)
    first_page = api.aws.s3.list_parts(
        Bucket=api.bucket, Key=job.object_key, UploadId=job.upload_id
    )
    assert first_page["IsTruncated"] and len(first_page["Parts"]) == 1000  # really paged

    response = api.client.get(f"/v1/uploads/{job.job_id}/parts", headers=api.auth("alice"))
    assert response.status_code == 200
    numbers = [p["part_number"] for p in response.json()["parts"]]
    assert numbers == list(range(1, count + 1))


# --- POST /v1/uploads/{id}/complete --------------------------------------------------------


def test_complete_verifies_and_completes(api: Api) -> None:
    payload = os.urandom(3 * SMALL_PART_BYTES + 17)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload)
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert response.status_code == 200, response.text
    # The job as GET /v1/jobs/{id} shows it: no second request needed.
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert response.json() == view
    assert (view["job_id"], view["status"], view["size"]) == (job_id, "uploaded", len(payload))

    stored = api.aws.s3.get_object(Bucket=api.bucket, Key=f"uploads/{job_id}")
    assert stored["Body"].read() == payload
    assert stored["ContentType"] == "audio/wav"
    assert open_uploads(api) == []
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.UPLOADED


def test_complete_with_client_etags(api: Api) -> None:
    payload = os.urandom(2 * SMALL_PART_BYTES)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload)
    listed = api.client.get(f"/v1/uploads/{job_id}/parts", headers=api.auth("alice")).json()
    wrong = [
        {"part_number": 1, "etag": '"0123"'},
        {"part_number": 2, "etag": listed["parts"][1]["etag"]},
    ]
    refused = api.client.post(
        f"/v1/uploads/{job_id}/complete", json={"parts": wrong}, headers=api.auth("alice")
    )
    assert refused.status_code == 409
    assert error_of(refused)["details"]["etag_mismatch"] == [1]
    assert len(open_uploads(api)) == 1

    right = [{"part_number": p["part_number"], "etag": p["etag"]} for p in listed["parts"]]
    done = api.client.post(
        f"/v1/uploads/{job_id}/complete", json={"parts": right}, headers=api.auth("alice")
    )
    assert done.status_code == 200, done.text


def test_complete_with_missing_parts_is_409_naming_them(api: Api) -> None:
    payload = os.urandom(5 * SMALL_PART_BYTES)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload, [1, 3, 5])
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "incomplete_upload"
    assert "2, 4" in error["message"]
    assert error["details"]["missing"] == [2, 4]
    # Nothing completed: the multipart upload is still open, no object, job unchanged.
    assert [u["Key"] for u in open_uploads(api)] == [f"uploads/{job_id}"]
    assert "Contents" not in api.aws.s3.list_objects_v2(Bucket=api.bucket, Prefix="uploads/")
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.AWAITING_UPLOAD


def test_complete_with_no_parts_is_409(api: Api) -> None:
    job_id = api.create_upload(size=10)["job_id"]
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert response.status_code == 409
    assert error_of(response)["details"]["missing"] == [1]


def test_complete_with_a_part_of_the_wrong_size_is_422(api: Api) -> None:
    size = 2 * SMALL_PART_BYTES + 100
    job_id = api.create_upload(size=size)["job_id"]
    job = api.jobs.get(job_id)
    assert job is not None
    for number, length in ((1, SMALL_PART_BYTES), (2, SMALL_PART_BYTES), (3, 99)):
        api.aws.s3.upload_part(
            Bucket=api.bucket, Key=job.object_key, UploadId=job.upload_id,
            PartNumber=number, Body=b"a" * length,
        )  # fmt: skip
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "size_mismatch"
    assert error["details"]["wrong_size"] == [3]
    assert len(open_uploads(api)) == 1
    assert api.jobs.get(job_id).status is JobStatus.AWAITING_UPLOAD


def test_complete_is_idempotent(api: Api) -> None:
    payload = os.urandom(SMALL_PART_BYTES + 1)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload)
    first = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    second = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "uploaded"
    assert first.json()["job_id"] == second.json()["job_id"] == job_id
    assert (
        api.aws.s3.get_object(Bucket=api.bucket, Key=f"uploads/{job_id}")["Body"].read() == payload
    )


def test_complete_after_a_lost_response_recovers_from_s3(api: Api) -> None:
    """S3 completed but the record still says awaiting_upload (the API died in between):
    a retried complete finds the object and records the upload."""
    payload = os.urandom(2 * SMALL_PART_BYTES)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload)
    job = api.jobs.get(job_id)
    assert job is not None and job.upload_id
    parts = api.store.list_parts(job.object_key, job.upload_id)
    api.store.complete(job.object_key, job.upload_id, parts)
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert response.status_code == 200
    assert response.json()["status"] == "uploaded"


def test_complete_of_an_aborted_upload_is_409(api: Api) -> None:
    job_id = api.create_upload(size=10)["job_id"]
    assert api.client.delete(f"/v1/uploads/{job_id}", headers=api.auth("alice")).status_code == 204
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert response.status_code == 409


# --- DELETE /v1/uploads/{id} ---------------------------------------------------------------


def test_abort_removes_the_upload_and_cancels_the_job(api: Api) -> None:
    payload = os.urandom(2 * SMALL_PART_BYTES)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload, [1])
    response = api.client.delete(f"/v1/uploads/{job_id}", headers=api.auth("alice"))
    assert response.status_code == 204
    assert response.content == b""
    assert open_uploads(api) == []
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.CANCELLED
    # A second abort: the job is no longer awaiting its upload.
    assert api.client.delete(f"/v1/uploads/{job_id}", headers=api.auth("alice")).status_code == 409


def test_abort_after_complete_is_409_and_keeps_the_object(api: Api) -> None:
    payload = os.urandom(10)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload)
    api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    response = api.client.delete(f"/v1/uploads/{job_id}", headers=api.auth("alice"))
    assert response.status_code == 409
    assert api.aws.s3.head_object(Bucket=api.bucket, Key=f"uploads/{job_id}")["ContentLength"] == 10


# --- misc ----------------------------------------------------------------------------------


def test_unknown_route_and_method_use_the_error_shape(api: Api) -> None:
    missing = api.client.get("/v1/nope", headers=api.auth("alice"))
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong_method = api.client.put("/v1/uploads", headers=api.auth("alice"))
    assert (
        wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"
    )


def test_a_body_json_cannot_parse_is_400_invalid_request(api: Api) -> None:
    """Nesting deeper than the JSON parser's recursion limit: the framework refuses the
    body itself; the answer still has one of the documented codes."""
    response = api.client.post(
        "/v1/uploads",
        content=b"[" * 100_000,
        headers={**api.auth("alice"), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


def test_every_response_carries_a_correlation_id(api: Api) -> None:
    response = api.client.get("/health", headers={"x-correlation-id": "abc-123"})
    assert response.headers["x-correlation-id"] == "abc-123"
    assert api.client.get("/health").headers["x-correlation-id"]


# --- observability ---------------------------------------------------------------------------


def metric_count(name: str) -> int:
    from audiolift_api.app import api_metrics

    return len(api_metrics.metric_set.get(name, {}).get("Value", []))


def test_metrics_count_uploads_created_completed_aborted(api: Api) -> None:
    before = {n: metric_count(n) for n in ("UploadsCreated", "UploadsCompleted", "UploadsAborted")}
    payload = os.urandom(10)
    job_id = api.create_upload(size=len(payload))["job_id"]
    api.upload_parts(job_id, payload)
    api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))  # a retry
    other = api.create_upload()["job_id"]
    api.client.delete(f"/v1/uploads/{other}", headers=api.auth("alice"))
    api.client.post("/v1/uploads", json={"filename": "a.txt", "size": 1}, headers=api.auth("alice"))
    after = {n: metric_count(n) for n in before}
    assert after["UploadsCreated"] - before["UploadsCreated"] == 2  # not the refused one
    assert after["UploadsCompleted"] - before["UploadsCompleted"] == 1  # not the retry
    assert after["UploadsAborted"] - before["UploadsAborted"] == 1


def test_one_structured_log_line_per_request(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    from audiolift_api.app import log

    caplog.set_level(logging.INFO, logger="audiolift-api")
    job_id = api.create_upload()["job_id"]
    api.client.get(f"/v1/jobs/{job_id}", headers={**api.auth("alice"), "x-correlation-id": "c-42"})
    # As Powertools writes them: one JSON object per request.
    lines = [
        json.loads(log.registered_formatter.format(record))
        for record in caplog.records
        if record.name == "audiolift-api" and record.getMessage() == "request"
    ]
    assert len(lines) == 2
    created, fetched = lines
    assert created["job_id"] == job_id and created["status"] == 201 and created["correlation_id"]
    assert fetched["job_id"] == job_id and fetched["correlation_id"] == "c-42"
    assert fetched["owner"] == "alice" and fetched["path"] == f"/v1/jobs/{job_id}"
    assert created["service"] == "audiolift-api" and created["level"] == "INFO"
    assert API_KEYS["alice"] not in json.dumps(lines)  # no secrets in the logs
