"""boto3 clients, made once per process and injectable everywhere else, and the one
place that knows what botocore's errors mean (codes, classification, ``translated``).

Endpoints for local use come from boto3's own ``AWS_ENDPOINT_URL_<SERVICE>`` variables,
so the same code talks to AWS, moto's server or SeaweedFS without a branch.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from .errors import AudioliftError, TransientError

if TYPE_CHECKING:
    import boto3
    from botocore.credentials import ReadOnlyCredentials
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

# Codes that may pass on a retry: throttling, a busy or failing service, a timeout.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
        "ThrottledException", "RequestThrottled", "RequestThrottledException",
        "RequestLimitExceeded", "TooManyRequestsException", "BandwidthLimitExceeded",
        "SlowDown", "InternalError", "InternalServerError", "ServiceUnavailable",
        "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
    }
)  # fmt: skip
# The object, key or multipart upload is not there (any more).
GONE_ERROR_CODES = frozenset({"NoSuchKey", "NoSuchUpload", "NotFound", "404"})
# A conditional read found another version of the object than the one asked for.
CHANGED_ERROR_CODES = frozenset({"PreconditionFailed", "412", "InvalidRange", "416"})
NETWORK_ERRORS = (
    EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError,
)  # fmt: skip


def error_code(error: ClientError) -> str:
    """The service's error code ("NoSuchKey", "ConditionalCheckFailedException", ...)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    """The HTTP status of the service's answer (0 when there was none)."""
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_gone(error: BaseException) -> bool:
    return isinstance(error, ClientError) and (
        error_code(error) in GONE_ERROR_CODES or http_status(error) == 404
    )


def is_transient(error: BaseException) -> bool:
    if isinstance(error, NETWORK_ERRORS):
        return True
    if isinstance(error, ClientError):
        status = http_status(error)
        return error_code(error) in TRANSIENT_ERROR_CODES or status == 429 or status >= 500
    return False


def translate(error: BaseException, what: str) -> AudioliftError:
    """The fallback translation for errors an adapter has no specific meaning for."""
    if is_transient(error):
        return TransientError(f"{what} failed for now; retry shortly.")
    return AudioliftError(f"{what} failed.")


class _Ignore:
    def __repr__(self) -> str:
        return "IGNORE"


IGNORE: Final = _Ignore()
"""As a meaning in ``translated``: that error is no error (the ``with`` block is left)."""

# What a botocore error means to the adapter: our error, a callable making it (for
# meanings that need a look-up, made only when the error happens), or IGNORE.
Meaning = AudioliftError | Callable[[], AudioliftError] | _Ignore


class translated(contextlib.ContextDecorator):
    """Where botocore errors become audiolift errors, at the adapter boundary::

        with translated("Listing the uploaded parts", gone=Conflict("The upload is closed.")):
            response = client.list_parts(...)

    ``gone``: the meaning of "no such key/upload" (GONE_ERROR_CODES or a 404); ``codes``:
    the meaning of specific error codes. Anything else becomes ``translate(error, what)``
    (TransientError for what may pass, else a plain internal error). Also a decorator.
    """

    def __init__(
        self,
        what: str,
        *,
        gone: Meaning | None = None,
        codes: Mapping[str, Meaning] | None = None,
    ):
        self.what = what
        self.gone = gone
        self.codes = codes or {}

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if error is None or not isinstance(error, ClientError | BotoCoreError):
            return False
        meaning: Meaning | None = None
        if isinstance(error, ClientError):
            meaning = self.codes.get(error_code(error))
            if meaning is None and self.gone is not None and is_gone(error):
                meaning = self.gone
        if isinstance(meaning, _Ignore):
            return True
        if meaning is None:
            raise translate(error, self.what) from error
        raise (meaning if isinstance(meaning, AudioliftError) else meaning()) from error


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@functools.cache
def session() -> boto3.Session:
    """The process's boto3 session: every client is made from it, and it is where the
    credentials the clients sign with can be read (``credentials``)."""
    import boto3

    return boto3.Session(region_name=_region())


def credentials() -> ReadOnlyCredentials | None:
    """The credentials the session's clients sign with, frozen (refreshable credentials
    are refreshed first when near expiry); None when there are none."""
    found = session().get_credentials()
    return found.get_frozen_credentials() if found is not None else None


@dataclass(frozen=True)
class CallLimits:
    """How long one call to an AWS service may take: ``total_max_attempts`` tries (the
    first included; 1: botocore never retries, for callers that retry themselves), each
    given ``connect_timeout`` to connect and ``read_timeout`` between the bytes of the
    answer (botocore's defaults: 60 s each)."""

    total_max_attempts: int
    connect_timeout: float = 60.0
    read_timeout: float = 60.0

    @property
    def worst_case_seconds(self) -> float:
        """A call to a service that accepts connections and never answers (backoff aside)."""
        return self.total_max_attempts * (self.connect_timeout + self.read_timeout)

    def config(self) -> dict[str, Any]:
        """botocore Config arguments."""
        return {
            "retries": {"mode": "standard", "total_max_attempts": self.total_max_attempts},
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }


S3_CALLS: Final = CallLimits(total_max_attempts=6)
DYNAMODB_CALLS: Final = CallLimits(total_max_attempts=6)
SQS_CALLS: Final = CallLimits(total_max_attempts=6)
SSM_CALLS: Final = CallLimits(total_max_attempts=4)
# Short: a job event is announced after the job's state is written, and a slow bus must
# not hold the request or the analysis up.
EVENTS_CALLS: Final = CallLimits(total_max_attempts=4, connect_timeout=2, read_timeout=5)


@functools.cache
def s3_client(limits: CallLimits = S3_CALLS) -> S3Client:
    from botocore.config import Config

    # On AWS, URLs name the bucket's own region (bucket.s3.<region>.amazonaws.com), also
    # in us-east-1: the global host that "auto" addressing presigns answers a bucket
    # younger than a day outside us-east-1 with a 307 redirect, which a browser refuses
    # for a CORS preflight. A custom endpoint (the local stack's loopback servers, which
    # have no bucket subdomains) gets path style.
    local = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        signature_version="s3v4",  # presigned URLs must be SigV4 (KMS buckets, every region)
        s3=(
            {"addressing_style": "path"}
            if local
            else {"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"}
        ),
        max_pool_connections=32,
        **limits.config(),
    )
    client: S3Client = session().client("s3", config=config)
    return client


def _client(service: str, limits: CallLimits) -> Any:
    """A client of the process's session, within ``limits``."""
    from botocore.config import Config

    make: Callable[..., Any] = session().client  # one call for every service name
    return make(service, config=Config(**limits.config()))


@functools.cache
def dynamodb_client(limits: CallLimits = DYNAMODB_CALLS) -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb", limits)
    return client


@functools.cache
def sqs_client(limits: CallLimits = SQS_CALLS) -> SQSClient:
    client: SQSClient = _client("sqs", limits)
    return client


@functools.cache
def ssm_client(limits: CallLimits = SSM_CALLS) -> SSMClient:
    client: SSMClient = _client("ssm", limits)
    return client


@functools.cache
def events_client(limits: CallLimits = EVENTS_CALLS) -> EventBridgeClient:
    client: EventBridgeClient = _client("events", limits)
    return client


def forget_clients() -> None:
    """Drop the cached session and clients: the next use makes them again from the
    environment (tests that change region, endpoints or credentials)."""
    for factory in (session, s3_client, dynamodb_client, sqs_client, ssm_client, events_client):
        factory.cache_clear()
