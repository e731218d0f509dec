"""The bridge: SeaweedFS filer metadata events in, S3 ``ObjectCreated`` notifications out.

SeaweedFS has no S3 bucket notifications. Its filer posts every metadata change to a
webhook (``[notification.webhook]`` in notification.toml) as
``{"key": "/buckets/<bucket>/<key>", "event_type": "create|update|delete|rename",
"message": <filer_pb.EventNotification as JSON>}`` (``new_entry.extended`` values are
base64, as Go encodes ``[]byte``). The bridge turns a finished object's create (or
content-changing update) under the bucket's notification prefix into the record S3 itself
would send, and puts it on the processing queue, so the processor sees what it sees on AWS.

Skipped: directories, the multipart staging area (``<bucket>/.uploads/<id>/<n>.part``),
other buckets and prefixes, deletes, renames, and updates that leave the content as it was
(metadata-only changes: S3 sends no ObjectCreated for those).

The ETag is the S3 gateway's own (extended attribute ``Seaweed-X-Amz-ETag``: the plain
MD5 for a PUT, md5-of-part-md5s ``-N`` for a multipart upload); without it, the bridge asks
the S3 API (HEAD) for it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from .net import LOOPBACK, Service, serve_in_thread, stop_server
from .seaweed import BUCKETS_DIR

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("audiolift_devstack.bridge")

ETAG_ATTRIBUTE = "Seaweed-X-Amz-ETag"
UPLOAD_ID_ATTRIBUTE = "X-Seaweedfs-Upload-Id"
MULTIPART_STAGING_DIR = ".uploads"
MAX_BODY_BYTES = 16 * 1024 * 1024

_sequence = itertools.count()


@dataclass(frozen=True)
class CreatedObject:
    """What the filer's event says about a finished object."""

    bucket: str
    key: str
    size: int
    etag: str | None  # without quotes; None when the filer's entry does not carry it
    multipart: bool


def _extended(entry: Mapping[str, Any], name: str) -> str | None:
    raw = (entry.get("extended") or {}).get(name)
    if not raw:
        return None
    try:
        return base64.b64decode(raw).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def _entry_size(entry: Mapping[str, Any]) -> int:
    attributes = entry.get("attributes") or {}
    size = attributes.get("file_size")
    if size is not None:
        return int(size)
    # Older entries: the sum of the chunks.
    return sum(int(chunk.get("size") or 0) for chunk in entry.get("chunks") or [])


def _content_signature(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies an entry's content. The chunks are compared by their size, write
    time and ETag: the filer spells a chunk's id two ways (``file_id`` or ``fid``) in
    otherwise equal entries. Rewriting the same bytes makes new chunks and a new mtime,
    which S3 too announces as a new object; tagging changes neither."""
    chunks = tuple(
        (chunk.get("offset", 0), chunk.get("size"), chunk.get("modified_ts_ns"), chunk.get("e_tag"))
        for chunk in entry.get("chunks") or []
    )
    return (
        _extended(entry, ETAG_ATTRIBUTE),
        _extended(entry, UPLOAD_ID_ATTRIBUTE),
        _entry_size(entry),
        (entry.get("attributes") or {}).get("mtime"),
        chunks,
    )


def created_object(
    payload: Mapping[str, Any], *, bucket: str, prefix: str, buckets_dir: str = BUCKETS_DIR
) -> CreatedObject | None:
    """The finished object a filer webhook event announces, or None when S3 would send no
    ObjectCreated event for it (see the module's docstring)."""
    event_type = payload.get("event_type")
    if event_type not in ("create", "update"):
        return None
    message = payload.get("message") or {}
    entry = message.get("new_entry")
    if not entry or entry.get("is_directory"):
        return None
    parent = message.get("new_parent_path") or str(payload.get("key", "")).rsplit("/", 1)[0]
    path = f"{parent.rstrip('/')}/{entry.get('name', '')}"
    bucket_root = f"{buckets_dir.rstrip('/')}/{bucket}/"
    if not path.startswith(bucket_root):
        return None
    key = path[len(bucket_root) :]
    if not key or key.split("/", 1)[0] == MULTIPART_STAGING_DIR or not key.startswith(prefix):
        return None
    etag = _extended(entry, ETAG_ATTRIBUTE)
    if event_type == "update":
        old = message.get("old_entry") or {}
        if old and _content_signature(entry) == _content_signature(old):
            return None  # tags, ACLs, metadata: S3 sends no ObjectCreated for those
    return CreatedObject(
        bucket=bucket,
        key=key,
        size=_entry_size(entry),
        etag=etag.strip('"') if etag else None,
        multipart=_extended(entry, UPLOAD_ID_ATTRIBUTE) is not None,
    )


def sequencer() -> str:
    """S3's sequencer: a hex string that grows with time for one key (compare as strings of
    equal length). Nanoseconds and a per-process counter."""
    return f"{time.time_ns():016X}{next(_sequence) % 0x10000:04X}"


def object_created_record(
    obj: CreatedObject,
    *,
    region: str,
    configuration_id: str = "queue-0",
    event_time: datetime | None = None,
    principal_id: str = "AWS:AUDIOLIFTLOCAL",
) -> dict[str, Any]:
    """One S3 event notification record, exactly as S3 shapes it (event version 2.1).
    The key is URL-encoded the way S3 does it: ``quote_plus``, slashes kept."""
    when = (event_time or datetime.now(UTC)).astimezone(UTC)
    request_id = f"{time.time_ns():016X}"
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "eventName": (
            "ObjectCreated:CompleteMultipartUpload" if obj.multipart else "ObjectCreated:Put"
        ),
        "userIdentity": {"principalId": principal_id},
        "requestParameters": {"sourceIPAddress": LOOPBACK},
        "responseElements": {
            "x-amz-request-id": request_id,
            "x-amz-id-2": base64.b64encode(request_id.encode()).decode(),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": obj.bucket,
                "ownerIdentity": {"principalId": principal_id.removeprefix("AWS:")},
                "arn": f"arn:aws:s3:::{obj.bucket}",
            },
            "object": {
                "key": quote_plus(obj.key, safe="/"),
                "size": obj.size,
                "eTag": obj.etag or "",
                "sequencer": sequencer(),
            },
        },
    }


class NotificationBridge(Service):
    """The webhook server. ``start()`` binds 127.0.0.1 (``port`` 0: any free one); give
    ``url`` to the filer. Events that arrive before ``connect()`` (the queue not created
    yet) get a 503, which the filer retries."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        region: str,
        port: int = 0,
        configuration_id: str = "queue-0",
        buckets_dir: str = BUCKETS_DIR,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.configuration_id = configuration_id
        self.buckets_dir = buckets_dir
        self._port = port
        self._sqs: SQSClient | None = None
        self._s3: S3Client | None = None
        self._queue_url: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent: list[dict[str, Any]] = []  # records sent, for logs and tests
        self.events_received = 0
        self.on_sent: Callable[[dict[str, Any]], None] | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}/events"

    @property
    def watched_path(self) -> str:
        """The filer path prefix worth sending to us (notification.toml's path_prefixes)."""
        return f"{self.buckets_dir.rstrip('/')}/{self.bucket}/{self.prefix}"

    def connect(self, sqs: SQSClient, queue_url: str, s3: S3Client | None = None) -> None:
        """Where to send records; ``s3`` (optional) answers HEAD when an entry lacks its
        ETag."""
        with self._lock:
            self._sqs, self._queue_url, self._s3 = sqs, queue_url, s3

    def start(self) -> NotificationBridge:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0 or length > MAX_BODY_BYTES:
                    self._reply(HTTPStatus.BAD_REQUEST)
                    return
                try:
                    payload = json.loads(self.rfile.read(length))
                except ValueError:
                    self._reply(HTTPStatus.BAD_REQUEST)
                    return
                self._reply(bridge.handle_event(payload))

            def _reply(self, status: HTTPStatus) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("webhook: " + format, *args)

        self._server = ThreadingHTTPServer((LOOPBACK, self._port), Handler)
        self._thread = serve_in_thread(self._server, "audiolift-bridge")
        return self

    def handle_event(self, payload: Any) -> HTTPStatus:
        """One filer event: OK when handled (sent, or nothing to send); 503 when it should
        be retried (queue not there yet, SQS failed)."""
        self.events_received += 1
        if not isinstance(payload, dict):
            return HTTPStatus.BAD_REQUEST
        obj = created_object(
            payload, bucket=self.bucket, prefix=self.prefix, buckets_dir=self.buckets_dir
        )
        if obj is None:
            return HTTPStatus.OK
        with self._lock:
            sqs, queue_url, s3 = self._sqs, self._queue_url, self._s3
        if sqs is None or queue_url is None:
            return HTTPStatus.SERVICE_UNAVAILABLE
        try:
            if obj.etag is None and s3 is not None:
                head = s3.head_object(Bucket=obj.bucket, Key=obj.key)
                obj = CreatedObject(
                    bucket=obj.bucket,
                    key=obj.key,
                    size=int(head["ContentLength"]),
                    etag=head["ETag"].strip('"'),
                    multipart=obj.multipart,
                )
            record = object_created_record(
                obj, region=self.region, configuration_id=self.configuration_id
            )
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"Records": [record]}))
        except Exception:
            log.exception("could not announce s3://%s/%s", obj.bucket, obj.key)
            return HTTPStatus.SERVICE_UNAVAILABLE
        log.info("announced s3://%s/%s (%s)", obj.bucket, obj.key, record["eventName"])
        with self._lock:
            self.sent.append(record)
        if self.on_sent is not None:
            self.on_sent(record)
        return HTTPStatus.OK

    def stop(self) -> None:
        stop_server(self._server, self._thread)
        self._server = None
        self._thread = None
