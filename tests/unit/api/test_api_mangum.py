"""The Lambda entry point with API Gateway HTTP API (payload v2) events from events/:
Mangum -> FastAPI, in both auth modes and behind a named stage; and the real
``audiolift_api.handler`` module built from its environment."""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audiolift_api.app import create_app, lambda_adapter
from audiolift_api.service import UploadService
from audiolift_core import aws as core_aws
from audiolift_core.jobs import JobStatus
from audiolift_core.jobs_table import JobsTable
from audiolift_core.settings import ApiSettings
from audiolift_core.storage import UploadStore
from audiolift_devstack.lambda_context import LocalLambdaContext
from audiolift_testkit import API_KEYS, AwsClients
from mangum import Mangum

EVENTS = Path(__file__).resolve().parents[3] / "events"
pytestmark = pytest.mark.timeout(120)


def api_context() -> LocalLambdaContext:
    return LocalLambdaContext("ApiFunction", timeout_seconds=29, memory_limit_in_mb=512)


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    assert event["version"] == "2.0"
    return event


def with_path(event: dict[str, Any], path: str, query: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    if query is not None:
        event["rawQueryString"] = query
    return event


def with_body(event: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["body"] = json.dumps(body)
    event["headers"]["content-length"] = str(len(event["body"]))
    return event


def with_authorization(event: dict[str, Any], value: str | None) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["headers"].pop("authorization", None)
    if value is not None:
        event["headers"]["authorization"] = value
    return event


def without_authorizer(event: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["requestContext"].pop("authorizer", None)
    return event


def invoke(handler: Any, event: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    response = handler(event, api_context())
    body = response.get("body") or ""
    assert not response.get("isBase64Encoded")
    return response["statusCode"], (json.loads(body) if body else None), response["headers"]


def claims_sub(event: dict[str, Any]) -> str:
    sub: str = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    return sub


@pytest.fixture
def jwt_handler(
    api_settings: ApiSettings, jobs_table: JobsTable, upload_store: UploadStore
) -> Mangum:
    settings = ApiSettings(
        storage=api_settings.storage,
        auth_mode="jwt",
        part_min_bytes=api_settings.part_min_bytes,
        preferred_part_bytes=api_settings.preferred_part_bytes,
    )
    return lambda_adapter(create_app(service=UploadService(settings, jobs_table, upload_store)))


@pytest.fixture
def key_handler(upload_service: UploadService) -> Mangum:
    return lambda_adapter(create_app(service=upload_service))


def test_health_event(key_handler: Mangum) -> None:
    status, body, headers = invoke(key_handler, load_event("http-health.json"))
    assert status == 200 and body == {"status": "ok"}
    # The correlation id is API Gateway's request id when the caller sends none.
    assert headers["x-correlation-id"] == "JKJaXmPLvHcESHA="


def test_jwt_owner_is_the_sub_claim(jwt_handler: Mangum, jobs_table: JobsTable) -> None:
    create = load_event("http-create-upload.json")
    status, body, _ = invoke(jwt_handler, with_body(create, {"filename": "a.wav", "size": 3000}))
    assert status == 201, body
    job_id = body["job_id"]
    job = jobs_table.get(job_id)
    assert job is not None and job.owner == claims_sub(create)

    status, view, _ = invoke(
        jwt_handler, with_path(load_event("http-get-job.json"), f"/v1/jobs/{job_id}")
    )
    assert status == 200 and view["job_id"] == job_id and view["status"] == "awaiting_upload"

    status, listing, _ = invoke(jwt_handler, load_event("http-list-jobs.json"))
    assert status == 200 and [j["job_id"] for j in listing["jobs"]] == [job_id]


def test_jwt_another_subject_sees_404(jwt_handler: Mangum) -> None:
    create = load_event("http-create-upload.json")
    _, body, _ = invoke(jwt_handler, with_body(create, {"filename": "a.wav", "size": 10}))
    other = with_path(load_event("http-get-job.json"), f"/v1/jobs/{body['job_id']}")
    other["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "someone-else"
    status, error, _ = invoke(jwt_handler, other)
    assert status == 404 and error["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "event_name", ["http-create-upload.json", "http-get-job.json", "http-list-jobs.json"]
)
def test_jwt_without_a_sub_is_401(jwt_handler: Mangum, aws: AwsClients, event_name: str) -> None:
    event = load_event(event_name)
    no_authorizer = without_authorizer(event)
    no_sub = copy.deepcopy(event)
    del no_sub["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    for variant in (no_authorizer, no_sub):
        status, error, headers = invoke(jwt_handler, variant)
        assert status == 401 and error["error"]["code"] == "unauthorized"
        assert headers["www-authenticate"] == "Bearer"
    # A bearer token in the header proves nothing without the authorizer's verdict.
    assert aws.s3.list_multipart_uploads(Bucket="audiolift-test-uploads").get("Uploads", []) == []


def test_api_key_mode_ignores_jwt_claims(key_handler: Mangum, jobs_table: JobsTable) -> None:
    create = with_body(load_event("http-create-upload.json"), {"filename": "a.wav", "size": 10})
    # The JWT in the event's header is no API key.
    status, error, _ = invoke(key_handler, create)
    assert status == 401 and error["error"]["code"] == "unauthorized"
    status, _, _ = invoke(key_handler, with_authorization(create, None))
    assert status == 401
    status, body, _ = invoke(key_handler, with_authorization(create, f"Bearer {API_KEYS['bob']}"))
    assert status == 201
    job = jobs_table.get(body["job_id"])
    assert job is not None and job.owner == "bob"  # not the event's sub claim


def test_named_stage_base_path(upload_service: UploadService) -> None:
    handler = lambda_adapter(create_app(service=upload_service), base_path="/prod")
    health = load_event("http-health.json")
    health = with_path(health, "/prod/health")
    health["requestContext"]["stage"] = "prod"
    status, body, _ = invoke(handler, health)
    assert status == 200 and body == {"status": "ok"}

    create = with_path(load_event("http-create-upload.json"), "/prod/v1/uploads")
    create["requestContext"]["stage"] = "prod"
    create = with_authorization(
        with_body(create, {"filename": "a.flac", "size": 10}), f"Bearer {API_KEYS['alice']}"
    )
    status, body, _ = invoke(handler, create)
    assert status == 201, body
    get = with_path(load_event("http-get-job.json"), f"/prod/v1/jobs/{body['job_id']}")
    get = with_authorization(get, f"Bearer {API_KEYS['alice']}")
    status, view, _ = invoke(handler, get)
    assert status == 200 and view["filename"] == "a.flac"


# --- the real handler module, configured from the environment ---------------------------


@pytest.fixture
def handler_module(
    monkeypatch: pytest.MonkeyPatch, aws_resources: Any, small_s3_parts: int
) -> Iterator[Any]:
    """audiolift_api.handler imported with the environment the template gives the function
    (JWT mode, a named stage), over moto."""
    monkeypatch.setenv("JOBS_TABLE", aws_resources.table_name)
    monkeypatch.setenv("UPLOAD_BUCKET", aws_resources.bucket_name)
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("API_KEY_HASHES", "")
    monkeypatch.setenv("PART_MIN_BYTES", "1024")
    monkeypatch.setenv("PART_SIZE_BYTES", "1024")
    monkeypatch.setenv("API_BASE_PATH", "/v2stage")
    # The clients are cached per process: make them inside this test's moto.
    core_aws.forget_clients()
    import audiolift_api.handler

    yield importlib.reload(audiolift_api.handler)
    core_aws.forget_clients()


def test_handler_module_end_to_end(
    handler_module: Any, aws: AwsClients, aws_resources: Any
) -> None:
    create = with_path(load_event("http-create-upload.json"), "/v2stage/v1/uploads")
    create = with_body(create, {"filename": "take.wav", "size": 2500})
    status, body, _ = invoke(handler_module.handler, create)
    assert status == 201, body
    assert body["part_count"] == 3
    job_id = body["job_id"]
    item = aws.dynamodb.get_item(TableName=aws_resources.table_name, Key={"job_id": {"S": job_id}})
    assert item["Item"]["owner"]["S"] == claims_sub(create)
    assert item["Item"]["status"]["S"] == JobStatus.AWAITING_UPLOAD.value
    (upload,) = aws.s3.list_multipart_uploads(Bucket=aws_resources.bucket_name)["Uploads"]
    assert upload["Key"] == f"uploads/{job_id}"

    get = with_path(load_event("http-get-job.json"), f"/v2stage/v1/jobs/{job_id}")
    status, view, _ = invoke(handler_module.handler, get)
    assert status == 200 and view["filename"] == "take.wav"


def test_the_handler_prints_metrics_only_for_requests_that_record_some(
    handler_module: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One EMF line for a created upload; nothing (and no Powertools warning about empty
    metrics) for a request that records none."""
    import warnings

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status, _, _ = invoke(handler_module.handler, load_event("http-health.json"))
    assert status == 200
    assert '"_aws"' not in capsys.readouterr().out

    create = with_path(load_event("http-create-upload.json"), "/v2stage/v1/uploads")
    status, _, _ = invoke(
        handler_module.handler, with_body(create, {"filename": "a.wav", "size": 9})
    )
    assert status == 201
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1 and emf[0]["UploadsCreated"] == [1.0]
