"""The processing queue, as our functions write to it: the only module that sends to it
(S3 announces new objects itself).

The sweeper's re-drive is a new message in the shape S3 itself sends (an S3 event
notification as the SQS message body), so the processor handles it exactly like the
original announcement. A job with a checkpoint gets a continuation message instead,
naming the checkpoint, so it continues from there and is not taken for a stale message:
the processor sends the same when it hands an analysis on to its next invocation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from .aws import translated
from .continuation import continuation_message

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# Marks re-driven messages in the processor's logs (S3 puts its principal id here).
SWEEPER_PRINCIPAL = "audiolift-sweeper"


def object_created_event(
    *, bucket: str, key: str, etag: str, size: int, region: str, at: datetime
) -> dict[str, object]:
    """An S3 ObjectCreated notification for one object, as S3 would send it: the key
    URL-encoded, the ETag without quotes, a multipart ETag ("...-N") announced as
    CompleteMultipartUpload."""
    event_name = "CompleteMultipartUpload" if "-" in etag else "Put"
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "eventName": f"ObjectCreated:{event_name}",
                "userIdentity": {"principalId": SWEEPER_PRINCIPAL},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "audiolift-sweeper-redrive",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key), "size": size, "eTag": etag.strip('"')},
                },
            }
        ]
    }


class ProcessingQueue:
    """``announce_object`` (the sweeper's re-drive), ``continue_from`` (a hand-on, or a
    part of a fanned-out analysis) and ``merge_parts``."""

    def __init__(self, client: SQSClient, queue_url: str):
        self._client = client
        self.queue_url = queue_url

    def announce_object(
        self, *, bucket: str, key: str, etag: str, size: int, job_id: str = "", checkpoint: int = 0
    ) -> str:
        """Send one ObjectCreated notification for the object, or, for a job with a
        checkpoint, a continuation from it; returns the message id."""
        body: dict[str, object]
        if checkpoint > 0:
            body = continuation_message(
                job_id=job_id, bucket=bucket, key=key, etag=etag, checkpoint=checkpoint
            )
        else:
            body = object_created_event(
                bucket=bucket,
                key=key,
                etag=etag,
                size=size,
                region=self._client.meta.region_name or "us-east-1",
                at=datetime.now(UTC),
            )
        return self._send(body, "Queueing the job for processing")

    def continue_from(
        self,
        *,
        job_id: str,
        bucket: str,
        key: str,
        etag: str | None,
        checkpoint: int,
        part: int | None = None,
    ) -> str:
        """Hand an analysis (or one ``part`` of a fanned-out one) on to the next
        invocation, from ``checkpoint`` (a part: 0 starts it)."""
        body = continuation_message(
            job_id=job_id, bucket=bucket, key=key, etag=etag, checkpoint=checkpoint, part=part
        )
        return self._send(body, "Handing the analysis on")

    def merge_parts(self, *, job_id: str, bucket: str, key: str, etag: str | None) -> str:
        """Ask for the merge of a fanned-out analysis whose parts are all done."""
        body = continuation_message(
            job_id=job_id, bucket=bucket, key=key, etag=etag, checkpoint=0, merge=True
        )
        return self._send(body, "Asking for the merge of the analysis")

    def _send(self, body: dict[str, object], what: str) -> str:
        with translated(what):
            response = self._client.send_message(
                QueueUrl=self.queue_url, MessageBody=json.dumps(body)
            )
        return response["MessageId"]
