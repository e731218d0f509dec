"""The local twin of Lambda's SQS event source mapping.

Long-polls the queue, hands each batch to the processor's Lambda handler as Lambda does
(an SQS event with Lambda's record shape, and a context that knows the function's
timeout), then deletes what succeeded:

- the handler returns ``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}``
  (ReportBatchItemFailures): every other message is deleted; the failed ones stay;
- the handler raises, or reports an identifier that is not in the batch (Lambda treats
  that as a failed batch): nothing is deleted;
- without ReportBatchItemFailures, a return deletes the whole batch.

What is not deleted becomes visible again after the queue's visibility timeout, and SQS
itself (moto implements the redrive on receive, as SQS does: a message received
``maxReceiveCount`` times moves to the dead-letter queue on the next receive) moves it to
the DLQ. The poller does not count receives itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .lambda_context import DEFAULT_MEMORY_MB, LocalLambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("audiolift_devstack.poller")

Handler = Callable[[dict[str, Any], Any], Any]


def load_processor_handler() -> Handler:
    """The processor's Lambda handler, imported on first use (it reads its settings from
    the environment, which the stack sets first)."""
    from audiolift_processor.handler import handler

    return handler


def _message_attributes(message: MessageTypeDef) -> dict[str, Any]:
    """SQS API's MessageAttributes -> Lambda's messageAttributes (camel case, base64
    binary, the list fields always present)."""
    import base64

    converted: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        item: dict[str, Any] = {
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [
                base64.b64encode(v).decode() for v in value.get("BinaryListValues") or []
            ],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            item["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = item
    return converted


_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
    "AWSTraceHeader",
)


def lambda_sqs_record(message: MessageTypeDef, *, queue_arn: str, region: str) -> dict[str, Any]:
    """One received SQS message as Lambda's SQS event record."""
    received = message.get("Attributes") or {}
    attributes = {name: received[name] for name in _ATTRIBUTES if name in received}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": _message_attributes(message),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one batch: the messages deleted, and those left for a retry."""

    received: int
    deleted: tuple[str, ...]
    retried: tuple[str, ...]
    error: str | None = None


def failed_message_ids(response: Any, batch_ids: set[str]) -> set[str] | None:
    """The message ids a handler's response reports as failed; None when Lambda would
    treat the whole batch as failed (malformed response, unknown or empty identifier)."""
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return set()  # Lambda ignores other return values: success
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not identifier or identifier not in batch_ids:
            return None
        failed.add(str(identifier))
    return failed


class SqsPoller:
    """Feeds ``handler`` from ``queue_url`` on a background thread (``start``/``stop``), or
    one batch at a time (``poll_once``)."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        *,
        queue_arn: str | None = None,
        handler: Handler | None = None,
        function_name: str = "audiolift-processor",
        timeout_seconds: float = 900.0,
        memory_limit_in_mb: int = DEFAULT_MEMORY_MB,
        batch_size: int = 1,
        report_batch_item_failures: bool = True,
        wait_seconds: int = 2,
        region: str = "us-east-1",
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn or self._queue_arn()
        self._handler = handler
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.memory_limit_in_mb = memory_limit_in_mb
        self.batch_size = max(1, min(10, batch_size))
        self.report_batch_item_failures = report_batch_item_failures
        self.wait_seconds = max(0, min(20, wait_seconds))
        self.region = region
        self.outcomes: list[BatchOutcome] = []
        self.invocations = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _queue_arn(self) -> str:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )
        return attributes["Attributes"]["QueueArn"]

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            self._handler = load_processor_handler()
        return self._handler

    def poll_once(self, *, wait_seconds: int | None = None) -> BatchOutcome | None:
        """Receive one batch (long poll) and invoke the handler with it; None when the
        queue had nothing."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return None
        return self._invoke(messages)

    def _invoke(self, messages: list[MessageTypeDef]) -> BatchOutcome:
        event = {
            "Records": [
                lambda_sqs_record(m, queue_arn=self.queue_arn, region=self.region) for m in messages
            ]
        }
        context = LocalLambdaContext(
            self.function_name,
            timeout_seconds=self.timeout_seconds,
            memory_limit_in_mb=self.memory_limit_in_mb,
            region=self.region,
        )
        ids = {m["MessageId"] for m in messages}
        self.invocations += 1
        error: str | None = None
        failed: set[str] | None
        try:
            result = self.handler(event, context)
        except Exception as exc:  # the invocation failed: Lambda retries the whole batch
            log.exception("handler raised; the batch will be retried")
            failed, error = None, f"{type(exc).__name__}: {exc}"
        else:
            failed = failed_message_ids(result, ids) if self.report_batch_item_failures else set()
            if failed is None:
                error = "malformed batchItemFailures: the whole batch is retried"
                log.error(error)
        if failed is None:
            failed = set(ids)
        to_delete = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(to_delete), 10):
            chunk = to_delete[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        outcome = BatchOutcome(
            received=len(messages),
            deleted=tuple(m["MessageId"] for m in to_delete),
            retried=tuple(sorted(failed)),
            error=error,
        )
        self.outcomes.append(outcome)
        return outcome

    # --- the background loop -----------------------------------------------------------------

    def start(self) -> SqsPoller:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="audiolift-poller", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self.poll_once()
                failures = 0
            except Exception:
                if self._stopping.is_set():
                    break
                failures += 1
                log.exception("polling the queue failed")
                self._stopping.wait(min(5.0, 0.2 * 2**failures))

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current receive (at most ``wait_seconds``) and handler call."""
        self._stopping.set()
        if self._thread is not None:
            limit = timeout if timeout is not None else self.wait_seconds + 5.0
            self._thread.join(timeout=limit)
            if self._thread.is_alive():
                log.warning("the poller is still busy in a handler; leaving it (daemon thread)")
            self._thread = None

    def __enter__(self) -> SqsPoller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
