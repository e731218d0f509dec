"""Powertools Logger/Metrics, configured once per process (names come from the
standard POWERTOOLS_* variables; the defaults keep tests and the local stack quiet)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

Handler = TypeVar("Handler", bound=Callable[..., Any])


@functools.cache
def logger(service: str) -> Logger:
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service))


@functools.cache
def metrics(service: str) -> Metrics:
    return Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "audiolift"),
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", service),
    )


def log_recorded_metrics(recorder: Metrics) -> Callable[[Handler], Handler]:
    """Like Powertools' ``log_metrics``, but an invocation that recorded no metric (a read,
    a refusal, an empty sweep, a hand-on) prints nothing instead of a warning."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def flushing(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                if recorder.metric_set:
                    recorder.flush_metrics()
                    # Powertools' flush keeps them when POWERTOOLS_METRICS_DISABLED is set.
                    recorder.clear_metrics()

        return flushing  # type: ignore[return-value]

    return decorate
