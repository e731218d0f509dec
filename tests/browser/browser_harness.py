"""What the browser tests get from their fixtures (a module of its own so that test
modules can import it; conftest modules are not for importing)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BrowserStack:
    name: str  # which back end: "moto" or "seaweedfs"
    api_url: str
    s3_endpoint: str
    api_key: str
    bucket: str
    table: str
    s3: Any
    dynamodb: Any


class LambdaContext:
    """What the processor and Powertools read from Lambda's context."""

    function_name = "ProcessorFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ProcessorFunction"
    aws_request_id = "browser-test"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


class QueuePoller:
    """The event source mapping's stand-in for these tests: long-polls the processing
    queue (fed by moto's own S3 notifications) and hands Lambda-shaped SQS batches to the
    processor's handler, deleting the messages it did not report as failed."""

    def __init__(self, sqs: Any, queue_url: str, queue_arn: str, processor: Any):
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._processor = processor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-poller", daemon=True)
        self.errors: list[BaseException] = []

    def __enter__(self) -> QueuePoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        from audiolift_processor.handler import handle_event

        while not self._stop.is_set():
            try:
                response = self._sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                )
                messages = response.get("Messages", [])
                if not messages:
                    continue
                event = {"Records": [self._record(m) for m in messages]}
                result = handle_event(event, LambdaContext(), self._processor)
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
                for message in messages:
                    if message["MessageId"] not in failed:
                        self._sqs.delete_message(
                            QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
                        )
            except Exception as error:  # recorded for the test to report; keep polling
                self.errors.append(error)
                time.sleep(0.5)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = message.get("Attributes", {})
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", "0"),
                "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
                "ApproximateFirstReceiveTimestamp": attributes.get(
                    "ApproximateFirstReceiveTimestamp", "0"
                ),
            },
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": "us-east-1",
        }
