"""The FastAPI application. ``create_app()`` reads settings from the environment (and
fails loudly when one is missing); tests and the local stack pass their own service."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from audiolift_core.api_keys import ApiKeyStore
from audiolift_core.aws import (
    CallLimits,
    credentials,
    dynamodb_client,
    events_client,
    s3_client,
    ssm_client,
)
from audiolift_core.job_events import JobEvents
from audiolift_core.jobs_table import JobsTable
from audiolift_core.observability import logger, metrics
from audiolift_core.settings import ApiSettings
from audiolift_core.storage import UploadStore
from aws_lambda_powertools.metrics import MetricUnit
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from mangum import Mangum

from . import errors
from .body_limit import MAX_BODY_BYTES, BodyLimit
from .models import ErrorResponse
from .routers import companion, jobs, limits, uploads
from .service import UploadService

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

log = logger("audiolift-api")
api_metrics = metrics("audiolift-api")


class _LazyClient:
    """A boto3 client made on first use. Loading botocore's service models costs ~100 ms;
    requests that touch no AWS service (/health, 401s, malformed requests) need not pay
    it on a cold start. The factories cache the client, so it is made once."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory(), name)


# The API function has 29 s (API Gateway's HTTP API gives up after 30): one call to a
# service that hangs must fail well inside that, so the caller gets our 503 with
# Retry-After (which the SDK retries), not API Gateway's bare error. S3's
# CompleteMultipartUpload keeps its connection alive with whitespace while it works, so a
# read timeout between bytes does not cut a long completion short.
API_CALLS = CallLimits(total_max_attempts=2, connect_timeout=2, read_timeout=10)
API_EVENT_CALLS = CallLimits(total_max_attempts=2, connect_timeout=1, read_timeout=2)


def build_service(settings: ApiSettings) -> UploadService:
    dynamodb = cast("DynamoDBClient", _LazyClient(lambda: dynamodb_client(API_CALLS)))
    s3 = cast("S3Client", _LazyClient(lambda: s3_client(API_CALLS)))
    api_keys = None
    if settings.auth_mode == "api_key" and settings.api_keys_parameter:
        api_keys = ApiKeyStore(
            cast("SSMClient", _LazyClient(lambda: ssm_client(API_CALLS))),
            settings.api_keys_parameter,
            max_age_seconds=settings.api_keys_max_age_seconds,
        )
    events = None
    if settings.event_bus_name:
        events = JobEvents(
            cast("EventBridgeClient", _LazyClient(lambda: events_client(API_EVENT_CALLS))),
            settings.event_bus_name,
            bucket=settings.storage.upload_bucket,
            log=log,
            metrics=api_metrics,
        )
    return UploadService(
        settings,
        JobsTable(dynamodb, settings.storage.jobs_table),
        UploadStore(s3, settings.storage.upload_bucket, credentials=credentials),
        api_keys=api_keys,
        events=events,
    )


def _with_error_schema(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """app.openapi, plus the ErrorResponse schema every error response refers to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            error_schema = ErrorResponse.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            for name, definition in error_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["ErrorResponse"] = error_schema
        return app.openapi_schema or {}

    return openapi


def _correlation_id(request: Request) -> str:
    header = request.headers.get("x-correlation-id", "")
    if header and len(header) <= 128 and header.isprintable():
        return header
    event = request.scope.get("aws.event") or {}
    return str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex)


def lambda_adapter(app: FastAPI, *, base_path: str = "/") -> Mangum:
    """The app as API Gateway (HTTP API, payload v2) invokes it: Mangum, no lifespan,
    ``base_path`` (a named stage's "/<stage>") stripped from every path."""
    # Mangum 0.21+ probes the thread's event loop with asyncio.get_event_loop(), which
    # warns on Python 3.12+ when none is set, then makes the loop it needs anyway
    # (Kludex/mangum#377; upstream's fix silences the probe the same way).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "There is no current event loop", DeprecationWarning)
        return Mangum(app, lifespan="off", api_gateway_base_path=base_path)


def create_app(service: UploadService | None = None) -> FastAPI:
    if service is None:
        service = build_service(ApiSettings.from_env())
    app = FastAPI(
        title="audiolift upload API",
        version="1.0.0",
        description=(
            "Presigned multipart uploads of large audio files straight to S3, and the "
            "analysis jobs that follow. Errors are "
            '`{"error": {"code": "...", "message": "..."}}`. Every route but /health needs '
            "credentials, checked before the request body is read; request bodies over "
            f"{MAX_BODY_BYTES} bytes are refused with 413."
        ),
    )
    app.state.service = service
    app.openapi = _with_error_schema(app)  # type: ignore[method-assign]
    if service.settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(service.settings.cors_allow_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-correlation-id"],
            expose_headers=["x-correlation-id", "location"],
            max_age=600,
        )
    app.add_middleware(BodyLimit)
    errors.install(app)
    app.include_router(uploads.router)
    app.include_router(jobs.router)
    app.include_router(limits.router)
    app.include_router(companion.router)

    @app.get("/health", tags=["health"], summary="Liveness; needs no credentials")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.middleware("http")
    async def request_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """One structured log line per request, with its job and correlation id."""
        correlation_id = _correlation_id(request)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error", extra={"correlation_id": correlation_id})
            response = JSONResponse(
                errors.error_body("internal", "Something went wrong on our side."), 500
            )
        response.headers["x-correlation-id"] = correlation_id
        state: Any = request.state
        metric = getattr(state, "metric", None)
        if metric and response.status_code < 400:
            api_metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "job_id": getattr(state, "job_id", None),
                "owner": getattr(state, "owner", None),
                "correlation_id": correlation_id,
            },
        )
        return response

    return app
