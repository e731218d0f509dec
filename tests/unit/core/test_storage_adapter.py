"""UploadStore's paging and error translation, with botocore's Stubber (exact requests and
S3's own error codes, no server), and what the API answers for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from audiolift_core.errors import (
    AudioliftError,
    Conflict,
    NotFound,
    TransientError,
    UploadClosed,
)
from audiolift_core.storage import UploadedPart, UploadStore
from botocore.config import Config
from botocore.stub import Stubber

BUCKET = "stubbed-uploads"
KEY = "uploads/0123"


@pytest.fixture
def stubbed() -> Iterator[tuple[UploadStore, Stubber]]:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
    )
    with Stubber(client) as stubber:
        yield UploadStore(client, BUCKET), stubber
        stubber.assert_no_pending_responses()


def parts_page(first: int, last: int, *, truncated: bool, marker: int | None = None) -> Any:
    page: dict[str, Any] = {
        "Parts": [
            {"PartNumber": n, "ETag": f'"etag-{n}"', "Size": 5 * 1024 * 1024}
            for n in range(first, last + 1)
        ],
        "IsTruncated": truncated,
    }
    if marker is not None:
        page["NextPartNumberMarker"] = marker
    return page


def expected(marker: int) -> dict[str, Any]:
    return {"Bucket": BUCKET, "Key": KEY, "UploadId": "u", "PartNumberMarker": marker}


def test_list_parts_follows_next_part_number_marker(stubbed: tuple[UploadStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_response(
        "list_parts", parts_page(1, 1000, truncated=True, marker=1000), expected(0)
    )
    stubber.add_response(
        "list_parts", parts_page(1001, 2000, truncated=True, marker=2000), expected(1000)
    )
    stubber.add_response("list_parts", parts_page(2001, 2003, truncated=False), expected(2000))
    parts = store.list_parts(KEY, "u")
    assert [p.part_number for p in parts] == list(range(1, 2004))
    assert parts[0] == UploadedPart(1, '"etag-1"', 5 * 1024 * 1024)


def test_list_parts_stops_if_the_marker_does_not_advance(
    stubbed: tuple[UploadStore, Stubber],
) -> None:
    store, stubber = stubbed
    stubber.add_response("list_parts", parts_page(1, 2, truncated=True, marker=2), expected(0))
    stubber.add_response("list_parts", parts_page(1, 2, truncated=True, marker=2), expected(2))
    # No endless loop on a broken server (and the repeated entries count once).
    assert [p.part_number for p in store.list_parts(KEY, "u")] == [1, 2]


@pytest.mark.parametrize(
    ("operation", "code", "status", "call", "raised"),
    [
        ("list_parts", "NoSuchUpload", 404, lambda s: s.list_parts(KEY, "u"), UploadClosed),
        ("list_parts", "SlowDown", 503, lambda s: s.list_parts(KEY, "u"), TransientError),
        (
            "complete_multipart_upload",
            "InvalidPart",
            400,
            lambda s: s.complete(KEY, "u", [UploadedPart(1, "e", 1)]),
            Conflict,
        ),
        (
            "complete_multipart_upload",
            "NoSuchUpload",
            404,
            lambda s: s.complete(KEY, "u", [UploadedPart(1, "e", 1)]),
            UploadClosed,
        ),
        ("head_object", "404", 404, lambda s: s.head(KEY), NotFound),
        ("get_object", "NoSuchKey", 404, lambda s: s.get_json(KEY), NotFound),
        (
            "create_multipart_upload",
            "InternalError",
            500,
            lambda s: s.create_multipart(KEY, content_type="audio/wav", metadata={}),
            TransientError,
        ),
        (
            "create_multipart_upload",
            "AccessDenied",
            403,
            lambda s: s.create_multipart(KEY, content_type="audio/wav", metadata={}),
            AudioliftError,
        ),
    ],
)
def test_s3_errors_become_audiolift_errors(
    stubbed: tuple[UploadStore, Stubber],
    operation: str,
    code: str,
    status: int,
    call: Any,
    raised: type[AudioliftError],
) -> None:
    store, stubber = stubbed
    stubber.add_client_error(operation, service_error_code=code, http_status_code=status)
    with pytest.raises(raised) as error:
        call(store)
    assert type(error.value) is raised


def test_abort_of_a_gone_upload_is_fine(stubbed: tuple[UploadStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "abort_multipart_upload", service_error_code="NoSuchUpload", http_status_code=404
    )
    store.abort(KEY, "u")


def test_a_throttled_s3_is_a_503_with_retry_after(
    stubbed: tuple[UploadStore, Stubber], api_settings: Any, jobs_table: Any
) -> None:
    from audiolift_api.app import create_app
    from audiolift_api.service import UploadService
    from audiolift_testkit import bearer
    from fastapi.testclient import TestClient

    store, stubber = stubbed
    stubber.add_client_error(
        "create_multipart_upload", service_error_code="SlowDown", http_status_code=503
    )
    with TestClient(create_app(service=UploadService(api_settings, jobs_table, store))) as client:
        response = client.post(
            "/v1/uploads", json={"filename": "a.wav", "size": 10}, headers=bearer("alice")
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "service_unavailable"
