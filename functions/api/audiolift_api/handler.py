"""Lambda entry point: API Gateway HTTP API (payload v2) -> Mangum -> FastAPI."""

from __future__ import annotations

from typing import Any

from audiolift_core.observability import log_recorded_metrics
from audiolift_core.settings import ApiSettings

from .app import api_metrics, build_service, create_app, lambda_adapter

settings = ApiSettings.from_env()
app = create_app(build_service(settings))
asgi_handler = lambda_adapter(app, base_path=settings.api_base_path)


@log_recorded_metrics(api_metrics)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Mangum, then the request's metrics (EMF to stdout)."""
    response: dict[str, Any] = asgi_handler(event, context)
    return response
