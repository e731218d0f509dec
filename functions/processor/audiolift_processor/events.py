"""Turn the events that announce an uploaded object into ``ObjectRef``s.

Three shapes arrive: S3 notifications wrapped in SQS message bodies (the deployed path),
direct S3 notifications, and EventBridge "Object Created" events. They all end in the
same per-object function. A fourth, only in SQS bodies, continues an analysis
(``audiolift_core.continuation``): the same object, and the checkpoint it continues from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from audiolift_core.continuation import CONTINUATION_KIND


class MalformedEvent(ValueError):
    """The message is not an event we understand; retrying will not change it."""


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    etag: str | None
    size: int | None
    event_name: str
    # The checkpoint a hand-on message continues from (0: an announcement of the object).
    checkpoint: int = 0
    # A fanned-out analysis: the part this message runs (its "range"), or its merge.
    part: int | None = None
    merge: bool = False


def ref_from_continuation(payload: Mapping[str, Any]) -> ObjectRef:
    try:
        bucket, key, checkpoint = payload["bucket"], payload["key"], payload["checkpoint"]
    except KeyError as missing:
        raise MalformedEvent(f"The hand-on message lacks {missing}.") from None
    part = payload.get("range")
    merge = payload.get("merge") is True
    fanned_out = part is not None or merge
    if not _whole_number(checkpoint) or checkpoint < (0 if fanned_out else 1):
        raise MalformedEvent("The hand-on message's checkpoint is not a positive number.")
    if part is not None and (not _whole_number(part) or part < 0 or merge):
        raise MalformedEvent("The hand-on message's range is not a part number.")
    return ObjectRef(
        bucket=str(bucket),
        key=str(key),
        etag=_clean_etag(payload.get("etag")),
        size=None,
        event_name="Merge" if merge else "Continue",
        checkpoint=checkpoint,
        part=part,
        merge=merge,
    )


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _clean_etag(value: Any) -> str | None:
    return str(value).strip('"') if value else None


def refs_from_s3_event(event: Mapping[str, Any]) -> list[ObjectRef]:
    """S3 notification -> refs. ``s3:TestEvent`` (sent when notifications are configured)
    yields nothing. Keys arrive URL-encoded (``+`` for space, ``%2F`` for ``/``)."""
    if event.get("Event") == "s3:TestEvent":
        return []
    records = event.get("Records")
    if not isinstance(records, list):
        raise MalformedEvent("The S3 event has no Records list.")
    refs = []
    for record in records:
        if not isinstance(record, Mapping):
            raise MalformedEvent("An S3 event record is not an object.")
        name = str(record.get("eventName", ""))
        if not name.startswith("ObjectCreated:"):
            continue
        try:
            bucket = record["s3"]["bucket"]["name"]
            obj = record["s3"]["object"]
            key = unquote_plus(obj["key"])
        except (KeyError, TypeError) as missing:
            raise MalformedEvent(f"An S3 event record lacks {missing}.") from None
        size = obj.get("size")
        refs.append(
            ObjectRef(
                bucket=str(bucket),
                key=key,
                etag=_clean_etag(obj.get("eTag") or obj.get("etag")),
                size=int(size) if size is not None else None,
                event_name=name,
            )
        )
    return refs


def refs_from_eventbridge(event: Mapping[str, Any]) -> list[ObjectRef]:
    detail = event.get("detail") or {}
    try:
        bucket = detail["bucket"]["name"]
        obj = detail["object"]
    except (KeyError, TypeError) as missing:
        raise MalformedEvent(f"The EventBridge event lacks {missing}.") from None
    size = obj.get("size")
    return [
        ObjectRef(
            bucket=str(bucket),
            # EventBridge keys are not URL-encoded the way notification keys are.
            key=str(obj["key"]),
            etag=_clean_etag(obj.get("etag")),
            size=int(size) if size is not None else None,
            event_name="ObjectCreated:" + str(detail.get("reason", "EventBridge")),
        )
    ]


def refs_from_sqs_body(body: str) -> list[ObjectRef]:
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        raise MalformedEvent("The SQS message body is not JSON.") from None
    if not isinstance(payload, Mapping):
        raise MalformedEvent("The SQS message body is not a JSON object.")
    if payload.get("kind") == CONTINUATION_KIND:
        return [ref_from_continuation(payload)]
    if is_eventbridge(payload):
        return refs_from_eventbridge(payload)
    return refs_from_s3_event(payload)


def is_sqs(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], Mapping)
        and records[0].get("eventSource") == "aws:sqs"
    )


def is_eventbridge(event: Mapping[str, Any]) -> bool:
    return event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created"
