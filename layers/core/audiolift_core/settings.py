"""Typed settings, read from the environment in exactly one place.

A missing required setting fails loudly at start-up (``ConfigurationError``); there is no
silent default table or bucket name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigurationError

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB

S3_MIN_PART_BYTES = 5 * MiB
S3_MAX_PART_BYTES = 5 * GiB
S3_MAX_PARTS = 10_000
S3_MAX_OBJECT_BYTES = 5 * TiB

# The processor stops this long before Lambda's deadline, to record the failure instead
# of dying.
DEADLINE_MARGIN_SECONDS = 20.0


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"The environment variable {name} is required but not set.")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}.") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, not {value}.")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {raw!r}.") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, not {value}.")
    return value


@dataclass(frozen=True)
class StorageSettings:
    """What both functions need: where jobs and objects live."""

    jobs_table: str
    upload_bucket: str
    upload_prefix: str = "uploads/"
    result_prefix: str = "results/"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageSettings:
        env = os.environ if env is None else env
        return cls(
            jobs_table=_required(env, "JOBS_TABLE"),
            upload_bucket=_required(env, "UPLOAD_BUCKET"),
        )


@dataclass(frozen=True)
class ApiSettings:
    storage: StorageSettings
    auth_mode: str  # "jwt" (owner = the authorizer's sub claim) or "api_key"
    api_key_hashes: Mapping[str, str] = field(default_factory=dict)  # sha256 hex -> owner
    # The SSM path whose SecureString parameters (one per key) hold the API keys' hashes;
    # read through a cache of api_keys_max_age_seconds, so keys change without a redeploy.
    api_keys_parameter: str = ""
    api_keys_max_age_seconds: int = 60
    event_bus_name: str = ""  # EventBridge bus for job events ("" = none are published)
    max_upload_bytes: int = 5 * GiB
    part_min_bytes: int = S3_MIN_PART_BYTES
    preferred_part_bytes: int = 16 * MiB
    presign_ttl_seconds: int = 900
    job_ttl_days: int = 30
    first_batch_parts: int = 100
    max_parts_per_sign: int = 1000
    result_inline_max_bytes: int = 4 * MiB
    # Only where nothing in front of the app does CORS (the local stack). On AWS the HTTP
    # API answers CORS itself and ignores the integration's CORS headers.
    cors_allow_origins: tuple[str, ...] = ()
    # A named API Gateway stage puts "/<stage>" in front of every path; Mangum strips it.
    api_base_path: str = "/"
    # The processor's own settings, for what the API tells clients (GET /v1/limits): how
    # long an analysis may run and on what it runs (the price depends on both).
    processor_timeout_seconds: int = 900
    processor_deadline_margin_seconds: float = DEADLINE_MARGIN_SECONDS
    processor_memory_mb: int = 1769
    processor_architecture: str = "x86_64"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        auth_mode = env.get("AUTH_MODE", "api_key").strip() or "api_key"
        if auth_mode not in ("jwt", "api_key"):
            raise ConfigurationError(f"AUTH_MODE must be 'jwt' or 'api_key', not {auth_mode!r}.")
        hashes = parse_api_key_hashes(env.get("API_KEY_HASHES", ""))
        keys_parameter = env.get("API_KEYS_PARAMETER", "").strip()
        if auth_mode == "api_key" and not hashes and not keys_parameter:
            raise ConfigurationError(
                "AUTH_MODE is api_key but neither API_KEYS_PARAMETER nor API_KEY_HASHES is "
                "set: nobody could call the API."
            )
        return cls(
            storage=StorageSettings.from_env(env),
            auth_mode=auth_mode,
            api_key_hashes=hashes,
            api_keys_parameter=keys_parameter,
            # At most a minute: a revoked key must stop working within one.
            api_keys_max_age_seconds=_int(env, "API_KEYS_CACHE_SECONDS", 60, low=0, high=60),
            event_bus_name=env.get("EVENT_BUS_NAME", "").strip(),
            max_upload_bytes=_int(
                env, "MAX_UPLOAD_BYTES", 5 * GiB, low=1, high=S3_MAX_OBJECT_BYTES
            ),
            # Lowered in tests only; S3 itself refuses parts under 5 MiB (but the last).
            part_min_bytes=_int(
                env, "PART_MIN_BYTES", S3_MIN_PART_BYTES, low=1, high=S3_MAX_PART_BYTES
            ),
            preferred_part_bytes=_int(
                env, "PART_SIZE_BYTES", 16 * MiB, low=1, high=S3_MAX_PART_BYTES
            ),
            presign_ttl_seconds=_int(env, "PRESIGN_TTL_SECONDS", 900, low=1, high=7 * 24 * 3600),
            job_ttl_days=_int(env, "JOB_TTL_DAYS", 30, low=1, high=3650),
            cors_allow_origins=tuple(
                o.strip() for o in env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()
            ),
            api_base_path=_base_path(env.get("API_BASE_PATH", "")),
            processor_timeout_seconds=_int(env, "PROCESSOR_TIMEOUT_SECONDS", 900, low=1, high=900),
            processor_deadline_margin_seconds=_float(
                env, "DEADLINE_MARGIN_SECONDS", DEADLINE_MARGIN_SECONDS, low=0.0, high=600.0
            ),
            processor_memory_mb=_int(env, "PROCESSOR_MEMORY_MB", 1769, low=128, high=10_240),
            processor_architecture=_choice(
                env, "PROCESSOR_ARCHITECTURE", "x86_64", ("x86_64", "arm64")
            ),
        )


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def _base_path(raw: str) -> str:
    path = raw.strip() or "/"
    if not path.startswith("/") or any(c.isspace() or c in "?#" for c in path):
        raise ConfigurationError(f"API_BASE_PATH must be a path like /prod, not {raw!r}.")
    return path


def parse_api_key_hashes(raw: str) -> dict[str, str]:
    """``"owner:sha256hex,owner2:sha256hex"`` -> ``{sha256hex: owner}``."""
    hashes: dict[str, str] = {}
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        owner, sep, digest = entry.rpartition(":")
        digest = digest.strip().lower()
        if not sep or not owner.strip():
            raise ConfigurationError(
                "API_KEY_HASHES entries must look like owner:sha256hex (the key's SHA-256, "
                "never the key itself)."
            )
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigurationError(
                f"API_KEY_HASHES entry for {owner.strip()!r} is not a SHA-256 hex digest."
            )
        hashes[digest] = owner.strip()
    return hashes


@dataclass(frozen=True)
class ProcessorSettings:
    storage: StorageSettings
    max_receive_count: int = 3
    read_chunk_bytes: int = 8 * MiB
    read_ahead_chunks: int = 2
    cache_chunks: int = 2
    progress_interval_seconds: float = 2.0
    # Stop this long before Lambda's deadline, to record the failure instead of dying.
    deadline_margin_seconds: float = DEADLINE_MARGIN_SECONDS
    # The same variable as the API's limit: objects that reach the bucket another way
    # (or grew past a declared size) are refused before any decoding.
    max_object_bytes: int = 5 * GiB
    # The function's timeout (the template passes its own Timeout). The processing lease
    # lasts this long at most (plus a margin) and the queue's visibility timeout is a
    # multiple of it, so a message that comes back finds a crashed invocation's lease over.
    processor_timeout_seconds: int = 900
    event_bus_name: str = ""  # EventBridge bus for job events ("" = none are published)
    # Where an analysis that outlasts one invocation is handed on (a message carrying its
    # checkpoint); "" = none: such an analysis ends failed, code timeout.
    processing_queue_url: str = ""
    # A checkpoint this often, so a crashed invocation loses at most this much work.
    checkpoint_interval_seconds: float = 60.0
    # Uncompressed PCM files of at least this many bytes are analysed in parallel parts
    # (frame ranges of about fanout_range_bytes, at most fanout_max_ranges), each by its
    # own invocation, then merged; 0 = never. Needs processing_queue_url.
    fanout_min_bytes: int = 0
    fanout_range_bytes: int = 1 * GiB
    fanout_max_ranges: int = 64

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProcessorSettings:
        env = os.environ if env is None else env
        return cls(
            storage=StorageSettings.from_env(env),
            max_receive_count=_int(env, "MAX_RECEIVE_COUNT", 3, low=1, high=1000),
            read_chunk_bytes=_int(env, "READ_CHUNK_BYTES", 8 * MiB, low=64 * 1024, high=256 * MiB),
            read_ahead_chunks=_int(env, "READ_AHEAD_CHUNKS", 2, low=0, high=16),
            progress_interval_seconds=_float(
                env, "PROGRESS_INTERVAL_SECONDS", 2.0, low=0.0, high=600.0
            ),
            deadline_margin_seconds=_float(
                env, "DEADLINE_MARGIN_SECONDS", DEADLINE_MARGIN_SECONDS, low=0.0, high=600.0
            ),
            max_object_bytes=_int(
                env, "MAX_UPLOAD_BYTES", 5 * GiB, low=1, high=S3_MAX_OBJECT_BYTES
            ),
            processor_timeout_seconds=_int(env, "PROCESSOR_TIMEOUT_SECONDS", 900, low=1, high=900),
            event_bus_name=env.get("EVENT_BUS_NAME", "").strip(),
            processing_queue_url=env.get("PROCESSING_QUEUE_URL", "").strip(),
            checkpoint_interval_seconds=_float(
                env, "CHECKPOINT_INTERVAL_SECONDS", 60.0, low=0.0, high=900.0
            ),
            fanout_min_bytes=_int(env, "FANOUT_MIN_BYTES", 0, low=0, high=S3_MAX_OBJECT_BYTES),
            fanout_range_bytes=_int(
                env, "FANOUT_RANGE_BYTES", 1 * GiB, low=1 * MiB, high=S3_MAX_OBJECT_BYTES
            ),
            fanout_max_ranges=_int(env, "FANOUT_MAX_RANGES", 64, low=2, high=1000),
        )


@dataclass(frozen=True)
class SweeperSettings:
    """The sweeper: when a job counts as stuck, and how much one run may do."""

    storage: StorageSettings
    processing_queue_url: str
    # A message is retried every visibility timeout and dead-lettered after
    # max_receive_count deliveries: an `uploaded` job quiet for longer than both has no
    # message left that could move it.
    visibility_timeout_seconds: int = 5400
    max_receive_count: int = 3
    # The bucket aborts incomplete multipart uploads after a day (lifecycle rule).
    upload_ttl_seconds: int = 86_400
    # A job re-driven this often and still stuck is ended (code stalled).
    max_redrives: int = 2
    max_jobs_per_run: int = 200
    # Stop starting work this long before the invocation's deadline.
    safety_margin_seconds: float = 10.0
    # A live processing job updates its record every few seconds (progress, heartbeats);
    # one quiet for this long is worth a look (its lease decides whether it is stuck).
    processing_quiet_seconds: int = 60

    @property
    def redrive_wait_seconds(self) -> int:
        """How long a re-driven message may take before the job counts as stuck again."""
        return self.visibility_timeout_seconds * self.max_receive_count

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SweeperSettings:
        env = os.environ if env is None else env
        return cls(
            storage=StorageSettings.from_env(env),
            processing_queue_url=_required(env, "PROCESSING_QUEUE_URL"),
            visibility_timeout_seconds=_int(
                env, "VISIBILITY_TIMEOUT_SECONDS", 5400, low=1, high=43_200
            ),
            max_receive_count=_int(env, "MAX_RECEIVE_COUNT", 3, low=1, high=1000),
            upload_ttl_seconds=_int(env, "UPLOAD_TTL_SECONDS", 86_400, low=60, high=30 * 86_400),
            max_redrives=_int(env, "SWEEP_MAX_REDRIVES", 2, low=0, high=100),
            max_jobs_per_run=_int(env, "SWEEP_MAX_JOBS", 200, low=1, high=10_000),
            safety_margin_seconds=_float(
                env, "SWEEP_SAFETY_MARGIN_SECONDS", 10.0, low=0.0, high=600.0
            ),
            processing_quiet_seconds=_int(
                env, "SWEEP_PROCESSING_QUIET_SECONDS", 60, low=1, high=86_400
            ),
        )
