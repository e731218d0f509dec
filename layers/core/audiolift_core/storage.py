"""The uploads bucket: the only module that talks to S3 about uploads and results.

(The processor's ranged reader is the one other S3 reader; it reads audio objects only.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .aws import IGNORE, translated
from .checksums import ChecksumAlgorithm
from .errors import Conflict, NotFound, UploadChecksumMismatch, UploadClosed
from .parts import UploadedPart
from .presign import PartUrlSigner, SignedPartHeaders

if TYPE_CHECKING:
    from botocore.credentials import ReadOnlyCredentials
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef


def upload_key(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}"


def result_key(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}.json"


def _completed_part(part: UploadedPart) -> CompletedPartTypeDef:
    # A part's checksum goes back as S3 listed it, as s3transfer does for a FULL_OBJECT
    # upload; S3 then wants the parts numbered from 1 without gaps, which a planned
    # upload's are (verify_parts).
    completed: CompletedPartTypeDef = {"PartNumber": part.part_number, "ETag": part.etag}
    if part.checksum_crc32c:
        completed["ChecksumCRC32C"] = part.checksum_crc32c
    return completed


# CompleteMultipartUpload's refusals of the part list the client can act on.
_PARTS_REFUSED = ("InvalidPart", "InvalidPartOrder", "EntityTooSmall")


class UploadStore:
    """``credentials``: where the client's credentials can be read (boto3's public
    ``Session.get_credentials``), so that part URLs are re-signed from the first one
    botocore signs; None: botocore signs every part URL."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        credentials: Callable[[], ReadOnlyCredentials | None] | None = None,
    ):
        self._client = client
        self.bucket = bucket
        self.credentials = credentials

    # --- multipart -------------------------------------------------------------------

    def create_multipart(
        self,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        checksum_algorithm: ChecksumAlgorithm | None = None,
    ) -> str:
        """Open a multipart upload. With ``checksum_algorithm`` its parts may carry that
        checksum (S3 refuses them otherwise) and completion must state the whole
        object's, which S3 checks (the FULL_OBJECT type)."""
        extra: dict[str, Any] = {}
        if checksum_algorithm is not None:
            extra = {"ChecksumAlgorithm": checksum_algorithm.value, "ChecksumType": "FULL_OBJECT"}
        with translated("Starting the upload"):
            response = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata, **extra
            )
        return response["UploadId"]

    def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        ttl_seconds: int,
        signed: SignedPartHeaders = SignedPartHeaders(),
    ) -> str:
        """botocore's presigned UploadPart URL. With a checksum the PUT must send that
        checksum header, and S3 refuses a body that does not match it (BadDigest); with
        a length, S3 refuses a body of any other length (the signature covers it)."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": part_number,
        }
        if signed.content_length is not None:
            params["ContentLength"] = signed.content_length
        if signed.checksum:
            params[signed.checksum.boto_parameter] = signed.checksum.value
        # Signing is local (no request); it fails only on missing credentials.
        with translated("Signing a part URL"):
            url = self._client.generate_presigned_url(
                "upload_part", Params=params, ExpiresIn=ttl_seconds, HttpMethod="PUT"
            )
        return url

    def presign_parts(
        self,
        key: str,
        upload_id: str,
        part_numbers: Sequence[int],
        ttl_seconds: int,
        signed: Mapping[int, SignedPartHeaders] | None = None,
    ) -> dict[int, str]:
        """Part URLs for many parts at once, each binding what ``signed`` says of its
        part (nothing but the host when absent): botocore signs the first,
        ``PartUrlSigner`` the others from it, unless it cannot reproduce the first
        exactly."""
        if not part_numbers:
            return {}
        bound = signed or {}
        first_number, *others = part_numbers
        first_bound = bound.get(first_number, SignedPartHeaders())
        first = self.presign_part(key, upload_id, first_number, ttl_seconds, first_bound)
        urls = {first_number: first}
        signer = (
            PartUrlSigner.from_url(first, self.credentials(), first_bound)
            if self.credentials is not None and others
            else None
        )
        for number in others:
            part = bound.get(number, SignedPartHeaders())
            urls[number] = (
                signer.url(number, part)
                if signer is not None
                else self.presign_part(key, upload_id, number, ttl_seconds, part)
            )
        return urls

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """Every uploaded part, over all ListParts pages (1,000 a page), one per part
        number in part-number order. A part uploaded twice is S3's latest upload of it:
        real S3 lists only that one, but SeaweedFS lists every upload of the number, and
        completing with a stale one fails."""
        latest: dict[int, tuple[Any, UploadedPart]] = {}
        for entry in self._list_part_entries(key, upload_id):
            part = UploadedPart(
                int(entry["PartNumber"]),
                str(entry["ETag"]),
                int(entry["Size"]),
                entry.get("ChecksumCRC32C"),
            )
            uploaded_at = entry.get("LastModified")
            previous = latest.get(part.part_number)
            # The later upload wins; on equal (or missing) times, the later listed one.
            if previous is None or _not_older(uploaded_at, previous[0]):
                latest[part.part_number] = (uploaded_at, part)
        return [latest[number][1] for number in sorted(latest)]

    def _list_part_entries(self, key: str, upload_id: str) -> Iterator[Mapping[str, Any]]:
        marker = 0
        while True:
            with translated(
                "Listing the uploaded parts", gone=UploadClosed("The upload is no longer open.")
            ):
                response = self._client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
            yield from response.get("Parts", [])
            if not response.get("IsTruncated"):
                return
            next_marker = int(response.get("NextPartNumberMarker") or 0)
            if next_marker <= marker:  # a server that does not advance would loop forever
                return
            marker = next_marker

    def complete(
        self,
        key: str,
        upload_id: str,
        parts: list[UploadedPart],
        *,
        whole_crc32c: str | None = None,
    ) -> str:
        """Complete with ``parts``. ``whole_crc32c``: the whole object's CRC32C (for an
        upload created with that algorithm), which S3 checks against what it assembled."""
        extra: dict[str, Any] = {}
        if whole_crc32c is not None:
            extra = {
                "ChecksumCRC32C": whole_crc32c,
                "ChecksumType": "FULL_OBJECT",
                "MpuObjectSize": sum(p.size for p in parts),
            }
        with translated(
            "Completing the upload",
            codes={
                "NoSuchUpload": UploadClosed(
                    "The upload is no longer open (completed or aborted)."
                ),
                "BadDigest": UploadChecksumMismatch(
                    "The uploaded parts do not add up to the CRC32C stated for the file; "
                    "the upload is still open."
                ),
                **{code: Conflict(f"S3 refused the parts: {code}.") for code in _PARTS_REFUSED},
            },
        ):
            response = self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [_completed_part(p) for p in parts]},
                **extra,
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

    def put_bytes(self, key: str, body: bytes, *, what: str = "Storing a file") -> None:
        with translated(what):
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/octet-stream"
            )

    def get_bytes(self, key: str, *, what: str = "Reading a file") -> bytes:
        with translated(what, gone=NotFound("No such object.")):
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            body = bytes(response["Body"].read())
        return body

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


def _not_older(uploaded_at: Any, than: Any) -> bool:
    if uploaded_at is None or than is None:
        return True
    return bool(uploaded_at >= than)
