"""boto3 clients, made once per process and injectable everywhere else.

Endpoints for local use come from boto3's own ``AWS_ENDPOINT_URL_<SERVICE>`` variables,
so the same code talks to AWS, moto's server or SeaweedFS without a branch.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from .errors import AudioliftError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
        "RequestLimitExceeded", "SlowDown", "InternalError", "InternalServerError",
        "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
    }
)  # fmt: skip
# The object (or the upload) is not there.
GONE_ERROR_CODES = frozenset({"NoSuchKey", "NoSuchUpload", "NotFound", "404"})
# A conditional read found another version: If-Match failed, or the range no longer fits.
CHANGED_ERROR_CODES = frozenset({"PreconditionFailed", "412", "InvalidRange", "416"})
NETWORK_ERRORS = (
    EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError,
)  # fmt: skip


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, NETWORK_ERRORS):
        return True
    if isinstance(error, ClientError):
        return error_code(error) in TRANSIENT_ERROR_CODES or http_status(error) >= 500
    return False


def translate(error: BaseException, what: str) -> AudioliftError:
    """The fallback translation for errors an adapter has no specific meaning for."""
    if is_transient(error):
        return TransientError(f"{what} failed for now; retry shortly.")
    return AudioliftError(f"{what} failed.")


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@functools.cache
def s3_client(*, total_max_attempts: int = 6) -> S3Client:
    """``total_max_attempts`` counts the first try (botocore's ``max_attempts`` does not):
    1 means botocore never retries, for callers that retry themselves."""
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",  # presigned URLs must be SigV4 (KMS buckets, every region)
        # Path style when an endpoint is given: loopback servers have no bucket subdomains.
        s3={"addressing_style": "path" if os.environ.get("AWS_ENDPOINT_URL_S3") else "auto"},
        retries={"mode": "standard", "total_max_attempts": total_max_attempts},
        max_pool_connections=32,
    )
    client: S3Client = boto3.client("s3", region_name=_region(), config=config)
    return client


@functools.cache
def dynamodb_client() -> DynamoDBClient:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5})
    client: DynamoDBClient = boto3.client("dynamodb", region_name=_region(), config=config)
    return client


def describe(client: Any) -> str:
    return str(getattr(getattr(client, "meta", None), "endpoint_url", "?"))
