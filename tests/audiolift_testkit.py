"""Helpers shared by the tests and the fixtures in tests/conftest.py (importable as
``audiolift_testkit``: pytest puts tests/ on sys.path for its conftest). Test modules
import from here, never from ``conftest`` (several directories have one)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audiolift_devstack.clients import StackClients, clients_for, s3_client_for
from audiolift_devstack.lambda_context import LocalLambdaContext
from audiolift_devstack.launcher import StackProcess, start_stack_process
from audiolift_devstack.net import free_port

if TYPE_CHECKING:
    from audiolift_api.service import UploadService
    from audiolift_core.jobs_table import JobsTable
    from audiolift_core.storage import UploadStore
    from fastapi.testclient import TestClient

REGION = "us-east-1"
# Parts this small keep multipart tests fast; moto is told to accept them (small_s3_parts).
SMALL_PART_BYTES = 1024
API_KEYS = {"alice": "alice-secret-key-0001", "bob": "bob-secret-key-0002"}
# S3's minimum part size, which SeaweedFS enforces too (EntityTooSmall on complete): the
# smallest parts a live-stack test can use; a file of a few tens of MiB has several.
TEST_PART_BYTES = 5 * 1024 * 1024
# Failed deliveries on a test stack come back after this many seconds, not the template's
# 6x 15 minutes, so retry-and-DLQ tests take seconds. Processing a test file takes well
# under this.
TEST_VISIBILITY_TIMEOUT = 6

__all__ = [
    "API_KEYS",
    "REGION",
    "SMALL_PART_BYTES",
    "TEST_PART_BYTES",
    "TEST_VISIBILITY_TIMEOUT",
    "Api",
    "AwsClients",
    "LocalLambdaContext",
    "StackClients",
    "StackProcess",
    "api_key_hashes",
    "bearer",
    "clients_for",
    "free_port",
    "s3_client_for",
    "start_stack_process",
]


@dataclass
class AwsClients:
    s3: Any
    dynamodb: Any
    sqs: Any


def api_key_hashes() -> dict[str, str]:
    """sha256 hex -> owner, as ApiSettings keeps them (never the keys themselves)."""
    return {hashlib.sha256(key.encode()).hexdigest(): owner for owner, key in API_KEYS.items()}


def bearer(owner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEYS[owner]}"}


@dataclass
class Api:
    """The API under test and what it stands on, for assertions on side effects."""

    client: TestClient
    service: UploadService
    aws: AwsClients
    bucket: str
    table: str
    jobs: JobsTable
    store: UploadStore
    owners: dict[str, str] = field(default_factory=lambda: dict(API_KEYS))

    def auth(self, owner: str) -> dict[str, str]:
        return bearer(owner)

    def create_upload(
        self, owner: str = "alice", *, size: int = 3000, filename: str = "take.wav", **extra: Any
    ) -> dict[str, Any]:
        response = self.client.post(
            "/v1/uploads",
            json={"filename": filename, "size": size, **extra},
            headers=self.auth(owner),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body
