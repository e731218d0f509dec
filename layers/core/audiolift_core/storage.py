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

from botocore.exceptions import BotoCoreError, ClientError

from .aws import error_code, translate
from .errors import Conflict, NotFound
from .parts import UploadedPart

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def upload_key(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}"


def result_key(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}.json"


class UploadStore:
    def __init__(self, client: S3Client, bucket: str):
        self._client = client
        self.bucket = bucket

    # --- multipart -------------------------------------------------------------------

    def create_multipart(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        try:
            response = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata
            )
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "Starting the upload") from error
        return response["UploadId"]

    def presign_part(self, key: str, upload_id: str, part_number: int, ttl_seconds: int) -> str:
        # Signing is local (no request); it fails only on missing credentials.
        try:
            return self._client.generate_presigned_url(
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
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "Signing a part URL") from error

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
            try:
                response = self._client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
            except ClientError as error:
                if error_code(error) in ("NoSuchUpload", "NoSuchKey", "404"):
                    raise Conflict("The upload is no longer open.") from error
                raise translate(error, "Listing the uploaded parts") from error
            except BotoCoreError as error:
                raise translate(error, "Listing the uploaded parts") from error
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
        try:
            response = self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.part_number, "ETag": p.etag} for p in parts]
                },
            )
        except ClientError as error:
            if error_code(error) in ("NoSuchUpload",):
                raise Conflict("The upload is no longer open (completed or aborted).") from error
            if error_code(error) in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise Conflict(f"S3 refused the parts: {error_code(error)}.") from error
            raise translate(error, "Completing the upload") from error
        except BotoCoreError as error:
            raise translate(error, "Completing the upload") from error
        return str(response.get("ETag", ""))

    def abort(self, key: str, upload_id: str) -> None:
        """Abort; an upload that is already gone counts as aborted."""
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if error_code(error) in ("NoSuchUpload", "NoSuchKey", "404"):
                return
            raise translate(error, "Aborting the upload") from error
        except BotoCoreError as error:
            raise translate(error, "Aborting the upload") from error

    # --- objects ---------------------------------------------------------------------

    def head(self, key: str) -> dict[str, Any]:
        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"No object {key!r}.") from error
            raise translate(error, "Reading the object's metadata") from error
        except BotoCoreError as error:
            raise translate(error, "Reading the object's metadata") from error

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            )
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "Deleting the job's files") from error

    def put_json(self, key: str, document: Any) -> None:
        body = json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"
            )
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "Storing the result") from error

    def object_size(self, key: str) -> int:
        """The object's size, by listing rather than HeadObject: HeadObject needs
        s3:GetObject, which the API's role must not have on audio objects."""
        try:
            response = self._client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "Looking up the object") from error
        for entry in response.get("Contents", []):
            if entry.get("Key") == key:
                return int(entry.get("Size", 0))
        raise NotFound(f"No object {key!r}.")

    def get_json(self, key: str) -> Any:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            return json.loads(response["Body"].read())
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                raise NotFound("The result document is missing.") from error
            raise translate(error, "Reading the result") from error
        except BotoCoreError as error:
            raise translate(error, "Reading the result") from error

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        try:
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=ttl_seconds,
            )
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "Signing the result URL") from error


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
