"""The local twin of an EventBridge schedule: a function invoked every ``interval_seconds``
with EventBridge's "Scheduled Event" payload and a Lambda context, on a background thread.

The handler is a callable or a dotted path (``package.module.function``), imported on the
first run, after the stack has set the functions' environment.
"""

from __future__ import annotations

import importlib
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .lambda_context import LOCAL_ACCOUNT_ID, LocalLambdaContext
from .net import Service

log = logging.getLogger("audiolift_devstack.schedule")

# How long stop() waits for a run in progress.
STOP_GRACE_SECONDS = 5.0

Handler = Callable[[dict[str, Any], Any], Any]


def scheduled_event(rule_name: str, *, region: str = "us-east-1") -> dict[str, Any]:
    """The event EventBridge sends a schedule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


def import_handler(path: str) -> Handler:
    module_name, _, attribute = path.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


class ScheduledFunction(Service):
    """``ScheduledFunction("pkg.handler.handler", interval_seconds=60, ...).start()``: runs
    the handler every interval (the first run one interval after start) until ``stop()``.
    A failing run is logged; the next one runs on time, as EventBridge retries nothing
    that the function itself does not."""

    def __init__(
        self,
        handler: Handler | str,
        *,
        interval_seconds: float,
        function_name: str,
        timeout_seconds: float = 60.0,
        region: str = "us-east-1",
    ) -> None:
        self._handler = handler
        self.interval_seconds = interval_seconds
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.region = region
        self.runs = 0
        self.failures = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def handler(self) -> Handler:
        if isinstance(self._handler, str):
            self._handler = import_handler(self._handler)
        return self._handler

    def run_once(self) -> Any:
        """One invocation, as the schedule's rule would make it."""
        context = LocalLambdaContext(
            self.function_name, timeout_seconds=self.timeout_seconds, region=self.region
        )
        self.runs += 1
        return self.handler(scheduled_event(f"{self.function_name}-schedule"), context)

    def start(self) -> ScheduledFunction:
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"schedule-{self.function_name}", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_seconds):
            try:
                self.run_once()
            except Exception:
                self.failures += 1
                log.exception("the scheduled function %s failed", self.function_name)

    def stop(self, timeout: float = STOP_GRACE_SECONDS) -> None:
        """Stop after the current run, waiting for it at most ``timeout`` seconds: a run
        still talking to servers the stack is stopping is left to its daemon thread (as
        Lambda ends an invocation whose sandbox goes away)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                log.warning("%s is still running; leaving it (daemon thread)", self.function_name)
            self._thread = None
