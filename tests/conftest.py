"""Shared fixtures: AWS under moto (in process), the jobs table and the uploads bucket made
from template.yaml's own definitions, and the upload API over them.

Layers, each usable alone:
- ``aws_credentials``: fake credentials and region; no endpoint override reaches moto.
- ``aws``: a ``mock_aws`` context with s3 / dynamodb / sqs clients.
- ``aws_resources``: table, queues and bucket created by ``create_resources`` from the
  template (names from ``resource_names``).
- ``jobs_table`` / ``upload_store``: the project's adapters over them.
- ``small_s3_parts``: moto accepts parts down to ``SMALL_PART_BYTES`` (S3's 5 MiB minimum
  would make every multipart test slow).
- ``api_settings`` / ``upload_service`` / ``api``: the FastAPI app through starlette's
  TestClient, with API keys for the owners "alice" and "bob".
- ``lambda_context``: the context a Lambda runtime passes (Powertools' typed one, from
  the devstack), with a 60 s deadline.

The live local stack (a child process, or in process on moto) is in
tests/integration/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

# moto reads this once, on import: set it before anything imports moto, so an in-process
# local stack's moto server answers CORS from the bucket's own rule, as S3 does.
os.environ.setdefault("MOTO_DISABLE_GLOBAL_CORS", "true")

import boto3
import pytest
from audiolift_testkit import (
    REGION,
    SMALL_PART_BYTES,
    Api,
    AwsClients,
    LocalLambdaContext,
    api_key_hashes,
)
from botocore.config import Config
from moto import mock_aws

if TYPE_CHECKING:
    from audiolift_api.service import UploadService
    from audiolift_core.jobs_table import JobsTable
    from audiolift_core.settings import ApiSettings
    from audiolift_core.storage import UploadStore
    from audiolift_devstack.template_resources import CreatedResources, ResourceNames

_ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, and no endpoint override: nothing can reach AWS."""
    for name in _ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def session_aws_clients() -> AwsClients:
    """boto3 clients made once (making them costs ~0.1 s each). moto intercepts clients
    made before its mock starts, and its state starts empty in every ``mock_aws``."""
    patch = pytest.MonkeyPatch()
    for name in _ENDPOINT_VARIABLES:  # never a real or local endpoint
        patch.delenv(name, raising=False)
    try:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        return AwsClients(
            s3=session.client("s3", config=Config(signature_version="s3v4")),
            dynamodb=session.client("dynamodb"),
            sqs=session.client("sqs"),
        )
    finally:
        patch.undo()


@pytest.fixture
def aws(aws_credentials: None, session_aws_clients: AwsClients) -> Iterator[AwsClients]:
    """moto in process; clients made the way audiolift_core.aws makes them (SigV4 S3)."""
    with mock_aws():
        yield session_aws_clients


@pytest.fixture
def resource_names() -> ResourceNames:
    from audiolift_devstack.template_resources import ResourceNames

    return ResourceNames.with_prefix("audiolift-test")


@pytest.fixture
def aws_resources(aws: AwsClients, resource_names: ResourceNames) -> CreatedResources:
    """The jobs table, the processing queues and the uploads bucket, as template.yaml
    defines them (keys, GSI, TTL, CORS, lifecycle, notification filter)."""
    from audiolift_devstack.template_resources import create_resources

    return create_resources(aws.s3, aws.dynamodb, aws.sqs, names=resource_names)


@pytest.fixture
def jobs_table(aws: AwsClients, aws_resources: CreatedResources) -> JobsTable:
    from audiolift_core.jobs_table import JobsTable

    return JobsTable(aws.dynamodb, aws_resources.table_name)


@pytest.fixture
def upload_store(aws: AwsClients, aws_resources: CreatedResources) -> UploadStore:
    from audiolift_core.storage import UploadStore

    return UploadStore(aws.s3, aws_resources.bucket_name)


@pytest.fixture
def small_s3_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """moto checks S3's 5 MiB part minimum with a module constant read at import (from
    S3_UPLOAD_PART_MIN_SIZE): lower it for this test only."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", SMALL_PART_BYTES)
    return SMALL_PART_BYTES


@pytest.fixture
def api_settings(aws_resources: CreatedResources, small_s3_parts: int) -> ApiSettings:
    from audiolift_core.settings import ApiSettings, StorageSettings

    return ApiSettings(
        storage=StorageSettings(
            jobs_table=aws_resources.table_name, upload_bucket=aws_resources.bucket_name
        ),
        auth_mode="api_key",
        api_key_hashes=api_key_hashes(),
        part_min_bytes=small_s3_parts,
        preferred_part_bytes=small_s3_parts,
    )


@pytest.fixture
def upload_service(
    api_settings: ApiSettings, jobs_table: JobsTable, upload_store: UploadStore
) -> UploadService:
    from audiolift_api.service import UploadService

    return UploadService(api_settings, jobs_table, upload_store)


@pytest.fixture
def api(
    aws: AwsClients,
    aws_resources: CreatedResources,
    upload_service: UploadService,
    jobs_table: JobsTable,
    upload_store: UploadStore,
) -> Iterator[Api]:
    from audiolift_api.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app(service=upload_service)) as client:
        yield Api(
            client=client,
            service=upload_service,
            aws=aws,
            bucket=aws_resources.bucket_name,
            table=aws_resources.table_name,
            jobs=jobs_table,
            store=upload_store,
        )


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    """What Lambda passes as ``context``: a function with 60 s left."""
    return LocalLambdaContext("audiolift-test-function", timeout_seconds=60)
