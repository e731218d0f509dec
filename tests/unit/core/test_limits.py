"""The limits table behind GET /v1/limits (pure): formats, the largest analysable file per
format within the processor's timeout, and the cost per GiB, from the measured speeds."""

from __future__ import annotations

import dataclasses

import pytest
from audiolift_core.limits import (
    ANALYSIS_MIB_PER_SECOND,
    PRICE_PER_GB_SECOND,
    limits_document,
)
from audiolift_core.settings import ApiSettings, GiB, MiB, StorageSettings
from audiolift_core.uploads import AUDIO_EXTENSIONS, UPLOAD_FORMATS

DEFAULTS = ApiSettings(
    storage=StorageSettings(jobs_table="jobs", upload_bucket="uploads"), auth_mode="jwt"
)


def test_every_accepted_format_and_extension_is_listed_once_with_a_speed() -> None:
    document = limits_document(DEFAULTS)
    names = [f["name"] for f in document["formats"]]
    assert names == [f.name for f in UPLOAD_FORMATS] and len(set(names)) == len(names)
    extensions = [e for f in document["formats"] for e in f["extensions"]]
    assert sorted(extensions) == sorted(AUDIO_EXTENSIONS)
    assert set(ANALYSIS_MIB_PER_SECOND) == set(names)
    assert all(f["analysis_mib_per_second"] > 0 for f in document["formats"])


def test_the_largest_analysable_file_follows_speed_and_timeout() -> None:
    by_name = {f["name"]: f for f in limits_document(DEFAULTS)["formats"]}
    # 128 MiB/s for 900 s less the 20 s the processor keeps to record a failure.
    assert by_name["wav"]["max_analysable_bytes"] == 128 * MiB * 880
    assert 4 * GiB < by_name["ogg"]["max_analysable_bytes"] < 5 * GiB
    short = dataclasses.replace(DEFAULTS, processor_timeout_seconds=120)
    assert {f["name"]: f for f in limits_document(short)["formats"]}["wav"][
        "max_analysable_bytes"
    ] == 128 * MiB * 100


def test_less_memory_is_less_cpu() -> None:
    half = dataclasses.replace(DEFAULTS, processor_memory_mb=1769 // 2)
    wav = {f["name"]: f for f in limits_document(half)["formats"]}["wav"]
    assert wav["analysis_mib_per_second"] == pytest.approx(64.0, rel=0.01)


@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
def test_cost_per_gib_from_memory_seconds_and_price(architecture: str) -> None:
    settings = dataclasses.replace(DEFAULTS, processor_architecture=architecture)
    document = limits_document(settings)
    price = PRICE_PER_GB_SECOND[architecture]
    # WAV: 1024 MiB / 128 MiB/s = 8 s at 1769 MB (1.7275 GB).
    assert document["cost"]["usd_per_gib_analysed"] == pytest.approx(1769 / 1024 * 8 * price)
    assert document["cost"] | {"usd_per_gib_analysed": None, "speed_source": None} == {
        "usd_per_gib_analysed": None,
        "price_per_gb_second": price,
        "price_date": "2026-11-30",
        "memory_mb": 1769,
        "architecture": architecture,
        "speed_source": None,
    }
    by_name = {f["name"]: f for f in document["formats"]}
    assert by_name["mp3"]["usd_per_gib_analysed"] > by_name["wav"]["usd_per_gib_analysed"]


def test_upload_limits_come_from_the_settings() -> None:
    settings = dataclasses.replace(DEFAULTS, max_upload_bytes=7 * GiB, preferred_part_bytes=8 * MiB)
    document = limits_document(settings)
    assert document["max_upload_bytes"] == 7 * GiB
    assert document["preferred_part_bytes"] == 8 * MiB
    assert (document["min_part_bytes"], document["max_part_bytes"]) == (5 * MiB, 5 * GiB)
    assert (document["max_parts"], document["processor_timeout_seconds"]) == (10_000, 900)


def test_processor_settings_are_read_from_the_environment() -> None:
    env = {
        "JOBS_TABLE": "t", "UPLOAD_BUCKET": "b", "AUTH_MODE": "jwt",
        "PROCESSOR_TIMEOUT_SECONDS": "300", "PROCESSOR_MEMORY_MB": "3008",
        "PROCESSOR_ARCHITECTURE": "arm64",
    }  # fmt: skip
    settings = ApiSettings.from_env(env)
    assert (settings.processor_timeout_seconds, settings.processor_memory_mb) == (300, 3008)
    assert settings.processor_architecture == "arm64"
