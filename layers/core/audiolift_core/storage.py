"""The uploads bucket: the only module that talks to S3 about uploads and results.

(The processor's ranged reader is the one other S3 reader; it reads audio objects only.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .aws import error_code, translate
from .errors import Conflict, NotFound

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class UploadedPart:
    part_number: int
    etag: str
    size: int


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
        return int(self.head(key)["ContentLength"])

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
