"""API keys kept in SSM Parameter Store, so that adding or revoking one needs no redeploy.

One SecureString parameter per key under a path (``API_KEYS_PARAMETER``, e.g.
``/audiolift/dev/api-keys``), named by the key's public id, holding
``{"sha256", "owner", "created_at"}``. Never the key itself: a key is shown once, when it is
made, and only its SHA-256 digest is stored.

One parameter per key rather than one parameter holding them all: adding a key is a single
``PutParameter`` that cannot overwrite another (no read-modify-write race between two
operators), revoking is a single ``DeleteParameter``, and there is no ceiling on the number
of keys (one JSON document would hit the 4 KB standard / 8 KB advanced value limit at a few
dozen keys). The API reads the whole path with ``GetParametersByPath`` (pages of 10,
followed by Powertools' paginator) through Powertools' cached SSMProvider: a bounded number
of SSM calls per container per ``max_age``, however many requests arrive or which keys
they carry, so unknown keys cannot drive SSM traffic.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .aws import translate, translated
from .errors import ConfigurationError, InvalidRequest, NotFound

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider
    from mypy_boto3_ssm import SSMClient

KEY_PREFIX = "al_"
DEFAULT_MAX_AGE_SECONDS = 60
MAX_OWNER_LENGTH = 128
_KEY_ID = re.compile(r"^[a-z0-9]{12}$")
_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """A new (key id, key). The id is public (lists, revocation); the key is secret and
    carries its id so an operator can tell which key a caller holds."""
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def check_path(path: str) -> str:
    if not _PATH.fullmatch(path) or len(path) > 900:
        raise ConfigurationError(
            f"The API keys' SSM path must look like /name/of/path (letters, digits, _ . -), "
            f"not {path!r}."
        )
    return path


def check_owner(owner: str) -> str:
    owner = owner.strip()
    if not owner or len(owner) > MAX_OWNER_LENGTH or not owner.isprintable():
        raise InvalidRequest(
            f"An owner is 1-{MAX_OWNER_LENGTH} printable characters (it becomes the owner of "
            "every job made with the key)."
        )
    return owner


@dataclass(frozen=True)
class ApiKeyRecord:
    """What is stored about one key (everything but the key)."""

    key_id: str
    owner: str
    sha256: str
    created_at: str

    def to_json(self) -> str:
        return json.dumps(
            {"sha256": self.sha256, "owner": self.owner, "created_at": self.created_at},
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, key_id: str, raw: str) -> ApiKeyRecord:
        """Raises ValueError for a value that is not a key record."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        digest, owner = str(data.get("sha256", "")), str(data.get("owner", "")).strip()
        if not _DIGEST.fullmatch(digest) or not owner:
            raise ValueError("no sha256 digest or no owner")
        return cls(key_id, owner, digest, str(data.get("created_at", "")))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ApiKeyStore:
    """The one adapter of the API keys' SSM path: cached lookups for the API, and the
    add / revoke / list of ``scripts/api_keys.py``."""

    def __init__(
        self,
        ssm: SSMClient,
        path: str,
        *,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
        provider: SSMProvider | None = None,
    ):
        self.ssm = ssm
        self.path = check_path(path)
        self.max_age_seconds = max_age_seconds
        if provider is None:
            from aws_lambda_powertools.utilities.parameters import SSMProvider

            provider = SSMProvider(boto3_client=ssm)
        self._provider = provider
        self._raw: Mapping[str, Any] | None = None
        self._by_digest: dict[str, str] = {}

    # --- the API's lookup (cached) ----------------------------------------------------

    def owner_of(self, key: str) -> str | None:
        """The owner of ``key``, or None for a key that is not (or no longer) stored."""
        return self.digests().get(hash_api_key(key))

    def digests(self) -> dict[str, str]:
        """sha256 hex -> owner, at most ``max_age_seconds`` old."""
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            raw = self._provider.get_multiple(
                self.path, max_age=self.max_age_seconds, decrypt=True, recursive=False
            )
        except GetParameterError as error:
            # Powertools wraps every failure; the botocore error is the one it was raised from.
            cause = error.__cause__ or error.__context__ or error
            raise translate(cause, "Reading the API keys") from None
        if raw is not self._raw:  # a fresh fetch: parse it once, not on every request
            self._by_digest = {r.sha256: r.owner for r in _records(raw)}
            self._raw = raw
        return self._by_digest

    # --- administration (uncached) ----------------------------------------------------

    def add(self, owner: str) -> tuple[ApiKeyRecord, str]:
        """Store a new key's hash; returns the record and the key (shown once, never kept)."""
        owner = check_owner(owner)
        key_id, key = new_api_key()
        record = ApiKeyRecord(key_id, owner, hash_api_key(key), _now())
        self.put(record)
        return record, key

    def put(self, record: ApiKeyRecord) -> None:
        """Store one record under a new name (an existing key is never overwritten)."""
        if not _KEY_ID.fullmatch(record.key_id):
            raise InvalidRequest("A key id is 12 lower-case letters or digits.")
        exists = InvalidRequest(f"A key with the id {record.key_id} exists already.")
        with translated("Storing the API key", codes={"ParameterAlreadyExists": exists}):
            self.ssm.put_parameter(
                Name=f"{self.path}/{record.key_id}",
                Description=f"audiolift API key of {record.owner}"[:1024],
                Value=record.to_json(),
                Type="SecureString",
                Overwrite=False,
                Tier="Standard",
            )

    def revoke(self, key_id: str) -> None:
        if not _KEY_ID.fullmatch(key_id):
            raise NotFound(f"No API key has the id {key_id!r}.")
        unknown = NotFound(f"No API key has the id {key_id!r}.")
        with translated("Revoking the API key", codes={"ParameterNotFound": unknown}):
            self.ssm.delete_parameter(Name=f"{self.path}/{key_id}")

    def records(self) -> list[ApiKeyRecord]:
        """Every stored key, oldest first (read now, not from the cache)."""
        values: dict[str, str] = {}
        with translated("Listing the API keys"):
            pages = self.ssm.get_paginator("get_parameters_by_path").paginate(
                Path=self.path, Recursive=False, WithDecryption=True
            )
            for page in pages:
                for parameter in page.get("Parameters", []):
                    name = parameter["Name"].rsplit("/", 1)[-1]
                    values[name] = parameter["Value"]
        return sorted(_records(values), key=lambda r: (r.created_at, r.key_id))


def _records(raw: Mapping[str, Any]) -> list[ApiKeyRecord]:
    from .observability import logger

    records = []
    for key_id, value in raw.items():
        try:
            records.append(ApiKeyRecord.parse(key_id, str(value)))
        except ValueError:
            # One bad parameter must not lock every caller out; it authorises nobody.
            logger("audiolift-api").warning("unreadable API key record", extra={"key_id": key_id})
    return records
