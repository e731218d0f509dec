"""The processing queue, as the sweeper writes to it: the only module that sends to it.

A re-drive is a new message in the shape S3 itself sends (an S3 event notification as the
SQS message body), so the processor handles it exactly like the original announcement; a
job with a checkpoint gets the processor's own continuation message instead, naming the
checkpoint, so it continues from there and is not taken for a stale message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from audiolift_core.aws import translate
from audiolift_core.continuation import continuation_message
from botocore.exceptions import BotoCoreError, ClientError

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
        try:
            response = self._client.send_message(
                QueueUrl=self.queue_url, MessageBody=json.dumps(body)
            )
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "Queueing the job for processing") from error
        return response["MessageId"]
