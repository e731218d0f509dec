"""Serve the browser page (clients/web) on 127.0.0.1 for the local stack.

Only the page's own files are served (index.html, style.css, the bundle in dist/);
the bundle is built by scripts/install_browser.sh (npm). On AWS the page is static
hosting's business, never the API's.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .net import LOOPBACK, Service, serve_in_thread, stop_server

WEB_DIR = Path(__file__).resolve().parents[2] / "clients" / "web"
SERVED_TOP_LEVEL = frozenset({"", "index.html", "uppy.html", "style.css", "dist", "favicon.ico"})


class _PageHandler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        top = self.path.split("?", 1)[0].lstrip("/").split("/", 1)[0]
        if top not in SERVED_TOP_LEVEL:  # not node_modules, src, package files
            self.send_error(404)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the stack's own output stays readable


@dataclass
class WebServer(Service):
    directory: Path = WEB_DIR
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def built(self) -> bool:
        return (self.directory / "dist" / "app.js").exists()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def page_url(self, api_url: str, api_key: str) -> str:
        return f"{self.url}/?{urlencode({'api': api_url, 'key': api_key})}"

    def start(self) -> WebServer:
        handler = functools.partial(_PageHandler, directory=str(self.directory))
        self._server = ThreadingHTTPServer((LOOPBACK, self.port), handler)
        self._thread = serve_in_thread(self._server, "audiolift-web-page")
        return self

    def stop(self) -> None:
        stop_server(self._server, self._thread)
        self._server = None
        self._thread = None
