"""Fixtures for driving the browser page (clients/web) in real headless Chromium.

- ``web_origin``: the page, built with esbuild if its bundle is stale, served by a static
  file server on its own port: the page's origin differs from the API's and from S3's, so
  CORS is exercised exactly as in a deployment.
- ``browser_stack``: the back end, twice over (parametrised):
  * ``moto``: this module's harness. The API (uvicorn serving ``create_app()``,
    configured from the environment) over moto's server for S3, DynamoDB and SQS, each a
    separate process on 127.0.0.1; table, queues and bucket from template.yaml's own
    definitions, the bucket's CORS rule (``ExposeHeaders: ETag``) listing the page's
    origin. moto runs with ``MOTO_DISABLE_GLOBAL_CORS=true`` so that rule, not moto's
    allow-everything default, is what the browser meets. moto's S3 announces each new
    object on the processing queue (the template's notification) and a poller thread
    hands the messages to the processor's real Lambda handler.
  * ``seaweedfs``: the project's local stack (``python -m audiolift_devstack up``), whose
    S3 is SeaweedFS: it checks the presigned URLs' signatures and applies bucket CORS
    itself.
- ``chromium``: a fresh Playwright browser context per test, in Debian's /usr/bin/chromium
  launched once per session (Playwright's own browser downloads are not used).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from browser_harness import BrowserStack, QueuePoller

REPO = Path(__file__).resolve().parents[2]
WEB_ROOT = REPO / "clients" / "web"
CHROMIUM = os.environ.get("AUDIOLIFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REGION = "us-east-1"
API_KEY = "browser-test-key-0001"
OWNER = "browser-tester"
INSTALL_HINT = "run scripts/install_browser.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[None]:
    """A child process on 127.0.0.1, stopped (and waited for) when the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_http(ready_url, process)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the page --------------------------------------------------------------------------------


def _bundle_is_stale() -> bool:
    bundle = WEB_ROOT / "dist" / "app.js"
    if not bundle.exists():
        return True
    built = bundle.stat().st_mtime
    sources = [*(WEB_ROOT / "src").rglob("*.js"), WEB_ROOT / "package-lock.json"]
    return any(path.stat().st_mtime > built for path in sources)


@pytest.fixture(scope="session")
def web_bundle() -> Path:
    """clients/web/dist/app.js, rebuilt when a source is newer."""
    if _bundle_is_stale():
        if not (WEB_ROOT / "node_modules" / ".bin" / "esbuild").exists():
            pytest.fail(f"clients/web has no node_modules: {INSTALL_HINT}")
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"npm is not installed: {INSTALL_HINT}")
        subprocess.run([npm, "run", "--silent", "build"], cwd=WEB_ROOT, check=True)
    return WEB_ROOT / "dist" / "app.js"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def web_origin(web_bundle: Path) -> Iterator[str]:
    """The static server's origin (scheme://host:port), serving clients/web."""
    handler = functools.partial(_QuietHandler, directory=str(WEB_ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="web-static", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- the stack: API + S3 + DynamoDB ------------------------------------------------------------


def _aws_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("MOTO_DISABLE_GLOBAL_CORS",)
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )
    return env


@pytest.fixture(scope="session", params=["moto", "seaweedfs"])
def browser_stack(
    request: pytest.FixtureRequest, web_origin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserStack]:
    """The page's back end: this module's moto harness, or the project's local stack
    (SeaweedFS, a real S3 that checks SigV4 signatures and serves bucket CORS itself)."""
    state = tmp_path_factory.mktemp(f"browser-{request.param}")
    if request.param == "moto":
        with moto_harness(web_origin, state) as stack:
            yield stack
    else:
        with local_stack(state) as stack:
            yield stack


@contextlib.contextmanager
def local_stack(state: Path) -> Iterator[BrowserStack]:
    """``python -m audiolift_devstack up`` (SeaweedFS), started and stopped the way the
    integration tests do it."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    try:
        from stack_support import stack_clients, start_stack_process
    finally:
        sys.path.pop(0)

    handle = start_stack_process(state / "stack")
    try:
        info = handle.info
        s3, dynamodb, _ = stack_clients(info)
        yield BrowserStack(
            name="seaweedfs",
            api_url=info["api_url"],
            s3_endpoint=info["s3_endpoint"],
            api_key=info["api_key"],
            bucket=info["bucket"],
            table=info["table"],
            s3=s3,
            dynamodb=dynamodb,
        )
    finally:
        handle.stop()
        survivors = handle.survivors()
        for process in survivors:
            process.kill()
        assert not survivors, f"the local stack left {survivors} behind"


@contextlib.contextmanager
def moto_harness(web_origin: str, state: Path) -> Iterator[BrowserStack]:
    from audiolift_core.jobs_table import JobsTable
    from audiolift_core.settings import ProcessorSettings, StorageSettings
    from audiolift_core.storage import UploadStore
    from audiolift_devstack.template_resources import ResourceNames, create_resources
    from audiolift_processor.processing import Processor

    names = ResourceNames.with_prefix("browser-test")
    moto_port, api_port = free_port(), free_port()
    moto_url = f"http://127.0.0.1:{moto_port}"
    api_url = f"http://127.0.0.1:{api_port}"

    moto_env = _aws_env() | {"MOTO_DISABLE_GLOBAL_CORS": "true"}
    moto_command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)]
    with running(moto_command, moto_env, state / "moto.log", f"{moto_url}/moto-api/"):
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        s3 = session.client("s3", endpoint_url=moto_url, config=config)
        dynamodb = session.client("dynamodb", endpoint_url=moto_url)
        sqs = session.client("sqs", endpoint_url=moto_url)
        # Table, queues and bucket as the template defines them; the page's origin is the
        # one its CorsAllowedOrigins parameter would list.
        created = create_resources(
            s3, dynamodb, sqs, names=names, parameters={"CorsAllowedOrigins": web_origin}
        )
        storage = StorageSettings(jobs_table=created.table_name, upload_bucket=created.bucket_name)
        processor = Processor(
            ProcessorSettings(storage=storage, progress_interval_seconds=0.5),
            JobsTable(dynamodb, storage.jobs_table),
            UploadStore(s3, storage.upload_bucket),
            s3,
        )
        poller = QueuePoller(sqs, created.queue_url, created.queue_arn, processor)
        api_env = _aws_env() | {
            "AWS_ENDPOINT_URL_S3": moto_url,
            "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
            "JOBS_TABLE": names.table,
            "UPLOAD_BUCKET": names.bucket,
            "AUTH_MODE": "api_key",
            "API_KEY_HASHES": f"{OWNER}:{hashlib.sha256(API_KEY.encode()).hexdigest()}",
            "CORS_ALLOW_ORIGINS": web_origin,
            "POWERTOOLS_SERVICE_NAME": "audiolift-api",
            "POWERTOOLS_METRICS_NAMESPACE": "audiolift",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(
                str(REPO / p) for p in ("layers/core", "functions/api", "devstack")
            ),
        }
        api_command = [
            sys.executable, "-m", "uvicorn", "--factory", "audiolift_api.app:create_app",
            "--host", "127.0.0.1", "--port", str(api_port), "--log-level", "warning",
        ]  # fmt: skip
        with (
            running(api_command, api_env, state / "api.log", f"{api_url}/health"),
            poller,
        ):
            yield BrowserStack(
                name="moto",
                api_url=api_url,
                s3_endpoint=moto_url,
                api_key=API_KEY,
                bucket=names.bucket,
                table=names.table,
                s3=s3,
                dynamodb=dynamodb,
            )
        assert not poller.errors, poller.errors


# --- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium, headless, launched once for the session (Playwright gives it a
    fresh --user-data-dir of its own)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright for Python is not installed: {INSTALL_HINT}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def chromium(chromium_browser: Any) -> Iterator[Any]:
    """A fresh browser context per test: its own storage (localStorage), cache and
    cookies, nothing shared with other tests."""
    context = chromium_browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        yield context
    finally:
        context.close()
