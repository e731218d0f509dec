"""What a file may be, and what analysing it costs: the one table behind ``GET /v1/limits``
(and the README's "Limits and costs").

Pure code: no AWS here. Upload limits come from the API's settings; per-format analysis
speeds are measurements (below); the largest analysable file and the cost per GiB follow
from them, the processor's timeout, memory and architecture, and Lambda's price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .settings import S3_MAX_PART_BYTES, S3_MAX_PARTS, ApiSettings, MiB
from .uploads import UPLOAD_FORMATS

# Analysis speed on ONE vCPU (the processor's default 1769 MB is one vCPU), in MiB of the
# file per second, by format name. Source: bench/bench_formats.py (the processor's own
# analysis, threads confined to one CPU, vs ffmpeg -threads 1 -af ebur128) on a 5-minute
# stereo 48 kHz recording, shared 2-core x86_64 development machine, 2026-11-30: the slower
# of two runs (runs vary by up to +-40 % there). Formats not measured on their own say so.
ANALYSIS_MIB_PER_SECOND: Mapping[str, float] = {
    "wav": 128.0,  # PCM 16-bit: 700x real time
    "flac": 56.0,  # 16-bit: 420x real time
    "mp3": 7.6,  # ~150 kbit/s: 430x real time
    "ogg": 5.1,  # Vorbis ~120 kbit/s (Opus and FLAC in Ogg not measured): 350x real time
    # The other PCM containers decode as WAV does (same PCM, another header): not measured
    # on their own, so WAV's figure stands for them.
    "rf64": 128.0,
    "w64": 128.0,
    "aiff": 128.0,
    "aifc": 128.0,
    "caf": 128.0,
    "au": 128.0,
}
ANALYSIS_SPEED_SOURCE = "bench/bench_formats.py, one vCPU, x86_64, 2026-11-30"

# AWS Lambda on-demand compute price per GB-second, us-east-1, first tier (as of
# 2026-11-30; unchanged since 2021). The arm64 figure assumes the speeds above hold on
# Graviton, which has not been measured here.
PRICE_PER_GB_SECOND: Mapping[str, float] = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_DATE = "2026-11-30"
# Lambda gives a function one full vCPU at 1769 MB, proportionally less below. More memory
# brings more vCPUs, which the figures above (one vCPU) conservatively do not count.
ONE_VCPU_MB = 1769


@dataclass(frozen=True)
class FormatLimits:
    name: str
    label: str
    extensions: tuple[str, ...]
    analysis_mib_per_second: float | None
    max_analysable_bytes: int | None
    usd_per_gib_analysed: float | None


def analysis_speed(name: str, memory_mb: int) -> float | None:
    """MiB/s for this format at this memory (less than a vCPU below 1769 MB)."""
    speed = ANALYSIS_MIB_PER_SECOND.get(name)
    return None if speed is None else speed * min(1.0, memory_mb / ONE_VCPU_MB)


def usd_per_gib(mib_per_second: float, memory_mb: int, architecture: str) -> float:
    seconds = 1024 / mib_per_second
    return memory_mb / 1024 * seconds * PRICE_PER_GB_SECOND[architecture]


def format_limits(settings: ApiSettings) -> list[FormatLimits]:
    """Every accepted format with its measured speed, the largest file of it the processor
    analyses within its timeout (less the margin it keeps to record a failure), and its
    Lambda cost per GiB."""
    seconds = settings.processor_timeout_seconds - settings.processor_deadline_margin_seconds
    memory, architecture = settings.processor_memory_mb, settings.processor_architecture
    limits = []
    for upload_format in UPLOAD_FORMATS:
        speed = analysis_speed(upload_format.name, memory)
        limits.append(
            FormatLimits(
                name=upload_format.name,
                label=upload_format.label,
                extensions=upload_format.extensions,
                analysis_mib_per_second=None if speed is None else round(speed, 2),
                max_analysable_bytes=None if speed is None else int(speed * MiB * seconds),
                usd_per_gib_analysed=(
                    None if speed is None else usd_per_gib(speed, memory, architecture)
                ),
            )
        )
    return limits


def limits_document(settings: ApiSettings) -> dict[str, Any]:
    """``GET /v1/limits``: upload limits, formats, and the cost of analysis. The cost block's
    ``usd_per_gib_analysed`` is WAV's (PCM, the cheapest per GiB); each format gives its own."""
    formats = format_limits(settings)
    memory, architecture = settings.processor_memory_mb, settings.processor_architecture
    wav_speed = analysis_speed("wav", memory)
    return {
        "max_upload_bytes": settings.max_upload_bytes,
        "min_part_bytes": settings.part_min_bytes,
        "max_part_bytes": S3_MAX_PART_BYTES,
        "preferred_part_bytes": settings.preferred_part_bytes,
        "max_parts": S3_MAX_PARTS,
        "processor_timeout_seconds": settings.processor_timeout_seconds,
        "formats": [
            {
                "name": f.name,
                "label": f.label,
                "extensions": list(f.extensions),
                "analysis_mib_per_second": f.analysis_mib_per_second,
                "max_analysable_bytes": f.max_analysable_bytes,
                "usd_per_gib_analysed": f.usd_per_gib_analysed,
            }
            for f in formats
        ],
        "cost": {
            "usd_per_gib_analysed": (
                None if wav_speed is None else usd_per_gib(wav_speed, memory, architecture)
            ),
            "price_per_gb_second": PRICE_PER_GB_SECOND[architecture],
            "price_date": PRICE_DATE,
            "memory_mb": memory,
            "architecture": architecture,
            "speed_source": ANALYSIS_SPEED_SOURCE,
        },
    }
