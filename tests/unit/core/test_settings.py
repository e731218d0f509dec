"""Settings from the environment: required names fail loudly, numbers are checked, API keys
are only ever configured as SHA-256 digests."""

from __future__ import annotations

import hashlib

import pytest
from audiolift_core.errors import ConfigurationError
from audiolift_core.settings import (
    S3_MAX_OBJECT_BYTES,
    ApiSettings,
    GiB,
    MiB,
    ProcessorSettings,
    StorageSettings,
    parse_api_key_hashes,
)

DIGEST = hashlib.sha256(b"key").hexdigest()
BASE = {"JOBS_TABLE": "jobs", "UPLOAD_BUCKET": "uploads", "API_KEY_HASHES": f"alice:{DIGEST}"}


def test_defaults() -> None:
    settings = ApiSettings.from_env(BASE)
    assert settings.storage == StorageSettings(jobs_table="jobs", upload_bucket="uploads")
    assert settings.auth_mode == "api_key"
    assert settings.api_key_hashes == {DIGEST: "alice"}
    assert settings.max_upload_bytes == 5 * GiB
    assert settings.part_min_bytes == 5 * MiB
    assert settings.presign_ttl_seconds == 900
    assert settings.job_ttl_days == 30
    assert settings.cors_allow_origins == ()


def test_everything_configured() -> None:
    settings = ApiSettings.from_env(
        {
            **BASE,
            "AUTH_MODE": "jwt",
            "MAX_UPLOAD_BYTES": str(S3_MAX_OBJECT_BYTES),
            "PART_MIN_BYTES": "1024",
            "PART_SIZE_BYTES": "2048",
            "PRESIGN_TTL_SECONDS": "60",
            "JOB_TTL_DAYS": "7",
            "CORS_ALLOW_ORIGINS": "http://localhost:5173, https://app.example ,",
        }
    )
    assert settings.auth_mode == "jwt"
    assert settings.max_upload_bytes == S3_MAX_OBJECT_BYTES
    assert (settings.part_min_bytes, settings.preferred_part_bytes) == (1024, 2048)
    assert (settings.presign_ttl_seconds, settings.job_ttl_days) == (60, 7)
    assert settings.cors_allow_origins == ("http://localhost:5173", "https://app.example")


def test_jwt_mode_needs_no_keys() -> None:
    settings = ApiSettings.from_env({**BASE, "AUTH_MODE": "jwt", "API_KEY_HASHES": ""})
    assert settings.api_key_hashes == {}


@pytest.mark.parametrize("missing", ["JOBS_TABLE", "UPLOAD_BUCKET"])
def test_required_names(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigurationError, match=missing):
        ApiSettings.from_env(env)
    with pytest.raises(ConfigurationError, match=missing):
        ApiSettings.from_env({**BASE, missing: "   "})
    with pytest.raises(ConfigurationError, match=missing):
        ProcessorSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_UPLOAD_BYTES", "5GB"),
        ("MAX_UPLOAD_BYTES", "0"),
        ("MAX_UPLOAD_BYTES", str(S3_MAX_OBJECT_BYTES + 1)),
        ("PRESIGN_TTL_SECONDS", str(7 * 24 * 3600 + 1)),  # SigV4's maximum is 7 days
        ("PRESIGN_TTL_SECONDS", "-1"),
        ("JOB_TTL_DAYS", "1.5"),
        ("AUTH_MODE", "none"),
    ],
)
def test_bad_values_fail_loudly(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        ApiSettings.from_env({**BASE, name: value})


def test_api_key_mode_without_keys_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="API_KEY_HASHES"):
        ApiSettings.from_env({**BASE, "API_KEY_HASHES": ""})


def test_api_key_hashes() -> None:
    other = hashlib.sha256(b"other").hexdigest()
    parsed = parse_api_key_hashes(f" alice:{DIGEST.upper()} , team:bob:{other},")
    assert parsed == {DIGEST: "alice", other: "team:bob"}


@pytest.mark.parametrize(
    "raw",
    [
        "alice:plaintext-key",  # a key instead of its digest
        f":{DIGEST}",
        DIGEST,
        "alice:" + "g" * 64,
        "alice:" + DIGEST[:-1],
    ],
)
def test_api_key_hashes_refuse_anything_but_digests(raw: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_api_key_hashes(raw)


def test_processor_settings() -> None:
    settings = ProcessorSettings.from_env(
        {**BASE, "MAX_RECEIVE_COUNT": "5", "READ_CHUNK_BYTES": str(MiB)}
    )
    assert settings.max_receive_count == 5
    assert settings.read_chunk_bytes == MiB
    assert settings.progress_interval_seconds == 2.0
    with pytest.raises(ConfigurationError):
        ProcessorSettings.from_env({**BASE, "READ_CHUNK_BYTES": "1"})


@pytest.mark.parametrize(
    ("raw", "path"), [("", "/"), ("/prod", "/prod"), (" /v2stage ", "/v2stage")]
)
def test_api_base_path(raw: str, path: str) -> None:
    assert ApiSettings.from_env({**BASE, "API_BASE_PATH": raw}).api_base_path == path


@pytest.mark.parametrize("raw", ["prod", "/a b", "/x?y"])
def test_api_base_path_must_be_a_path(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="API_BASE_PATH"):
        ApiSettings.from_env({**BASE, "API_BASE_PATH": raw})
