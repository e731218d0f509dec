"""The OpenAPI document describes every route and its errors; the API Lambda imports
neither numpy nor soundfile (they live in the processor's layer only)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from audiolift_testkit import Api

REPO = Path(__file__).resolve().parents[3]
ERROR_REF = "#/components/schemas/ErrorResponse"


def test_openapi_lists_every_route_and_the_error_model(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    expected = {
        ("/v1/uploads", "post"),
        ("/v1/uploads/{job_id}/parts", "post"),
        ("/v1/uploads/{job_id}/parts", "get"),
        ("/v1/uploads/{job_id}/complete", "post"),
        ("/v1/uploads/{job_id}", "delete"),
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{job_id}/result", "get"),
        ("/v1/jobs/{job_id}/cancel", "post"),
        ("/v1/jobs/{job_id}", "delete"),
        ("/v1/limits", "get"),
        ("/health", "get"),
        ("/s3/multipart", "post"),
        ("/s3/multipart/{upload_id}", "get"),
        ("/s3/multipart/{upload_id}/{part_number}", "get"),
        ("/s3/multipart/{upload_id}/complete", "post"),
        ("/s3/multipart/{upload_id}", "delete"),
    }
    documented = {(path, method) for path, item in paths.items() for method in item}
    assert expected <= documented
    # Nothing undocumented beyond the contract but older Uppy's batch signing.
    assert documented - expected == {("/s3/multipart/{upload_id}/batch", "get")}

    schemas = document["components"]["schemas"]
    error_model = schemas["ErrorResponse"]
    assert error_model["required"] == ["error"]
    detail = schemas[error_model["properties"]["error"]["$ref"].rsplit("/", 1)[-1]]
    assert {"code", "message"} <= set(detail["required"])

    for path, method in documented - {("/health", "get")}:
        responses = paths[path][method]["responses"]
        assert "401" in responses, (path, method)
        for status, description in responses.items():
            if status.startswith(("4", "5")):
                schema = description["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (path, method, status)
    assert "413" in paths["/v1/uploads"]["post"]["responses"]
    assert "415" in paths["/v1/uploads"]["post"]["responses"]
    assert "409" in paths["/v1/uploads/{job_id}/complete"]["post"]["responses"]
    assert "404" in paths["/v1/jobs/{job_id}"]["get"]["responses"]
    # Every $ref resolves.
    text = json.dumps(document)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in schemas, name


def test_docs_page_is_served(api: Api) -> None:
    assert api.client.get("/docs").status_code == 200


def test_the_api_lambda_imports_neither_numpy_nor_soundfile() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("layers/core", "functions/api")),
        "JOBS_TABLE": "jobs",
        "UPLOAD_BUCKET": "uploads",
        "AUTH_MODE": "api_key",
        "API_KEY_HASHES": "alice:" + hashlib.sha256(b"k").hexdigest(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "audiolift",
    }
    script = f"""
import json, sys
from audiolift_api.handler import handler
event = json.load(open({str(REPO / "events" / "http-health.json")!r}))
response = handler(event, None)
assert response["statusCode"] == 200, response
# A request that reaches the service (401: no AWS call) and the OpenAPI document.
event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/jobs"
assert handler(event, None)["statusCode"] == 401
event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
assert handler(event, None)["statusCode"] == 200
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "soundfile", "scipy"))
print(json.dumps(heavy))
"""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_no_module_imports_another_modules_private_names() -> None:
    """The API and the core share through public names (the routers through
    ``dependencies``), never through another module's ``_private`` ones."""
    import ast

    offenders = []
    for package in (REPO / "functions/api/audiolift_api", REPO / "layers/core/audiolift_core"):
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    offenders += [
                        f"{path.relative_to(REPO)}: {alias.name}"
                        for alias in node.names
                        if alias.name.startswith("_") and alias.name != "__future__"
                    ]
    assert offenders == []
