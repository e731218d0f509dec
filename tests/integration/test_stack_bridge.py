"""The bridge: SeaweedFS's filer events in, S3 ObjectCreated notifications on SQS out.

A SeaweedFS of its own (the stack's poller would consume the stack's queue) whose filer
posts every event, unfiltered, to a bridge in this process; the records go to a fresh
queue on the stack's moto. The bridge's own filtering (directories, the multipart staging
area, other prefixes) is what keeps the queue clean here."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from audiolift_devstack.bridge import (
    CreatedObject,
    NotificationBridge,
    created_object,
    object_created_record,
)
from audiolift_devstack.seaweed import SeaweedFS, WebhookTarget
from audiolift_testkit import StackProcess, s3_client_for

pytestmark = pytest.mark.integration

BUCKET = "bridge-test-uploads"
PART = 5 * 1024 * 1024  # SeaweedFS enforces S3's part minimum


@dataclass
class Bridged:
    s3: Any
    sqs: Any
    bridge: NotificationBridge
    seaweed: SeaweedFS

    def fresh_queue(self) -> str:
        url: str = self.sqs.create_queue(QueueName=f"bridge-test-{time.time_ns()}")["QueueUrl"]
        self.bridge.connect(self.sqs, url, self.s3)
        return url


@pytest.fixture(scope="module")
def bridged(
    local_stack: StackProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bridged]:
    bridge = NotificationBridge(bucket=BUCKET, prefix="uploads/", region=local_stack.info.region)
    bridge.start()
    # Every event type and path: the bridge must do all the filtering itself.
    webhook = WebhookTarget(bridge.url, event_types=("create", "update", "delete", "rename"))
    seaweed = SeaweedFS(state_dir=Path(tmp_path_factory.mktemp("bridge")), webhook=webhook)
    try:
        seaweed.start()
        s3 = s3_client_for(
            {
                "region": local_stack.info.region,
                "s3_endpoint": seaweed.s3_endpoint,
                "aws_access_key_id": seaweed.access_key,
                "aws_secret_access_key": seaweed.secret_key,
            }
        )
        s3.create_bucket(Bucket=BUCKET)
        yield Bridged(s3=s3, sqs=local_stack.clients.sqs, bridge=bridge, seaweed=seaweed)
    finally:
        seaweed.stop()
        bridge.stop()


def drain(sqs: Any, queue_url: str, *, expect: int, quiet_seconds: float = 2.0) -> list[Any]:
    """Every message the queue gets until ``expect`` arrived and then nothing more for
    ``quiet_seconds`` (so that "exactly one" means one)."""
    messages: list[Any] = []
    deadline = time.monotonic() + 30
    while len(messages) < expect and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages.extend(got.get("Messages", []))
    quiet_until = time.monotonic() + quiet_seconds
    while time.monotonic() < quiet_until:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages.extend(got.get("Messages", []))
    return messages


def only_record(messages: list[Any]) -> dict[str, Any]:
    assert len(messages) == 1, [m["Body"] for m in messages]
    body = json.loads(messages[0]["Body"])
    assert list(body) == ["Records"] and len(body["Records"]) == 1
    record: dict[str, Any] = body["Records"][0]
    return record


def assert_s3_record_shape(record: dict[str, Any], *, region: str) -> None:
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == region
    assert record["eventTime"].endswith("Z")
    assert record["s3"]["s3SchemaVersion"] == "1.0"
    assert record["s3"]["bucket"]["name"] == BUCKET
    assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{BUCKET}"
    sequencer = record["s3"]["object"]["sequencer"]
    assert sequencer and int(sequencer, 16) > 0


def test_a_completed_multipart_upload_is_announced_once(bridged: Bridged) -> None:
    queue_url = bridged.fresh_queue()
    key = f"uploads/job-{time.time_ns()}"
    upload_id = bridged.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    bodies = [b"\x01" * PART, b"\x02" * PART, b"\x03" * 1234]
    parts = []
    for number, body in enumerate(bodies, start=1):
        etag = bridged.s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    completed = bridged.s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )

    record = only_record(drain(bridged.sqs, queue_url, expect=1))
    assert_s3_record_shape(record, region=bridged.bridge.region)
    assert record["eventName"] == "ObjectCreated:CompleteMultipartUpload"
    obj = record["s3"]["object"]
    assert obj["key"] == key
    assert obj["size"] == sum(len(b) for b in bodies)
    # S3's multipart ETag: md5 of the parts' md5s, "-<parts>".
    md5s = b"".join(hashlib.md5(b).digest() for b in bodies)
    assert obj["eTag"] == f"{hashlib.md5(md5s).hexdigest()}-{len(bodies)}"
    assert obj["eTag"] == completed["ETag"].strip('"')


def test_a_put_is_announced_with_the_key_encoded_as_s3_does(bridged: Bridged) -> None:
    queue_url = bridged.fresh_queue()
    key = f"uploads/take one+two é {time.time_ns()}"
    body = b"RIFF" + b"\x00" * 996
    bridged.s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    record = only_record(drain(bridged.sqs, queue_url, expect=1))
    assert_s3_record_shape(record, region=bridged.bridge.region)
    assert record["eventName"] == "ObjectCreated:Put"
    obj = record["s3"]["object"]
    assert " " not in obj["key"] and "+" in obj["key"]  # spaces become "+", "+" is escaped
    assert unquote_plus(obj["key"]) == key
    assert obj["size"] == len(body)
    assert obj["eTag"] == hashlib.md5(body).hexdigest()

    # The processor reads it as the object it is.
    from audiolift_processor.events import refs_from_sqs_body

    (ref,) = refs_from_sqs_body(json.dumps({"Records": [record]}))
    assert (ref.bucket, ref.key, ref.etag, ref.size) == (BUCKET, key, obj["eTag"], len(body))


def test_an_overwrite_is_announced_and_a_metadata_change_is_not(bridged: Bridged) -> None:
    queue_url = bridged.fresh_queue()
    key = f"uploads/overwrite-{time.time_ns()}"
    bridged.s3.put_object(Bucket=BUCKET, Key=key, Body=b"first")
    first = only_record(drain(bridged.sqs, queue_url, expect=1, quiet_seconds=1))
    bridged.s3.put_object(Bucket=BUCKET, Key=key, Body=b"second version")
    second = only_record(drain(bridged.sqs, queue_url, expect=1, quiet_seconds=1))
    assert second["s3"]["object"]["eTag"] == hashlib.md5(b"second version").hexdigest()
    assert second["s3"]["object"]["sequencer"] > first["s3"]["object"]["sequencer"]

    bridged.s3.put_object_tagging(
        Bucket=BUCKET, Key=key, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    assert drain(bridged.sqs, queue_url, expect=0, quiet_seconds=2) == []


def test_nothing_is_announced_outside_the_prefix_or_for_aborted_uploads(
    bridged: Bridged,
) -> None:
    queue_url = bridged.fresh_queue()
    stamp = time.time_ns()
    bridged.s3.put_object(Bucket=BUCKET, Key=f"results/{stamp}.json", Body=b"{}")
    bridged.s3.put_object(Bucket=BUCKET, Key=f"elsewhere/uploads/{stamp}", Body=b"x")
    key = f"uploads/aborted-{stamp}"
    upload_id = bridged.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    bridged.s3.upload_part(
        Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"\x04" * PART
    )
    bridged.s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
    bridged.s3.delete_object(Bucket=BUCKET, Key=f"results/{stamp}.json")

    assert drain(bridged.sqs, queue_url, expect=0, quiet_seconds=3) == []
    assert bridged.bridge.events_received > 0  # the filer did post them: they were skipped


# --- the translation on its own (filer payloads as SeaweedFS 4.x posts them) ---------------


def _entry(name: str, *, directory: bool = False, **extended: str) -> dict[str, Any]:
    import base64

    return {
        "name": name,
        "is_directory": directory,
        "attributes": {"file_size": 10},
        "extended": {
            k.replace("_", "-"): base64.b64encode(v.encode()).decode() for k, v in extended.items()
        },
    }


@pytest.mark.parametrize(
    ("parent", "entry", "announced"),
    [
        (f"/buckets/{BUCKET}/uploads", _entry("job1", Seaweed_X_Amz_ETag="abc"), True),
        (f"/buckets/{BUCKET}/uploads", _entry("sub", directory=True), False),
        (f"/buckets/{BUCKET}/.uploads/u1", _entry("0001_x.part", Seaweed_X_Amz_ETag="a"), False),
        (f"/buckets/{BUCKET}/results", _entry("job1.json", Seaweed_X_Amz_ETag="a"), False),
        ("/buckets/other-bucket/uploads", _entry("job1", Seaweed_X_Amz_ETag="a"), False),
    ],
)
def test_which_filer_events_become_notifications(
    parent: str, entry: dict[str, Any], announced: bool
) -> None:
    payload = {
        "key": f"{parent}/{entry['name']}",
        "event_type": "create",
        "message": {"new_entry": entry, "new_parent_path": parent},
    }
    result = created_object(payload, bucket=BUCKET, prefix="uploads/")
    assert (result is not None) == announced


def test_a_delete_event_is_not_a_creation() -> None:
    payload = {
        "key": f"/buckets/{BUCKET}/uploads/job1",
        "event_type": "delete",
        "message": {"old_entry": _entry("job1", Seaweed_X_Amz_ETag="abc")},
    }
    assert created_object(payload, bucket=BUCKET, prefix="uploads/") is None


def test_the_record_is_what_s3_sends() -> None:
    record = object_created_record(
        CreatedObject(bucket=BUCKET, key="uploads/a b", size=5, etag="e-2", multipart=True),
        region="eu-west-1",
        configuration_id="cfg",
    )
    assert set(record) == {
        "eventVersion", "eventSource", "awsRegion", "eventTime", "eventName",
        "userIdentity", "requestParameters", "responseElements", "s3",
    }  # fmt: skip
    assert record["s3"]["configurationId"] == "cfg"
    assert record["s3"]["object"]["key"] == "uploads/a+b"
    assert record["eventName"] == "ObjectCreated:CompleteMultipartUpload"
