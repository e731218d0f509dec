"""The project's client factory (``audiolift_core.aws``): presigned URLs name the bucket's
own region, virtual-hosted, in every region; a custom endpoint (the local stack) keeps
path style. Signing is local, so no AWS (and no moto) is involved."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from audiolift_core import aws
from audiolift_core.checksums import PartChecksum
from audiolift_core.presign import SignedPartHeaders
from audiolift_core.storage import UploadStore

BUCKET = "audiolift-123456789012-eu-west-1-0a1b2c3d"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE")


@pytest.fixture
def fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    aws.forget_clients()
    yield
    aws.forget_clients()


def signed_urls(region: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    aws.forget_clients()
    store = UploadStore(aws.s3_client(), BUCKET, credentials=aws.credentials)
    bound = {2: SignedPartHeaders(content_length=5, checksum=PartChecksum.content_md5("x"))}
    parts = store.presign_parts("uploads/job", "upload-1", [1, 2], 900, bound)
    return [*parts.values(), store.presign_get("results/job.json", 300)]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "us-west-2", "ap-southeast-2"])
def test_urls_name_the_buckets_own_region(
    region: str, fresh_clients: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in signed_urls(region, monkeypatch):
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("https", f"{BUCKET}.s3.{region}.amazonaws.com")
        assert not parts.path.startswith(f"/{BUCKET}/")  # virtual-hosted, not path style
        assert f"%2F{region}%2Fs3%2Faws4_request" in parts.query


def test_a_custom_endpoint_keeps_path_style(
    fresh_clients: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:8333")
    for url in signed_urls("us-east-1", monkeypatch):
        parts = urlsplit(url)
        assert parts.netloc == "127.0.0.1:8333" and parts.path.startswith(f"/{BUCKET}/")
