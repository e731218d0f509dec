"""Powertools Logger/Metrics, configured once per process (names come from the
standard POWERTOOLS_* variables; the defaults keep tests and the local stack quiet)."""

from __future__ import annotations

import functools
import os

from aws_lambda_powertools import Logger, Metrics


@functools.cache
def logger(service: str) -> Logger:
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service))


@functools.cache
def metrics(service: str) -> Metrics:
    return Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "audiolift"),
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", service),
    )
