"""boto3 clients for a local stack: the one place that knows how to reach its endpoints.

``s3_client_for(info)`` talks to the stack's S3 (SeaweedFS or moto) as the functions do on
a local endpoint: SigV4, path-style addressing (``bucket.127.0.0.1`` resolves nowhere),
the dev credentials (SeaweedFS checks every signature). ``clients_for(info)`` adds
DynamoDB and SQS. ``info`` is a ``StackInfo`` or stack.json's contents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


class _StackDescription(Protocol):
    region: str
    s3_endpoint: str
    aws_access_key_id: str
    aws_secret_access_key: str
    aws_endpoint: str
    dynamodb_endpoint: str


StackLike = Mapping[str, Any] | _StackDescription


@dataclass(frozen=True)
class StackClients:
    s3: S3Client
    dynamodb: DynamoDBClient
    sqs: SQSClient


def local_s3_config(**overrides: Any) -> Any:
    """botocore's Config for an S3 server on a local endpoint: SigV4, path style. Extra
    keyword arguments (retries, max_pool_connections, ...) go to ``Config``."""
    from botocore.config import Config

    return Config(signature_version="s3v4", s3={"addressing_style": "path"}, **overrides)


def _field(info: StackLike, name: str, default: str = "") -> str:
    if isinstance(info, Mapping):
        return str(info.get(name) or default)
    return str(getattr(info, name, "") or default)


def boto3_session(info: StackLike) -> Any:
    """A boto3 session with the stack's region and dev credentials."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=_field(info, "aws_access_key_id"),
        aws_secret_access_key=_field(info, "aws_secret_access_key"),
        region_name=_field(info, "region", "us-east-1"),
    )


def s3_client_for(info: StackLike, **config: Any) -> S3Client:
    """The stack's S3: its endpoint and dev credentials, SigV4, path style."""
    client: S3Client = boto3_session(info).client(
        "s3", endpoint_url=_field(info, "s3_endpoint"), config=local_s3_config(**config)
    )
    return client


def clients_for(info: StackLike) -> StackClients:
    """S3, DynamoDB (dynalite or moto) and SQS (moto) clients for the stack."""
    session = boto3_session(info)
    aws_endpoint = _field(info, "aws_endpoint")
    return StackClients(
        s3=s3_client_for(info),
        dynamodb=session.client(
            "dynamodb", endpoint_url=_field(info, "dynamodb_endpoint", aws_endpoint)
        ),
        sqs=session.client("sqs", endpoint_url=aws_endpoint),
    )
