"""UploadStore.presign_parts re-signs part URLs from the first botocore-signed one: every
URL must be byte-for-byte the URL botocore itself would sign at the same instant."""

from __future__ import annotations

import datetime
from typing import Any

import boto3
import botocore.auth
import pytest
from audiolift_core import storage
from audiolift_core.storage import UploadStore
from botocore.config import Config

FROZEN = datetime.datetime(2026, 11, 22, 8, 30, 15)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)


def s3_client(**kwargs: Any) -> Any:
    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=kwargs.pop("token", None),
        region_name=kwargs.pop("region", "eu-west-1"),
    )
    endpoint_url = kwargs.pop("endpoint_url", None)
    return session.client(
        "s3", endpoint_url=endpoint_url, config=Config(signature_version="s3v4", **kwargs)
    )


CLIENTS = {
    "virtual-host": lambda: s3_client(),
    "session-token": lambda: s3_client(token="IQoJb3JpZ2luX2VjE+/=token"),
    "path-style-endpoint-with-port": lambda: s3_client(
        endpoint_url="http://127.0.0.1:4566", s3={"addressing_style": "path"}
    ),
    "us-east-1": lambda: s3_client(region="us-east-1"),
}


@pytest.mark.parametrize("make_client", CLIENTS.values(), ids=CLIENTS.keys())
def test_resigned_urls_equal_botocores(frozen_clock: None, make_client: Any) -> None:
    client = make_client()
    store = UploadStore(client, "my-bucket")
    key = "uploads/0123456789abcdef0123456789abcdef"
    upload_id = "VXBsb2FkIElE.with~odd_chars-+/="
    numbers = [1, 2, 9, 10, 11, 99, 100, 1000, 9999, 10000]
    signed = store.presign_parts(key, upload_id, numbers, 900)
    assert list(signed) == numbers
    # The fast path was taken (not botocore's fallback for every part).
    assert storage._PartUrlResigner.from_url(signed[1], storage._secret_key(client)) is not None
    for number in numbers:
        expected = client.generate_presigned_url(
            "upload_part",
            Params={"Bucket": "my-bucket", "Key": key, "UploadId": upload_id, "PartNumber": number},
            ExpiresIn=900,
            HttpMethod="PUT",
        )
        assert signed[number] == expected


def test_resigner_refuses_a_url_it_cannot_reproduce(frozen_clock: None) -> None:
    client = s3_client()
    url = UploadStore(client, "b").presign_part("k", "u", 1, 60)
    assert storage._PartUrlResigner.from_url(url, "wrong-secret") is None
    assert storage._PartUrlResigner.from_url(url, None) is None
    tampered = url.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Bx-amz-acl")
    assert storage._PartUrlResigner.from_url(tampered, "any") is None


def test_without_readable_credentials_botocore_signs_every_part(
    frozen_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_client()
    monkeypatch.setattr(storage, "_secret_key", lambda _client: None)
    calls: list[int] = []
    store = UploadStore(client, "b")
    original = store.presign_part

    def counting(key: str, upload_id: str, number: int, ttl: int) -> str:
        calls.append(number)
        return original(key, upload_id, number, ttl)

    monkeypatch.setattr(store, "presign_part", counting)
    signed = store.presign_parts("k", "u", [3, 4, 5], 60)
    assert calls == [3, 4, 5]
    assert "partNumber=5" in signed[5]


def test_no_parts_no_urls() -> None:
    assert UploadStore(s3_client(), "b").presign_parts("k", "u", [], 60) == {}
