"""The poller, the local twin of Lambda's SQS event source mapping, against the stack's moto
SQS: Lambda-shaped events and context, deletes on success, batchItemFailures and raised
errors left to come back after the visibility timeout, and SQS's redrive moving a message
that keeps failing to the DLQ after maxReceiveCount receives.

Queues made here from template.yaml (same redrive) with a 1 s visibility timeout; the
handlers are injected (the job-level test with the real processor is separate)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from audiolift_devstack.poller import SqsPoller
from audiolift_devstack.template_resources import CreatedQueues, create_queues, queue_settings
from audiolift_testkit import StackProcess
from aws_lambda_powertools.utilities.typing import LambdaContext

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that records its calls and answers with ``respond(event)``."""

    def __init__(self, respond: Callable[[dict[str, Any]], Any]) -> None:
        self.respond = respond
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.remaining_ms: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self.lock:
            self.events.append(event)
            self.contexts.append(context)
            self.remaining_ms.append(context.get_remaining_time_in_millis())
        return self.respond(event)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for e in self.events for r in e["Records"]]


def fail_all(event: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}


def raise_error(event: dict[str, Any]) -> None:
    raise RuntimeError("the processor fell over")


@pytest.fixture
def queues(local_stack: StackProcess) -> CreatedQueues:
    stamp = time.time_ns()
    return create_queues(
        local_stack.clients.sqs, f"poller-{stamp}", f"poller-{stamp}-dlq", visibility_timeout=1
    )


@pytest.fixture
def make_poller(
    local_stack: StackProcess, queues: CreatedQueues
) -> Iterator[Callable[..., SqsPoller]]:
    pollers: list[SqsPoller] = []

    def make(handler: Any, **options: Any) -> SqsPoller:
        options.setdefault("batch_size", queues.settings.batch_size)
        options.setdefault("timeout_seconds", 30)
        poller = SqsPoller(
            local_stack.clients.sqs,
            queues.queue_url,
            queue_arn=queues.queue_arn,
            handler=handler,
            wait_seconds=1,
            region=local_stack.info.region,
            **options,
        )
        pollers.append(poller)
        return poller

    yield make
    for poller in pollers:
        poller.stop()


def queue_counts(local_stack: StackProcess, url: str) -> tuple[int, int]:
    attributes = local_stack.clients.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def dlq_messages(local_stack: StackProcess, queues: CreatedQueues, *, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = local_stack.clients.sqs.receive_message(
            QueueUrl=queues.dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
        )
        if got.get("Messages"):
            return list(got["Messages"])
    return []


def test_the_template_redrive_is_what_the_queue_has(
    local_stack: StackProcess, queues: CreatedQueues
) -> None:
    attributes = local_stack.clients.sqs.get_queue_attributes(
        QueueUrl=queues.queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == queues.dlq_arn
    assert int(policy["maxReceiveCount"]) == queue_settings().max_receive_count >= 2


def test_a_success_is_deleted_and_the_event_is_lambda_shaped(
    local_stack: StackProcess, queues: CreatedQueues, make_poller: Callable[..., SqsPoller]
) -> None:
    body = json.dumps({"Records": [{"eventSource": "aws:s3"}]})
    sent = local_stack.clients.sqs.send_message(
        QueueUrl=queues.queue_url,
        MessageBody=body,
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
    )
    handler = Recorder(lambda event: {"batchItemFailures": []})
    poller = make_poller(handler, function_name="audiolift-test-processor", timeout_seconds=900)
    outcome = poller.poll_once(wait_seconds=5)
    assert outcome is not None and outcome.deleted == (sent["MessageId"],)

    (record,) = handler.records
    assert set(record) == {
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes",
        "md5OfBody", "eventSource", "eventSourceARN", "awsRegion",
    }  # fmt: skip
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == body
    assert record["md5OfBody"] == hashlib.md5(body.encode()).hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.queue_arn
    assert record["awsRegion"] == local_stack.info.region
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"]["origin"]["stringValue"] == "test"
    assert record["messageAttributes"]["origin"]["dataType"] == "String"

    (context,) = handler.contexts
    assert isinstance(context, LambdaContext)
    assert context.function_name == "audiolift-test-processor"
    assert context.aws_request_id
    assert 890_000 < handler.remaining_ms[0] <= 900_000

    time.sleep(1.5)  # past the visibility timeout: a deleted message does not come back
    assert queue_counts(local_stack, queues.queue_url) == (0, 0)
    assert poller.poll_once(wait_seconds=1) is None


@pytest.mark.parametrize("respond", [fail_all, raise_error], ids=["batchItemFailures", "raises"])
def test_a_failing_message_is_retried_then_dead_lettered(
    local_stack: StackProcess,
    queues: CreatedQueues,
    make_poller: Callable[..., SqsPoller],
    respond: Callable[[dict[str, Any]], Any],
) -> None:
    max_receive_count = queues.settings.max_receive_count
    sent = local_stack.clients.sqs.send_message(QueueUrl=queues.queue_url, MessageBody='{"n": 1}')
    handler = Recorder(respond)
    poller = make_poller(handler).start()

    in_dlq = dlq_messages(local_stack, queues, timeout=10 + 3 * max_receive_count)
    poller.stop()
    assert [m["MessageId"] for m in in_dlq] == [sent["MessageId"]]
    assert in_dlq[0]["Body"] == '{"n": 1}'
    # Delivered exactly maxReceiveCount times, each time with the count SQS keeps.
    counts = [r["attributes"]["ApproximateReceiveCount"] for r in handler.records]
    assert counts == [str(n) for n in range(1, max_receive_count + 1)]
    assert queue_counts(local_stack, queues.queue_url) == (0, 0)


def test_only_the_reported_failures_of_a_batch_come_back(
    local_stack: StackProcess, queues: CreatedQueues, make_poller: Callable[..., SqsPoller]
) -> None:
    ids = [
        local_stack.clients.sqs.send_message(QueueUrl=queues.queue_url, MessageBody=f"m{i}")[
            "MessageId"
        ]
        for i in range(3)
    ]
    failing = ids[1]
    handler = Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": failing}]})
    poller = make_poller(handler, batch_size=10)
    delivered: set[str] = set()
    deadline = time.monotonic() + 10
    while len(delivered) < 3 and time.monotonic() < deadline:
        outcome = poller.poll_once(wait_seconds=1)
        if outcome is not None:
            delivered.update(outcome.deleted)
            delivered.update(outcome.retried)
    assert delivered == set(ids)

    time.sleep(1.5)
    again = poller.poll_once(wait_seconds=2)
    assert again is not None
    assert again.retried == (failing,) and again.deleted == ()
    assert handler.records[-1]["attributes"]["ApproximateReceiveCount"] == "2"


def test_an_unknown_item_identifier_fails_the_whole_batch(
    local_stack: StackProcess, queues: CreatedQueues, make_poller: Callable[..., SqsPoller]
) -> None:
    sent = local_stack.clients.sqs.send_message(QueueUrl=queues.queue_url, MessageBody="x")
    handler = Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]})
    poller = make_poller(handler)
    outcome = poller.poll_once(wait_seconds=5)
    assert outcome is not None
    assert outcome.deleted == () and outcome.retried == (sent["MessageId"],)
    assert outcome.error is not None
    time.sleep(1.5)
    again = poller.poll_once(wait_seconds=2)
    assert again is not None and again.retried == (sent["MessageId"],)
