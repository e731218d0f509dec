"""Fixtures for driving the browser page (clients/web) in real headless Chromium against
the project's one local stack (``audiolift_devstack``), never a harness of their own.

- ``web_bundle``: clients/web/dist/, rebuilt with esbuild when a source is newer.
- ``browser_stack``: ``python -m audiolift_devstack up`` in a child process (the
  devstack's launcher), twice over (parametrised): S3 from moto's server, and S3 from
  SeaweedFS (which checks presigned signatures, part and whole-file CRC32Cs and bucket
  CORS itself). Both run the API under uvicorn, DynamoDB/SQS on moto and the devstack's
  poller feeding the processor's Lambda handler; the stack also serves the page, on its
  own origin, so CORS is exercised as in a deployment. Parts are 5 MiB (S3's minimum)
  so small files have several.
- ``chromium``: a fresh Playwright browser context per test, in Debian's /usr/bin/chromium
  launched once per session (Playwright's own browser downloads are not used).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audiolift_devstack.launcher import start_stack_process
from page_support import PART_BYTES, BrowserStack

REPO = Path(__file__).resolve().parents[2]
WEB_ROOT = REPO / "clients" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "run scripts/install_browser.sh"


def _bundle_is_stale() -> bool:
    bundles = [WEB_ROOT / "dist" / name for name in ("app.js", "uppy.js", "checksum-worker.js")]
    if not all(bundle.exists() for bundle in bundles):
        return True
    built = min(bundle.stat().st_mtime for bundle in bundles)
    sources = [
        *(WEB_ROOT / "src").rglob("*.js"),
        WEB_ROOT / "package-lock.json",
        REPO / "layers" / "core" / "audiolift_core" / "formats.json",
    ]
    return any(path.stat().st_mtime > built for path in sources)


@pytest.fixture(scope="session")
def web_bundle() -> Path:
    """clients/web/dist/, rebuilt when a source is newer."""
    if _bundle_is_stale():
        if not (WEB_ROOT / "node_modules" / ".bin" / "esbuild").exists():
            pytest.fail(f"clients/web has no node_modules: {INSTALL_HINT}")
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"npm is not installed: {INSTALL_HINT}")
        subprocess.run([npm, "run", "--silent", "build"], cwd=WEB_ROOT, check=True)
    return WEB_ROOT / "dist"


@pytest.fixture(scope="session", params=["moto", "seaweedfs"])
def browser_stack(
    request: pytest.FixtureRequest, web_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserStack]:
    """The local stack with S3 from moto or SeaweedFS, and the page it serves."""
    handle = start_stack_process(
        tmp_path_factory.mktemp(f"browser-{request.param}"),
        "--s3", request.param,
        "--part-size-bytes", str(PART_BYTES),
        "--part-min-bytes", str(PART_BYTES),
    )  # fmt: skip
    try:
        assert handle.info.web_url, "the stack serves no page"
        yield BrowserStack(name=request.param, info=handle.info, clients=handle.clients)
    finally:
        handle.stop_checked()


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium, headless, launched once for the session."""
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
