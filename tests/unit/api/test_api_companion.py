"""The Companion S3 multipart routes, driven the way @uppy/aws-s3 6.x (S3Companion, the
version clients/web bundles) drives them:

    POST   /s3/multipart                              {filename, metadata, type} -> {uploadId, key}
    GET    /s3/multipart/{uploadId}/{partNumber}?key= -> {url}; then PUT the bytes to url and
                                                        keep the ETag header, quotes stripped
    GET    /s3/multipart/{uploadId}?key=              -> [{PartNumber, ETag}] (on resume)
    POST   /s3/multipart/{uploadId}/complete?key=     {parts: [{PartNumber, ETag}]}
                                                      -> {location, key}
    DELETE /s3/multipart/{uploadId}?key=              (on cancel)

uploadId and partNumber go through encodeURIComponent, key through URLSearchParams. The
part URLs are PUT with ``requests``, which moto intercepts in process (the integration
test does the same against moto's server over HTTP)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from audiolift_core.jobs import JobStatus
from audiolift_testkit import SMALL_PART_BYTES, Api

pytestmark = pytest.mark.timeout(120)


class UppyS3Companion:
    """The requests @uppy/aws-s3's S3Companion makes, with the page's Authorization."""

    def __init__(self, api: Api, owner: str = "alice"):
        self.api = api
        self.headers = api.auth(owner)

    def _path(self, upload_id: str, suffix: str, key: str) -> str:
        return f"/s3/multipart/{quote(upload_id, safe='')}{suffix}?{urlencode({'key': key})}"

    def create(self, name: str, file_type: str, meta: dict[str, Any] | None = None) -> Any:
        metadata = {"name": name, "type": file_type, "relativePath": None, **(meta or {})}
        return self.api.client.post(
            "/s3/multipart",
            json={"filename": name, "metadata": metadata, "type": file_type},
            headers={**self.headers, "content-type": "application/json"},
        )

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        signed = self.api.client.get(
            self._path(upload_id, f"/{quote(str(number), safe='')}", key), headers=self.headers
        )
        assert signed.status_code == 200, signed.text
        body = signed.json()
        assert body["expires"] == self.api.service.settings.presign_ttl_seconds
        put = requests.put(body["url"], data=data, timeout=30)  # XHR PUT, no extra headers
        assert put.status_code == 200, put.text
        etag: str = put.headers["ETag"].strip('"')  # Uppy's sanitizeETag
        return etag

    def list_parts(self, key: str, upload_id: str) -> Any:
        return self.api.client.get(self._path(upload_id, "", key), headers=self.headers)

    def complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> Any:
        return self.api.client.post(
            self._path(upload_id, "/complete", key),
            json={"parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
            headers={**self.headers, "content-type": "application/json"},
        )

    def abort(self, key: str, upload_id: str) -> Any:
        return self.api.client.delete(self._path(upload_id, "", key), headers=self.headers)


def chunks(payload: bytes, size: int) -> list[bytes]:
    return [payload[i : i + size] for i in range(0, len(payload), size)]


def test_an_uppy_upload_becomes_a_job_like_any_other(api: Api) -> None:
    uppy = UppyS3Companion(api)
    created = uppy.create("Field recording #2.flac", "audio/flac")
    assert created.status_code == 200, created.text
    key, upload_id = created.json()["key"], created.json()["uploadId"]
    job_id = key.removeprefix("uploads/")
    assert key == f"uploads/{job_id}" and len(job_id) == 32  # the server's key, not the name

    payload = os.urandom(3 * SMALL_PART_BYTES + 100)
    parts = [
        (number, uppy.upload_part(key, upload_id, number, chunk))
        for number, chunk in enumerate(chunks(payload, SMALL_PART_BYTES), start=1)
    ]
    done = uppy.complete(key, upload_id, parts)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["location"] == f"/v1/jobs/{job_id}" and body["key"] == key

    stored = api.aws.s3.get_object(Bucket=api.bucket, Key=key)
    assert stored["Body"].read() == payload
    job = api.jobs.get(job_id)
    assert job is not None
    assert job.owner == "alice" and job.source == "uppy"
    assert job.status is JobStatus.UPLOADED
    assert job.size == len(payload)  # learnt at completion: Uppy declares no size
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert view["status"] == "uploaded" and view["filename"] == "Field recording #2.flac"
    assert view["size"] == len(payload)
    # The same job through the /v1 listing.
    listing = api.client.get("/v1/jobs", headers=api.auth("alice")).json()["jobs"]
    assert [j["job_id"] for j in listing] == [job_id]


def test_resume_lists_the_parts_already_uploaded(api: Api) -> None:
    uppy = UppyS3Companion(api)
    created = uppy.create("take.wav", "audio/wav").json()
    key, upload_id = created["key"], created["uploadId"]
    assert uppy.list_parts(key, upload_id).json() == []
    etag = uppy.upload_part(key, upload_id, 1, b"a" * SMALL_PART_BYTES)
    listed = uppy.list_parts(key, upload_id)
    assert listed.status_code == 200
    ((part,),) = [listed.json()]
    assert part["PartNumber"] == 1 and part["ETag"].strip('"') == etag
    assert part["Size"] == SMALL_PART_BYTES


def test_cancel_aborts_the_upload_and_the_job(api: Api) -> None:
    uppy = UppyS3Companion(api)
    created = uppy.create("take.wav", "audio/wav").json()
    key, upload_id = created["key"], created["uploadId"]
    uppy.upload_part(key, upload_id, 1, b"a" * SMALL_PART_BYTES)
    aborted = uppy.abort(key, upload_id)
    assert aborted.status_code == 200 and aborted.json() == {}  # Uppy parses the JSON
    assert api.aws.s3.list_multipart_uploads(Bucket=api.bucket).get("Uploads", []) == []
    job = api.jobs.get(key.removeprefix("uploads/"))
    assert job is not None and job.status is JobStatus.CANCELLED


def test_a_missing_part_is_409_naming_it(api: Api) -> None:
    uppy = UppyS3Companion(api)
    created = uppy.create("take.wav", "audio/wav").json()
    key, upload_id = created["key"], created["uploadId"]
    first = uppy.upload_part(key, upload_id, 1, b"a" * SMALL_PART_BYTES)
    third = uppy.upload_part(key, upload_id, 3, b"c" * 10)
    response = uppy.complete(key, upload_id, [(1, first), (3, third)])
    assert response.status_code == 409
    assert response.json()["error"]["details"]["missing"] == [2]
    assert len(api.aws.s3.list_multipart_uploads(Bucket=api.bucket)["Uploads"]) == 1


def test_a_declared_size_is_held_to_at_completion(api: Api) -> None:
    """Uppy sizes its own parts, but a size given in its metadata is the file's: parts
    that add up to another size are refused (422), and the upload stays open."""
    uppy = UppyS3Companion(api)
    payload = os.urandom(2 * SMALL_PART_BYTES + 10)
    created = uppy.create("take.wav", "audio/wav", {"size": 100}).json()
    key, upload_id = created["key"], created["uploadId"]
    job_id = key.removeprefix("uploads/")
    parts = [
        (number, uppy.upload_part(key, upload_id, number, chunk))
        for number, chunk in enumerate(chunks(payload, SMALL_PART_BYTES), start=1)
    ]
    refused = uppy.complete(key, upload_id, parts)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "size_mismatch"
    assert error["details"] == {"declared": 100, "uploaded": len(payload)}
    assert len(api.aws.s3.list_multipart_uploads(Bucket=api.bucket)["Uploads"]) == 1
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.AWAITING_UPLOAD and job.size == 100

    honest = uppy.create("take.wav", "audio/wav", {"size": str(len(payload))}).json()
    key, upload_id = honest["key"], honest["uploadId"]
    parts = [
        (number, uppy.upload_part(key, upload_id, number, chunk))
        for number, chunk in enumerate(chunks(payload, SMALL_PART_BYTES), start=1)
    ]
    assert uppy.complete(key, upload_id, parts).status_code == 200
    done = api.jobs.get(key.removeprefix("uploads/"))
    assert done is not None and done.status is JobStatus.UPLOADED and done.size == len(payload)


def test_a_small_part_before_the_last_is_422(api: Api) -> None:
    uppy = UppyS3Companion(api)
    created = uppy.create("take.wav", "audio/wav").json()
    key, upload_id = created["key"], created["uploadId"]
    parts = [
        (1, uppy.upload_part(key, upload_id, 1, b"a" * 10)),
        (2, uppy.upload_part(key, upload_id, 2, b"b" * 10)),
    ]
    response = uppy.complete(key, upload_id, parts)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["too_small"] == [1]


@pytest.mark.parametrize(
    ("name", "file_type", "meta", "status"),
    [
        ("notes.txt", "text/plain", {}, 415),
        ("clip.mp4", "video/mp4", {}, 415),
        ("big.wav", "audio/wav", {"size": 6 * 1024**3}, 413),
        ("empty.wav", "audio/wav", {"size": 0}, 422),
        ("odd.wav", "audio/wav", {"size": "lots"}, 400),
    ],
)
def test_create_refusals_make_no_upload(
    api: Api, name: str, file_type: str, meta: dict[str, Any], status: int
) -> None:
    response = UppyS3Companion(api).create(name, file_type, meta)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"]
    assert api.aws.s3.list_multipart_uploads(Bucket=api.bucket).get("Uploads", []) == []


def test_key_and_upload_id_must_belong_together(api: Api) -> None:
    uppy = UppyS3Companion(api)
    one = uppy.create("one.wav", "audio/wav").json()
    two = uppy.create("two.wav", "audio/wav").json()
    for key, upload_id in (
        (one["key"], two["uploadId"]),  # a real key with another upload's id
        ("uploads/../" + one["key"], one["uploadId"]),
        (one["key"].replace("uploads/", "results/"), one["uploadId"]),
        ("uploads/", one["uploadId"]),
    ):
        response = uppy.list_parts(key, upload_id)
        assert response.status_code == 404, (key, response.text)
    without_key = api.client.get(f"/s3/multipart/{one['uploadId']}", headers=api.auth("alice"))
    assert 400 <= without_key.status_code < 500


def test_uppy_without_credentials_is_401(api: Api) -> None:
    response = api.client.post(
        "/s3/multipart", json={"filename": "a.wav", "metadata": {}, "type": "audio/wav"}
    )
    assert response.status_code == 401


def test_older_uppy_batch_signing(api: Api) -> None:
    uppy = UppyS3Companion(api)
    created = uppy.create("take.wav", "audio/wav").json()
    response = api.client.get(
        f"/s3/multipart/{created['uploadId']}/batch",
        params={"key": created["key"], "partNumbers": "1,2,3"},
        headers=api.auth("alice"),
    )
    assert response.status_code == 200
    assert sorted(response.json()["presignedUrls"]) == ["1", "2", "3"]
    # Uppy sizes its own parts: the URLs bind no length.
    for url in response.json()["presignedUrls"].values():
        assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == ["host"]


@pytest.mark.parametrize("numbers", ["1_0", "\uff11", "+1", "1,a", "1.0"])
def test_batch_signing_takes_only_plain_decimal_part_numbers(api: Api, numbers: str) -> None:
    """Python's int() also reads '1_0' as 10 and a full-width one (U+FF11) as 1: a part number
    is ASCII digits, as metadata.size is."""
    uppy = UppyS3Companion(api)
    created = uppy.create("take.wav", "audio/wav").json()
    response = api.client.get(
        f"/s3/multipart/{created['uploadId']}/batch",
        params={"key": created["key"], "partNumbers": numbers},
        headers=api.auth("alice"),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
