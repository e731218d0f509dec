"""The small summary stored in the job item (DynamoDB): plain numbers, strings, None."""

from __future__ import annotations

import math
from typing import Any


def summarize(document: dict[str, Any]) -> dict[str, Any]:
    """Pick the headline figures out of an analysis document."""
    fmt = document.get("format") or {}
    loudness = document.get("loudness") or {}
    silence = document.get("silence") or {}
    return {
        "duration_seconds": _number(fmt.get("duration_seconds"), 3),
        "sample_rate": _integer(fmt.get("sample_rate")),
        "channels": _integer(fmt.get("channels")),
        "container": fmt.get("container") if isinstance(fmt.get("container"), str) else None,
        "integrated_lufs": _number(loudness.get("integrated_lufs"), 2),
        "loudness_range_lu": _number(loudness.get("loudness_range_lu"), 2),
        "true_peak_dbtp": _number(loudness.get("true_peak_dbtp"), 2),
        "peak_dbfs": _number(document.get("peak_dbfs"), 2),
        "silence_ratio": _number(silence.get("ratio"), 4),
    }


def _number(value: Any, digits: int) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    return round(float(value), digits)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
