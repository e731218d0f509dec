"""Headless Chromium driven over the DevTools protocol on a pipe, with only the domains a
benchmark needs (Target, Page, Runtime, DOM): the browser runs as a person's does.

Playwright enables the Network domain on every page it drives (it reports requests to its
client), and Chromium then observes every request's body: measured on this machine, the
same 256 MiB upload of a Blob cost Chromium ~2 ms of CPU per MiB more under Playwright
(6.7 against 4.5 ms/MiB), and an ArrayBuffer body ~15 times as much. A benchmark of the
page's own cost cannot carry that.

    with ChromiumPipe(args) as chromium:
        page = chromium.new_page(url)
        page.wait_for("document.readyState === 'complete'")
        page.set_input_files("#file-input", path)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

# Chromium reads commands from fd 3 and writes answers and events to fd 4, each message a
# JSON text ending with a NUL byte.
COMMAND_FD, ANSWER_FD = 3, 4


class ChromiumPipe:
    def __init__(self, executable: str, args: list[str], *, timeout: float = 30.0):
        self._profile = tempfile.mkdtemp(prefix="audiolift-chromium-")
        to_chromium_read, to_chromium_write = os.pipe()
        from_chromium_read, from_chromium_write = os.pipe()
        # Copies above fd 4, so that dup2 below never maps a descriptor onto itself (which
        # would leave it close-on-exec).
        command_source, answer_sink = os.dup(to_chromium_read), os.dup(from_chromium_write)

        def wire() -> None:
            os.dup2(command_source, COMMAND_FD)
            os.dup2(answer_sink, ANSWER_FD)

        try:
            self.process = subprocess.Popen(
                [executable, "--headless", "--remote-debugging-pipe",
                 f"--user-data-dir={self._profile}", *args, "about:blank"],
                preexec_fn=wire,
                close_fds=False,  # fds 3 and 4 are inherited; our others are close-on-exec
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            for fd in (to_chromium_read, from_chromium_write, command_source, answer_sink):
                os.close(fd)
        self._commands = os.fdopen(to_chromium_write, "wb", buffering=0)
        self._answers = os.fdopen(from_chromium_read, "rb", buffering=0)
        self._pending = b""
        self._last_id = 0
        self._timeout = timeout

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """One command; its result (events that arrive meanwhile are dropped)."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._commands.write(json.dumps(message).encode() + b"\0")
        while True:
            answer = json.loads(self._next_message())
            if answer.get("id") == self._last_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error'].get('message')}")
                return answer.get("result", {})

    def _next_message(self) -> bytes:
        while b"\0" not in self._pending:
            more = self._answers.read(1 << 16)
            if not more:
                raise RuntimeError("Chromium closed its DevTools pipe (it exited)")
            self._pending += more
        message, self._pending = self._pending.split(b"\0", 1)
        return message

    def new_page(self, url: str) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, target, session["sessionId"])
        page.send("Page.navigate", {"url": url})
        return page

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):
                self.send("Browser.close")
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self._commands, self._answers):
            with contextlib.suppress(OSError):
                stream.close()
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    def __init__(self, chromium: ChromiumPipe, target: str, session: str):
        self.chromium = chromium
        self.target = target
        self.session = session

    def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.chromium.send(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        """The expression's value (awaited if it is a promise)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details)
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 60.0, interval: float = 0.5) -> None:
        """Poll until ``expression`` is truthy (twice a second by default: polling on
        every frame would charge the driver's work to the page)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout:.0f} s: {expression}")
            time.sleep(interval)

    def set_input_files(self, selector: str, path: Path) -> None:
        document = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": document, "selector": selector})
        if not node.get("nodeId"):
            raise RuntimeError(f"no element matches {selector}")
        self.send("DOM.setFileInputFiles", {"files": [str(path)], "nodeId": node["nodeId"]})

    def close(self) -> None:
        self.chromium.send("Target.closeTarget", {"targetId": self.target})
