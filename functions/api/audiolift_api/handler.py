"""Lambda entry point: API Gateway HTTP API (payload v2) -> Mangum -> FastAPI."""

from __future__ import annotations

import os

from mangum import Mangum

from .app import api_metrics, create_app

app = create_app()
# A named stage puts "/<stage>" in the path; API_BASE_PATH strips it ("/" for $default).
handler = api_metrics.log_metrics(
    Mangum(app, lifespan="off", api_gateway_base_path=os.environ.get("API_BASE_PATH", "/"))
)
