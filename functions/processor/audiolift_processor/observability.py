"""The processor's logger and metrics (Powertools; configured by the POWERTOOLS_*
variables)."""

from __future__ import annotations

from audiolift_core.observability import logger, metrics

log = logger("audiolift-processor")
processor_metrics = metrics("audiolift-processor")
