"""The local stack's API keys (SSM Parameter Store) and job-events bus (EventBridge), both
served by moto, set up the way template.yaml sets them up on AWS: the API reads its keys
from an SSM path through the same cached adapter, the functions publish on a bus made
from the template's ``JobEventsBus``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .template_resources import TEMPLATE_PATH, load_template

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_ssm import SSMClient

EVENT_BUS_ID = "JobEventsBus"
# The deployed API caches the keys for 60 s; locally a key added with
# scripts/api_keys.py --stack-file works (and a revoked one stops) within two seconds.
LOCAL_API_KEYS_CACHE_SECONDS = 2


@dataclass(frozen=True)
class KeysAndEvents:
    api_keys_parameter: str  # the SSM path of the keys (API_KEYS_PARAMETER)
    api_key_id: str  # the dev key's id in that path
    event_bus_name: str  # EVENT_BUS_NAME
    event_bus_arn: str
    api_keys_cache_seconds: int = LOCAL_API_KEYS_CACHE_SECONDS

    def environment(self) -> dict[str, str]:
        return {
            "API_KEYS_PARAMETER": self.api_keys_parameter,
            "API_KEYS_CACHE_SECONDS": str(self.api_keys_cache_seconds),
            "EVENT_BUS_NAME": self.event_bus_name,
        }


def keys_path(name_prefix: str) -> str:
    return f"/{name_prefix}/api-keys"


def create_job_events_bus(
    events: EventBridgeClient, bus_name: str, *, template_path: Path | str = TEMPLATE_PATH
) -> str:
    """The template's bus, under a local name. Returns its ARN."""
    resource: dict[str, Any] = load_template(template_path)["Resources"][EVENT_BUS_ID]
    if resource.get("Type") != "AWS::Events::EventBus":
        raise ValueError(f"{EVENT_BUS_ID} in the template is not an event bus.")
    return str(events.create_event_bus(Name=bus_name)["EventBusArn"])


def store_api_key(ssm: SSMClient, path: str, *, owner: str, key: str) -> str:
    """Store a given key's hash (the stack's dev key, chosen before the stack starts) as
    scripts/api_keys.py would. Returns the key's id."""
    from audiolift_core.api_keys import ApiKeyRecord, ApiKeyStore

    digest = hashlib.sha256(key.encode()).hexdigest()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    record = ApiKeyRecord(key_id=digest[:12], owner=owner, sha256=digest, created_at=created)
    ApiKeyStore(ssm, path).put(record)
    return record.key_id


def set_up_keys_and_events(
    ssm: SSMClient,
    events: EventBridgeClient,
    *,
    name_prefix: str,
    owner: str,
    api_key: str,
    template_path: Path | str = TEMPLATE_PATH,
) -> KeysAndEvents:
    path = keys_path(name_prefix)
    bus_name = f"{name_prefix}-jobs"
    return KeysAndEvents(
        api_keys_parameter=path,
        api_key_id=store_api_key(ssm, path, owner=owner, key=api_key),
        event_bus_name=bus_name,
        event_bus_arn=create_job_events_bus(events, bus_name, template_path=template_path),
    )
