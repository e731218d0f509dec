"""Lambda entry point: API Gateway HTTP API (payload v2) -> Mangum -> FastAPI."""

from __future__ import annotations

from audiolift_core.settings import ApiSettings
from mangum import Mangum

from .app import api_metrics, build_service, create_app

settings = ApiSettings.from_env()
app = create_app(build_service(settings))
handler = api_metrics.log_metrics(
    Mangum(app, lifespan="off", api_gateway_base_path=settings.api_base_path)
)
