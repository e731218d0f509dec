"""Part URLs re-signed by ``PartUrlSigner`` from the first botocore-signed one: every URL
must be byte-for-byte the URL botocore itself signs at the same instant, with and without
a signed length and a signed checksum header (Content-MD5 or x-amz-checksum-crc32c), for
every client shape the project uses."""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any

import boto3
import botocore.auth
import google_crc32c
import pytest
from audiolift_core.checksums import PartChecksum
from audiolift_core.presign import PartUrlSigner, SignedPartHeaders
from audiolift_core.storage import UploadStore
from botocore.config import Config

FROZEN = datetime.datetime(2026, 11, 22, 8, 30, 15)
KEY = "uploads/0123456789abcdef0123456789abcdef"
UPLOAD_ID = "VXBsb2FkIElE.with~odd_chars-+/="
NUMBERS = [1, 2, 9, 10, 11, 99, 100, 1000, 9999, 10000]


def md5_of(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def crc32c_of(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


# Base64 values that need percent-encoding nowhere but would break a sloppy canonical form.
MD5S = {n: PartChecksum.content_md5(md5_of(f"part {n}".encode())) for n in NUMBERS}
CRC32CS = {n: PartChecksum.crc32c(crc32c_of(f"part {n}".encode())) for n in NUMBERS}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore and the signer must sign at the same instant to be comparable."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)


def session(token: str | None = None, region: str = "eu-west-1") -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
        region_name=region,
    )


def frozen(boto_session: boto3.Session) -> Any:
    """The session's credentials through boto3's public API (as ``aws.credentials``)."""
    credentials = boto_session.get_credentials()
    assert credentials is not None
    return credentials.get_frozen_credentials()


def store_for(boto_session: boto3.Session, **config: Any) -> UploadStore:
    endpoint_url = config.pop("endpoint_url", None)
    client = boto_session.client(
        "s3", endpoint_url=endpoint_url, config=Config(signature_version="s3v4", **config)
    )
    return UploadStore(client, "my-bucket", credentials=lambda: frozen(boto_session))


STORES = {
    "regional-virtual-host": lambda: store_for(session(), s3={"addressing_style": "virtual"}),
    "auto-addressing": lambda: store_for(session()),
    "session-token": lambda: store_for(session(token="IQoJb3JpZ2luX2VjE+/=token")),
    "path-style-endpoint-with-port": lambda: store_for(
        session(), endpoint_url="http://127.0.0.1:4566", s3={"addressing_style": "path"}
    ),
    "https-endpoint-default-port": lambda: store_for(
        session(), endpoint_url="https://s3.example.test:443", s3={"addressing_style": "path"}
    ),
    "us-east-1": lambda: store_for(session(region="us-east-1")),
}
MiB = 1024 * 1024
# A planned upload's lengths: 16 MiB parts, the last one shorter.
LENGTHS = {n: 16 * MiB if n != NUMBERS[-1] else 12345 for n in NUMBERS}
NOTHING = SignedPartHeaders()


def bind(
    checksums: dict[int, PartChecksum], lengths: dict[int, int] | None = None
) -> dict[int, SignedPartHeaders]:
    lengths = lengths or {}
    return {
        n: SignedPartHeaders(content_length=lengths.get(n), checksum=checksums.get(n))
        for n in NUMBERS
        if n in checksums or n in lengths
    }


BINDINGS = {
    "nothing": {},
    "md5-every-part": bind(MD5S),
    "md5-some-parts": bind({n: MD5S[n] for n in NUMBERS[1::2]}),
    "md5-all-but-the-first": bind({n: MD5S[n] for n in NUMBERS[1:]}),
    "crc32c-every-part": bind(CRC32CS),
    "crc32c-all-but-the-first": bind({n: CRC32CS[n] for n in NUMBERS[1:]}),
    "mixed": bind({n: (CRC32CS if i % 2 else MD5S)[n] for i, n in enumerate(NUMBERS)}),
    "length-every-part": bind({}, LENGTHS),
    "length-all-but-the-first": bind({}, {n: LENGTHS[n] for n in NUMBERS[1:]}),
    "length-and-crc32c": bind(CRC32CS, LENGTHS),
    "length-and-md5-some-parts": bind({n: MD5S[n] for n in NUMBERS[::3]}, LENGTHS),
}


def botocore_url(store: UploadStore, number: int, signed: SignedPartHeaders) -> str:
    """What botocore's own presigner makes of this part (the reference)."""
    params: dict[str, Any] = {
        "Bucket": "my-bucket",
        "Key": KEY,
        "UploadId": UPLOAD_ID,
        "PartNumber": number,
    }
    if signed.content_length is not None:
        params["ContentLength"] = signed.content_length
    if signed.checksum:
        params[signed.checksum.boto_parameter] = signed.checksum.value
    client: Any = store._client  # the test's own client, handed to the store above
    url: str = client.generate_presigned_url(
        "upload_part", Params=params, ExpiresIn=900, HttpMethod="PUT"
    )
    return url


@pytest.mark.parametrize("bound", BINDINGS.values(), ids=BINDINGS.keys())
@pytest.mark.parametrize("make_store", STORES.values(), ids=STORES.keys())
def test_resigned_urls_equal_botocores(
    make_store: Any, bound: dict[int, SignedPartHeaders]
) -> None:
    store = make_store()
    signs: list[str] = []
    store._client.meta.events.register(
        "before-sign.s3.UploadPart", lambda **_: signs.append("botocore")
    )
    signed = store.presign_parts(KEY, UPLOAD_ID, NUMBERS, 900, bound)
    assert list(signed) == NUMBERS
    assert signs == ["botocore"]  # botocore signed the first URL only: the fast path ran
    for number in NUMBERS:
        assert signed[number] == botocore_url(store, number, bound.get(number, NOTHING))
    last = bound.get(NUMBERS[-1], NOTHING)
    expected = "%3B".join(
        sorted(
            ["host"]
            + (["content-length"] if last.content_length is not None else [])
            + ([last.checksum.signed_name] if last.checksum else [])
        )
    )
    assert f"X-Amz-SignedHeaders={expected}&" in signed[NUMBERS[-1]]


def test_the_signer_refuses_a_url_it_cannot_reproduce() -> None:
    boto_session = session()
    store = store_for(boto_session)
    url = store.presign_part("k", "u", 1, 60)
    real = frozen(boto_session)
    assert PartUrlSigner.from_url(url, real) is not None
    wrong = frozen(boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wrong"))
    assert PartUrlSigner.from_url(url, wrong) is None
    assert PartUrlSigner.from_url(url, None) is None
    # Signed with a checksum or length it was not told about, or the other way round, or
    # another one.
    cases = [
        (SignedPartHeaders(checksum=MD5S[1]), SignedPartHeaders(checksum=MD5S[2])),
        (SignedPartHeaders(checksum=CRC32CS[1]), SignedPartHeaders(checksum=CRC32CS[2])),
        (SignedPartHeaders(checksum=MD5S[1]), SignedPartHeaders(checksum=CRC32CS[1])),
        (SignedPartHeaders(content_length=100), SignedPartHeaders(content_length=101)),
        (
            SignedPartHeaders(content_length=100, checksum=CRC32CS[1]),
            SignedPartHeaders(checksum=CRC32CS[1]),
        ),
    ]
    for bound, other in cases:
        with_binding = store.presign_part("k", "u", 1, 60, bound)
        assert PartUrlSigner.from_url(with_binding, real) is None
        assert PartUrlSigner.from_url(url, real, bound) is None
        assert PartUrlSigner.from_url(with_binding, real, other) is None
        assert PartUrlSigner.from_url(with_binding, real, bound) is not None
    tampered = url.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Bx-amz-acl")
    assert PartUrlSigner.from_url(tampered, real) is None


def test_without_credentials_botocore_signs_every_part() -> None:
    store = store_for(session())
    store.credentials = None
    signs: list[str] = []
    store._client.meta.events.register(
        "before-sign.s3.UploadPart", lambda **_: signs.append("botocore")
    )
    bound = {
        4: SignedPartHeaders(checksum=MD5S[1]),
        5: SignedPartHeaders(content_length=7, checksum=CRC32CS[1]),
    }
    signed = store.presign_parts("k", "u", [3, 4, 5], 60, bound)
    assert len(signs) == 3
    assert "partNumber=5" in signed[5] and "content-md5" in signed[4]
    assert "content-length%3Bhost%3Bx-amz-checksum-crc32c" in signed[5]


def test_no_parts_no_urls() -> None:
    assert store_for(session()).presign_parts("k", "u", [], 60) == {}
