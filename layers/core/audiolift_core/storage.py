"""The uploads bucket: the only module that talks to S3 about uploads and results.

(The processor's ranged reader is the one other S3 reader; it reads audio objects only.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .aws import IGNORE, translated
from .errors import Conflict, NotFound
from .parts import UploadedPart

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def upload_key(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}"


def result_key(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}.json"


# CompleteMultipartUpload's refusals of the part list the client can act on.
_PARTS_REFUSED = ("InvalidPart", "InvalidPartOrder", "EntityTooSmall")


class UploadStore:
    def __init__(self, client: S3Client, bucket: str):
        self._client = client
        self.bucket = bucket

    # --- multipart -------------------------------------------------------------------

    def create_multipart(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        with translated("Starting the upload"):
            response = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata
            )
        return response["UploadId"]

    def presign_part(self, key: str, upload_id: str, part_number: int, ttl_seconds: int) -> str:
        # Signing is local (no request); it fails only on missing credentials.
        with translated("Signing a part URL"):
            url = self._client.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": part_number,
                },
                ExpiresIn=ttl_seconds,
                HttpMethod="PUT",
            )
        return url

    def presign_parts(
        self, key: str, upload_id: str, part_numbers: Sequence[int], ttl_seconds: int
    ) -> dict[int, str]:
        """Part URLs for many parts at once. botocore signs the first; the others differ
        only in partNumber, so they are re-signed from it with the same SigV4 key and
        timestamp (~100x cheaper than a botocore presign each, which matters for a batch
        of 100 URLs). If the first URL is not in the form this re-signer reproduces
        exactly (checked by recomputing its signature), botocore signs every part."""
        if not part_numbers:
            return {}
        first_number, *others = part_numbers
        first = self.presign_part(key, upload_id, first_number, ttl_seconds)
        signed = {first_number: first}
        resigner = _PartUrlResigner.from_url(first, _secret_key(self._client))
        for number in others:
            signed[number] = (
                resigner.with_part_number(number)
                if resigner is not None
                else self.presign_part(key, upload_id, number, ttl_seconds)
            )
        return signed

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """Every uploaded part, over all ListParts pages (1,000 a page)."""
        parts: list[UploadedPart] = []
        marker = 0
        while True:
            with translated(
                "Listing the uploaded parts", gone=Conflict("The upload is no longer open.")
            ):
                response = self._client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
            parts.extend(
                UploadedPart(int(p["PartNumber"]), str(p["ETag"]), int(p["Size"]))
                for p in response.get("Parts", [])
            )
            if not response.get("IsTruncated"):
                return parts
            next_marker = int(response.get("NextPartNumberMarker") or 0)
            if next_marker <= marker:  # a server that does not advance would loop forever
                return parts
            marker = next_marker

    def complete(self, key: str, upload_id: str, parts: list[UploadedPart]) -> str:
        with translated(
            "Completing the upload",
            codes={
                "NoSuchUpload": Conflict("The upload is no longer open (completed or aborted)."),
                **{code: Conflict(f"S3 refused the parts: {code}.") for code in _PARTS_REFUSED},
            },
        ):
            response = self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.part_number, "ETag": p.etag} for p in parts]
                },
            )
        return str(response.get("ETag", ""))

    def abort(self, key: str, upload_id: str) -> None:
        """Abort; an upload that is already gone counts as aborted."""
        with translated("Aborting the upload", gone=IGNORE):
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # --- objects ---------------------------------------------------------------------

    def head(self, key: str) -> dict[str, Any]:
        with translated("Reading the object's metadata", gone=NotFound("No such object.")):
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        return dict(response)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        with translated("Deleting the job's files"):
            self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            )

    def put_json(self, key: str, document: Any) -> None:
        body = json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
        with translated("Storing the result"):
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"
            )

    def object_size(self, key: str) -> int:
        """The object's size, by listing rather than HeadObject: HeadObject needs
        s3:GetObject, which the API's role must not have on audio objects."""
        with translated("Looking up the object"):
            response = self._client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        for entry in response.get("Contents", []):
            if entry.get("Key") == key:
                return int(entry.get("Size", 0))
        raise NotFound("No such object.")

    def get_json(self, key: str) -> Any:
        with translated("Reading the result", gone=NotFound("The result document is missing.")):
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            document = json.loads(response["Body"].read())
        return document

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        with translated("Signing the result URL"):
            url = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=ttl_seconds,
            )
        return url


# --- presigned part URLs, re-signed -------------------------------------------------------


def _secret_key(client: Any) -> str | None:
    """The secret key the client signs with (None if it cannot be read: botocore then
    signs every URL itself)."""
    try:
        credentials = client._request_signer._credentials.get_frozen_credentials()
    except AttributeError:
        return None
    secret = getattr(credentials, "secret_key", None)
    return secret if isinstance(secret, str) and secret else None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class _PartUrlResigner:
    """SigV4 query signing (S3 presigned URL) of UploadPart URLs that differ from a
    botocore-signed one only in ``partNumber``: same key, upload, credentials, scope,
    timestamp and expiry."""

    base: str  # scheme://host/path
    pairs: tuple[tuple[str, str], ...]  # the query as signed, minus X-Amz-Signature
    canonical_head: str  # "PUT\n<path>\n"
    canonical_tail: str  # "\nhost:<host>\n\nhost\nUNSIGNED-PAYLOAD"
    string_to_sign_head: str  # "AWS4-HMAC-SHA256\n<timestamp>\n<scope>\n"
    signing_key: bytes

    @classmethod
    def from_url(cls, url: str, secret_key: str | None) -> _PartUrlResigner | None:
        if not secret_key:
            return None
        parts = urlsplit(url)
        pairs: list[tuple[str, str]] = []
        for pair in parts.query.split("&"):
            name, _, value = pair.partition("=")
            pairs.append((name, value))
        query = dict(pairs)
        if len(query) != len(pairs) or "partNumber" not in query:
            return None
        if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            return None
        if query.get("X-Amz-SignedHeaders") != "host":
            return None
        timestamp = query.get("X-Amz-Date", "")
        scope_parts = unquote(query.get("X-Amz-Credential", "")).split("/")
        if len(scope_parts) != 5 or scope_parts[4] != "aws4_request" or not timestamp:
            return None
        _, date, region, service, _ = scope_parts
        key = _hmac(("AWS4" + secret_key).encode(), date)
        for step in (region, service, "aws4_request"):
            key = _hmac(key, step)
        # botocore leaves out the port when it is the scheme's default.
        default_port = {"http": 80, "https": 443}.get(parts.scheme)
        host = parts.hostname if parts.port == default_port else parts.netloc
        resigner = cls(
            base=f"{parts.scheme}://{parts.netloc}{parts.path}",
            pairs=tuple((k, v) for k, v in pairs if k != "X-Amz-Signature"),
            canonical_head=f"PUT\n{parts.path}\n",
            canonical_tail=f"\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD",
            string_to_sign_head=f"AWS4-HMAC-SHA256\n{timestamp}\n{'/'.join(scope_parts[1:])}\n",
            signing_key=key,
        )
        # Only trust the re-signer if it reproduces botocore's own signature.
        if resigner._signature(resigner.pairs) != query.get("X-Amz-Signature"):
            return None
        return resigner

    def _signature(self, pairs: Sequence[tuple[str, str]]) -> str:
        canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
        canonical_request = self.canonical_head + canonical_query + self.canonical_tail
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        return hmac.new(
            self.signing_key, (self.string_to_sign_head + digest).encode(), hashlib.sha256
        ).hexdigest()

    def with_part_number(self, part_number: int) -> str:
        pairs = [(k, str(part_number) if k == "partNumber" else v) for k, v in self.pairs]
        query = "&".join(f"{k}={v}" for k, v in pairs)
        return f"{self.base}?{query}&X-Amz-Signature={self._signature(pairs)}"
