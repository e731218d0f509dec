"""Presigned UploadPart URLs for a batch of parts, re-signed from one botocore signed.

A batch of 100 part URLs signed by botocore one at a time costs ~17-23 ms (endpoint
resolution, parameter validation and event hooks for every URL); the URLs differ only in
``partNumber``, the part's length when it is signed (``content-length``: S3 then refuses a
body of any other length) and, when the client sends a part checksum, the signed checksum
header (``Content-MD5`` or ``x-amz-checksum-crc32c``). ``PartUrlSigner`` takes botocore's first
URL apart, checks that recomputing its SigV4 query signature (same key, scope, timestamp
and expiry) reproduces it exactly, and then signs the others itself (~1 ms per 100). If
the first URL is in any form it does not reproduce, the caller lets botocore sign every
URL instead.

Credentials come from boto3's public session API (``Session.get_credentials()``); nothing
here reads a client's private attributes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from .checksums import PartChecksum

if TYPE_CHECKING:
    from botocore.credentials import ReadOnlyCredentials

_ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class SignedPartHeaders:
    """What an UploadPart URL binds besides the host: the part's length (None: any) and
    its checksum header (None: none)."""

    content_length: int | None = None
    checksum: PartChecksum | None = None

    def values(self, host: str) -> dict[str, str]:
        """The signed headers' values by name (lower case), as SigV4 canonicalizes them."""
        values = {"host": host}
        if self.content_length is not None:
            values["content-length"] = str(self.content_length)
        if self.checksum:
            values[self.checksum.signed_name] = self.checksum.value.strip()
        return values

    def names(self) -> list[str]:
        """The signed headers' names, in SigV4's (sorted) order."""
        return sorted(self.values(""))

    def query(self) -> str:
        """``X-Amz-SignedHeaders`` as it appears in the URL (the ';' percent-encoded)."""
        return "%3B".join(self.names())


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class PartUrlSigner:
    """SigV4 query signing (an S3 presigned URL) of UploadPart URLs that differ from a
    botocore-signed one only in ``partNumber`` and the signed length and checksum header."""

    base: str  # scheme://host/path
    pairs: tuple[tuple[str, str], ...]  # the query as signed, minus X-Amz-Signature
    path: str
    host: str  # as botocore signs it: without the scheme's default port
    string_to_sign_head: str  # "AWS4-HMAC-SHA256\n<timestamp>\n<scope>\n"
    signing_key: bytes

    @classmethod
    def from_url(
        cls,
        url: str,
        credentials: ReadOnlyCredentials | None,
        signed: SignedPartHeaders = SignedPartHeaders(),
    ) -> PartUrlSigner | None:
        """A signer for URLs like ``url`` (which botocore signed binding ``signed``), or
        None if it cannot reproduce ``url``'s signature with these credentials."""
        secret_key = getattr(credentials, "secret_key", None)
        if not isinstance(secret_key, str) or not secret_key:
            return None
        parts = urlsplit(url)
        pairs = [pair.partition("=")[::2] for pair in parts.query.split("&")]
        query = dict(pairs)
        if len(query) != len(pairs) or "partNumber" not in query:
            return None
        if (
            query.get("X-Amz-Algorithm") != _ALGORITHM
            or query.get("X-Amz-SignedHeaders") != signed.query()
        ):
            return None
        timestamp = query.get("X-Amz-Date", "")
        scope = unquote(query.get("X-Amz-Credential", "")).split("/")
        if len(scope) != 5 or scope[4] != "aws4_request" or not timestamp:
            return None
        key = _hmac(("AWS4" + secret_key).encode(), scope[1])
        for step in scope[2:]:
            key = _hmac(key, step)
        # botocore leaves out the port when it is the scheme's default.
        default_port = {"http": 80, "https": 443}.get(parts.scheme)
        signer = cls(
            base=f"{parts.scheme}://{parts.netloc}{parts.path}",
            pairs=tuple((k, v) for k, v in pairs if k != "X-Amz-Signature"),
            path=parts.path,
            host=(parts.hostname or "") if parts.port == default_port else parts.netloc,
            string_to_sign_head=f"{_ALGORITHM}\n{timestamp}\n{'/'.join(scope[1:])}\n",
            signing_key=key,
        )
        # Only trust the signer if it reproduces botocore's own signature.
        if signer._signature(signer.pairs, signed) != query.get("X-Amz-Signature"):
            return None
        return signer

    def url(self, part_number: int, signed: SignedPartHeaders = SignedPartHeaders()) -> str:
        """The presigned URL of ``part_number``, valid only for a PUT of ``signed``'s
        length (if given) that sends its checksum header (if given; S3 then checks the
        body against it)."""
        replaced = {"partNumber": str(part_number), "X-Amz-SignedHeaders": signed.query()}
        pairs = [(k, replaced.get(k, v)) for k, v in self.pairs]
        query = "&".join(f"{k}={v}" for k, v in pairs)
        return f"{self.base}?{query}&X-Amz-Signature={self._signature(pairs, signed)}"

    def _signature(self, pairs: Sequence[tuple[str, str]], signed: SignedPartHeaders) -> str:
        canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
        values = signed.values(self.host)
        names = sorted(values)
        headers = "".join(f"{name}:{values[name]}\n" for name in names)
        signed_names = ";".join(names)
        canonical_request = (
            f"PUT\n{self.path}\n{canonical_query}\n{headers}\n{signed_names}\nUNSIGNED-PAYLOAD"
        )
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        return hmac.new(
            self.signing_key, (self.string_to_sign_head + digest).encode(), hashlib.sha256
        ).hexdigest()
