"""A service the API depends on that accepts connections and never answers: the caller
gets the API's own 503 (with Retry-After, which the SDK retries) well inside the function's
timeout, not API Gateway's bare error after it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from audiolift_api.app import API_CALLS, API_EVENT_CALLS, create_app
from audiolift_api.service import UploadService
from audiolift_core.aws import CallLimits, s3_client
from audiolift_core.jobs_table import JobsTable
from audiolift_core.storage import UploadStore
from audiolift_devstack.template_resources import load_template
from audiolift_testkit import bearer
from botocore.config import Config
from fastapi.testclient import TestClient

# Retries wait a little between attempts (botocore's standard mode: up to 1 s each).
BACKOFF_ALLOWANCE_SECONDS = 2.0


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """A TCP server that accepts every connection and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


def test_one_api_call_fails_well_inside_the_functions_timeout() -> None:
    timeout = load_template()["Resources"]["ApiFunction"]["Properties"]["Timeout"]
    for limits in (API_CALLS, API_EVENT_CALLS):
        assert limits.worst_case_seconds + BACKOFF_ALLOWANCE_SECONDS < timeout - 2
    config: Any = s3_client.__wrapped__(API_CALLS).meta.config  # botocore Config: untyped
    assert (config.connect_timeout, config.read_timeout) == (2, 10)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}


def test_a_hung_jobs_table_is_a_503_with_retry_after(
    hung_endpoint: str, api_settings: Any, upload_store: UploadStore
) -> None:
    limits = CallLimits(total_max_attempts=2, connect_timeout=0.5, read_timeout=0.5)
    hung = boto3.client("dynamodb", endpoint_url=hung_endpoint, config=Config(**limits.config()))
    jobs = JobsTable(hung, api_settings.storage.jobs_table)
    started = time.monotonic()
    with TestClient(create_app(service=UploadService(api_settings, jobs, upload_store))) as api:
        response = api.get("/v1/jobs/0123456789abcdef0123456789abcdef", headers=bearer("alice"))
    took = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.headers["retry-after"]
    assert took < limits.worst_case_seconds + BACKOFF_ALLOWANCE_SECONDS + 1
