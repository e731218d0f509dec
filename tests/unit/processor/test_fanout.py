"""A large PCM file analysed in parallel parts on template.yaml's resources (moto): the
plan, the parts (each with its own lease and checkpoints), the done-counter and the
merge -- and the result equals the straight-through analysis. Duplicated part messages,
a crashed part, a cancellation and a failing part all end the job once, with nothing
left in S3 or on the queue."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pytest
from audiolift_core.jobs import Job, JobStatus
from audiolift_core.jobs_table import JobsTable
from audiolift_core.storage import UploadStore
from audiolift_devstack.lambda_context import LocalLambdaContext
from audiolift_devstack.template_resources import CreatedResources
from audiolift_processor.events import refs_from_sqs_body
from audiolift_processor.processing import LeaseHeld, Outcome, Processor
from audiolift_testkit import AwsClients, add_job
from test_continuation import (
    CONTEXT_SECONDS,
    Continuations,
    _later,
    _sweeper,
    assert_same_analysis,
    recording,
    straight_through,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20


@pytest.fixture
def continuations(aws: AwsClients, aws_resources: CreatedResources) -> Continuations:
    return Continuations(aws, aws_resources)


def fanning_out(continuations: Continuations, **overrides: Any) -> Processor:
    """A processor that splits WAVs of 1 MiB or more into ranges of about 3 MiB."""
    settings = {"fanout_min_bytes": MiB, "fanout_range_bytes": 3 * MiB, **overrides}
    return continuations.processor(**settings)


def drain(
    continuations: Continuations,
    processor: Processor,
    job: Job,
    *,
    seconds: float = 60.0,
    seen: list[tuple[str | None, int | None, int | None]] | None = None,
) -> list[Outcome]:
    """Deliver every message (in order, one at a time) until the job ended and the queue
    is empty; what each delivery returned. A part held by a live lease comes back."""
    outcomes: list[Outcome] = []
    give_up = time.monotonic() + 120
    while True:
        bodies = continuations.take_messages()
        if not bodies and continuations.job(job.job_id).status.finished:
            return outcomes
        assert time.monotonic() < give_up, outcomes
        for body in bodies:
            for ref in refs_from_sqs_body(body):
                context = LocalLambdaContext("processor", timeout_seconds=seconds)
                try:
                    outcomes.append(processor.process(ref, context=context))
                except LeaseHeld:
                    continuations.aws.sqs.send_message(
                        QueueUrl=continuations.resources.queue_url, MessageBody=body
                    )
                if seen is not None:
                    now = continuations.job(job.job_id)
                    seen.append((now.phase, now.parts_done, now.parts_total))


def assert_nothing_left(continuations: Continuations, job: Job) -> None:
    assert continuations.checkpoint_keys() == []
    assert continuations.queued() == 0
    assert continuations.queued(continuations.resources.dlq_url) == 0
    ended = continuations.job(job.job_id)
    assert (ended.lease_token, ended.phase) == (None, None)


@pytest.fixture(scope="module")
def long_wav() -> bytes:
    return recording("wav", 60)  # 11.5 MB: four ranges of ~3 MiB


@pytest.fixture(scope="module")
def long_wav_expected(long_wav: bytes) -> dict[str, Any]:
    return straight_through(long_wav)


def test_a_large_wav_is_analysed_in_parts_to_the_straight_through_result(
    continuations: Continuations, long_wav: bytes, long_wav_expected: dict[str, Any]
) -> None:
    job = continuations.add_job(long_wav, "take.wav")
    seen: list[tuple[str | None, int | None, int | None]] = []
    outcomes = drain(continuations, fanning_out(continuations), job, seen=seen)

    document = continuations.result(job)
    assert_same_analysis(document, long_wav_expected)
    assert document["source"]["sha256"] == hashlib.sha256(long_wav).hexdigest()
    done = continuations.job(job.job_id)
    assert done.verified_sha256 == hashlib.sha256(long_wav).hexdigest()
    assert done.fanout is not None and len(done.fanout["ranges"]) == 4
    # one invocation plans, one per part (4 ranges + the hash), one merges
    assert done.invocations == 1 + 5 + 1
    assert outcomes.count(Outcome.COMPLETED) == 1
    # the job view's figures while it ran: parts counted up to all five, then the merge
    assert seen[0] == ("analyzing", 0, 5)
    assert [parts for _, parts, _ in seen[1:6]] == [1, 2, 3, 4, 5]
    assert (done.parts_done, done.parts_total, done.progress) == (5, 5, 100)
    assert (done.fanout_tasks, done.fanout_done) == (None, None)
    assert_nothing_left(continuations, job)


def test_parts_longer_than_an_invocation_continue_like_a_whole_file(
    continuations: Continuations, long_wav: bytes, long_wav_expected: dict[str, Any]
) -> None:
    """Every invocation has a couple of seconds and stops with most of them left: each
    part checkpoints after a block (the hash part after a chunk) and hands on."""
    job = continuations.add_job(long_wav, "take.wav")
    outcomes = drain(continuations, fanning_out(continuations), job, seconds=CONTEXT_SECONDS)
    assert_same_analysis(continuations.result(job), long_wav_expected)
    assert outcomes.count(Outcome.CONTINUED) > 10  # hand-ons and parts done
    assert continuations.job(job.job_id).invocations > 10
    assert_nothing_left(continuations, job)


def test_duplicated_part_messages_count_once_and_do_no_double_work(
    continuations: Continuations, long_wav: bytes, long_wav_expected: dict[str, Any]
) -> None:
    job = continuations.add_job(long_wav, "take.wav")
    processor = fanning_out(continuations)
    announcement, ref = _announcement(continuations)
    assert processor.process(ref) is Outcome.CONTINUED  # the plan
    parts = continuations.take_messages()
    assert len(parts) == 5
    assert {json.loads(body)["range"] for body in parts} == set(range(5))
    for body in parts + parts:  # SQS delivers every part message twice
        continuations.aws.sqs.send_message(
            QueueUrl=continuations.resources.queue_url, MessageBody=body
        )
    # and S3 announces the object again: stale, the parts carry the job
    continuations.aws.sqs.send_message(
        QueueUrl=continuations.resources.queue_url, MessageBody=announcement
    )
    outcomes = drain(continuations, processor, job)

    assert_same_analysis(continuations.result(job), long_wav_expected)
    # each part ran once; its twin, the announcement and any extra merge were refused
    assert continuations.job(job.job_id).invocations == 1 + 5 + 1
    assert outcomes.count(Outcome.DUPLICATE) >= 5 + 1
    assert_nothing_left(continuations, job)


def test_a_part_is_counted_done_once(continuations: Continuations, long_wav: bytes) -> None:
    """The counter itself: a second completion of the same part (a duplicate that held
    its lease too) is refused, and the set of parts done does not change."""
    job = continuations.add_job(long_wav, "take.wav")
    table = continuations.table
    table.claim(job.job_id, object_etag="e", lease_token="planner", lease_seconds=60)
    plan = {"etag": "e", "size": 1, "frames": 9600, "ranges": [[0, 4800], [4800, 9600]]}
    table.plan_fanout(job.job_id, lease_token="planner", plan=plan)
    table.mark_fanout_sent(job.job_id, lease_token="planner")
    table.claim_part(job.job_id, 0, lease_token="a", lease_seconds=60, message_checkpoint=0)
    counted = table.complete_part(job.job_id, 0, lease_token="a", result={"key": "k"})
    assert counted.fanout_done == [0]
    from audiolift_core.errors import Conflict

    with pytest.raises(Conflict):
        table.complete_part(job.job_id, 0, lease_token="a", result={"key": "k2"})
    again = continuations.job(job.job_id)
    assert again.fanout_done == [0] and again.fanout_tasks is not None
    assert again.fanout_tasks["0"]["result"] == {"key": "k"}
    assert (again.parts_done, again.parts_total) == (1, 3)
    # what the API shows: the phase, the parts, the invocations, the ranges' progress
    from audiolift_api.models import JobView

    view = JobView.model_validate(again, from_attributes=True).model_dump()
    assert (view["phase"], view["parts_done"], view["parts_total"]) == ("analyzing", 1, 3)
    assert (view["invocations"], view["progress"]) == (2, 50)  # range 0 done, range 1 not


class Killed(BaseException):
    """The invocation dies (Lambda's timeout, out of memory): no handler code runs."""


class DyingS3:
    """boto3's S3 client, but the invocation dies when it would store the ``nth``
    checkpoint of a part (before the object is written)."""

    def __init__(self, client: Any, part: int, nth: int):
        self._client = client
        self._marker = f"/part-{part:04d}/"
        self._nth = nth
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kwargs: Any) -> Any:
        if self._marker in kwargs["Key"] and not kwargs["Key"].endswith("result"):
            self.count += 1
            if self.count == self._nth:
                raise Killed
        return self._client.put_object(**kwargs)


class RecordingS3:
    """boto3's S3 client, noting the byte ranges it is asked for."""

    def __init__(self, client: Any):
        self._client = client
        self.starts: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **kwargs: Any) -> Any:
        if "Range" in kwargs:
            self.starts.append(int(kwargs["Range"].split("=")[1].split("-")[0]))
        return self._client.get_object(**kwargs)


@pytest.mark.parametrize("taken_over_by", ["sweeper", "redelivery"])
def test_a_crashed_part_is_taken_over_from_its_checkpoint(
    continuations: Continuations,
    long_wav: bytes,
    long_wav_expected: dict[str, Any],
    taken_over_by: str,
) -> None:
    job = continuations.add_job(long_wav, "take.wav")
    _, ref = _announcement(continuations)
    assert fanning_out(continuations).process(ref) is Outcome.CONTINUED
    messages = continuations.take_messages()
    # part 0's message is lost with the invocation that dies
    (first,) = [body for body in messages if json.loads(body)["range"] == 0]
    others = [body for body in messages if body != first]
    for body in others:
        continuations.aws.sqs.send_message(
            QueueUrl=continuations.resources.queue_url, MessageBody=body
        )
    dying = fanning_out(continuations, checkpoint_interval_seconds=1e-6)
    dying.store = UploadStore(
        cast("S3Client", DyingS3(continuations.aws.s3, part=0, nth=2)), continuations.bucket
    )
    (part_ref,) = refs_from_sqs_body(first)
    with pytest.raises(Killed):
        dying.process(part_ref, context=LocalLambdaContext("p", timeout_seconds=60))
    crashed = continuations.job(job.job_id)
    assert crashed.fanout_tasks is not None
    checkpoint = crashed.fanout_tasks["0"]["checkpoint"]
    assert checkpoint["seq"] == 1 and checkpoint["frames"] > 0

    # The others finish; part 0 is held by a lease nobody renews. Two minutes later
    # either the sweeper finds the job quiet and sends part 0's message again, from its
    # checkpoint, or part 0's own message comes back after its visibility timeout.
    drain_others = fanning_out(continuations)
    for body in continuations.take_messages():
        for other in refs_from_sqs_body(body):
            drain_others.process(other, context=LocalLambdaContext("p", timeout_seconds=60))
    assert continuations.job(job.job_id).parts_done == 4
    later = _later(120.0)
    later_table = JobsTable(
        continuations.aws.dynamodb, continuations.resources.table_name, clock=later
    )
    if taken_over_by == "sweeper":
        report = _sweeper(continuations, later_table, later).run(lambda: 60.0)
        assert report.redriven == 1, report
        (again,) = continuations.take_messages()
        assert (json.loads(again)["range"], json.loads(again)["checkpoint"]) == (0, 1)
    else:
        again = first
    continuations.aws.sqs.send_message(
        QueueUrl=continuations.resources.queue_url, MessageBody=again
    )
    taking_over = fanning_out(continuations, table=later_table)
    reads = RecordingS3(continuations.aws.s3)
    taking_over.reader_s3 = cast("S3Client", reads)
    drain(continuations, taking_over, job)

    assert_same_analysis(continuations.result(job), long_wav_expected)
    assert_nothing_left(continuations, job)
    # It continued from the checkpoint: past the header, nothing before its frame was read.
    chunk = taking_over.settings.read_chunk_bytes
    resumed_at = (44 + 4 * checkpoint["frames"]) // chunk * chunk
    assert min(start for start in reads.starts if start) == resumed_at


def _announcement(continuations: Continuations) -> tuple[str, Any]:
    """The object's announcement (the queue may hold S3's test event first)."""
    found = [
        (body, refs[0])
        for body in continuations.take_messages()
        if (refs := refs_from_sqs_body(body))
    ]
    assert len(found) == 1, found
    return found[0]


def _planned(continuations: Continuations, body: bytes, **overrides: Any) -> tuple[Job, list[str]]:
    job = continuations.add_job(body, "take.wav")
    _, ref = _announcement(continuations)
    assert fanning_out(continuations, **overrides).process(ref) is Outcome.CONTINUED
    # in part order: the ranges, then the hash (sent first)
    return job, sorted(continuations.take_messages(), key=lambda body: json.loads(body)["range"])


def _deliver(continuations: Continuations, processor: Processor, body: str) -> Outcome:
    (ref,) = refs_from_sqs_body(body)
    return processor.process(ref, context=LocalLambdaContext("p", timeout_seconds=60))


def test_cancelling_stops_every_part_and_removes_their_states(
    continuations: Continuations, long_wav: bytes
) -> None:
    job, parts = _planned(continuations, long_wav)
    processor = fanning_out(continuations)
    assert _deliver(continuations, processor, parts[0]) is Outcome.CONTINUED
    assert _deliver(continuations, processor, parts[1]) is Outcome.CONTINUED
    assert len(continuations.checkpoint_keys()) == 2  # two parts' results
    continuations.table.transition(job.job_id, JobStatus.CANCELLED, owner="alice")
    outcomes = [_deliver(continuations, processor, body) for body in parts[2:]]
    assert outcomes == [Outcome.CANCELLED] * 3
    assert continuations.job(job.job_id).status is JobStatus.CANCELLED
    assert continuations.checkpoint_keys() == []
    assert continuations.queued() == 0


def test_a_part_cancelled_while_it_runs_stops_at_its_next_heartbeat(
    continuations: Continuations, long_wav: bytes
) -> None:
    job, parts = _planned(continuations, long_wav)
    processor = fanning_out(continuations, checkpoint_interval_seconds=1e-6)
    done = _deliver(continuations, processor, parts[3])  # one part's state is stored
    assert done is Outcome.CONTINUED

    class CancelOnCheckpoint(DyingS3):
        def put_object(self, **kwargs: Any) -> Any:
            if "/part-0000/" in kwargs["Key"]:
                continuations.table.transition(job.job_id, JobStatus.CANCELLED, owner="alice")
            return self._client.put_object(**kwargs)

    cancelling = fanning_out(continuations, checkpoint_interval_seconds=1e-6)
    cancelling.store = UploadStore(
        cast("S3Client", CancelOnCheckpoint(continuations.aws.s3, part=0, nth=0)),
        continuations.bucket,
    )
    assert _deliver(continuations, cancelling, parts[0]) is Outcome.CANCELLED
    assert continuations.checkpoint_keys() == []


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_a_failing_part_fails_the_job_once_and_the_others_stop(
    continuations: Continuations, long_wav: bytes, change: str
) -> None:
    job, parts = _planned(continuations, long_wav)
    processor = fanning_out(continuations)
    assert _deliver(continuations, processor, parts[0]) is Outcome.CONTINUED
    if change == "replaced":
        continuations.aws.s3.put_object(
            Bucket=continuations.bucket, Key=job.object_key, Body=long_wav[:-4] + b"\0\0\0\0"
        )
    else:
        continuations.aws.s3.delete_object(Bucket=continuations.bucket, Key=job.object_key)
    outcomes = [_deliver(continuations, processor, body) for body in parts[1:]]
    failed = continuations.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    code = {"replaced": "object_changed", "deleted": "object_missing"}[change]
    assert failed.error is not None and failed.error["code"] == code
    assert outcomes[0] is Outcome.FAILED
    assert all(outcome is not Outcome.CONTINUED for outcome in outcomes[1:])
    assert continuations.checkpoint_keys() == []
    # S3's announcement of the new version finds the job ended
    for body in continuations.take_messages():
        if refs_from_sqs_body(body):
            assert _deliver(continuations, processor, body) is Outcome.DUPLICATE


class ChangingS3:
    """boto3's S3 client that, after ``after`` ranged GETs, lets ``change`` happen to the
    object (someone replaces or deletes it while a part reads it)."""

    def __init__(self, client: Any, after: int, change: Callable[[], None]):
        self._client = client
        self._after = after
        self._change = change
        self.gets = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **kwargs: Any) -> Any:
        self.gets += 1
        if self.gets == self._after:
            self._change()
        return self._client.get_object(**kwargs)


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_an_object_changed_while_a_part_reads_it_fails_the_job_with_its_code(
    continuations: Continuations, long_wav: bytes, change: str
) -> None:
    job, parts = _planned(continuations, long_wav)
    s3, bucket = continuations.aws.s3, continuations.bucket

    def changing() -> None:
        if change == "replaced":
            s3.put_object(Bucket=bucket, Key=job.object_key, Body=long_wav[:-4] + b"\0\0\0\0")
        else:
            s3.delete_object(Bucket=bucket, Key=job.object_key)

    processor = fanning_out(continuations, read_ahead_chunks=0)
    processor.reader_s3 = cast("S3Client", ChangingS3(s3, after=4, change=changing))
    assert _deliver(continuations, processor, parts[1]) is Outcome.FAILED
    failed = continuations.job(job.job_id)
    code = {"replaced": "object_changed", "deleted": "object_missing"}[change]
    assert failed.error is not None and failed.error["code"] == code
    others = [_deliver(continuations, fanning_out(continuations), body) for body in parts[2:]]
    assert Outcome.CONTINUED not in others
    assert continuations.checkpoint_keys() == []


def test_a_declared_checksum_that_differs_fails_the_job_from_the_hash_part(
    continuations: Continuations, long_wav: bytes
) -> None:
    job = add_job(
        continuations.table, continuations.aws.s3, continuations.bucket, long_wav,
        sha256="0" * 64,
    )  # fmt: skip
    drain(continuations, fanning_out(continuations), job)
    failed = continuations.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "checksum_mismatch"
    assert continuations.checkpoint_keys() == []


@pytest.mark.parametrize("container", ["flac", "mp3"])
def test_compressed_files_are_not_split(continuations: Continuations, container: str) -> None:
    body = recording(container, 40)
    job = continuations.add_job(body, f"take.{container}")
    drain(continuations, fanning_out(continuations, fanout_min_bytes=1), job)
    done = continuations.job(job.job_id)
    assert done.status is JobStatus.COMPLETED and done.fanout is None
    assert done.invocations == 1


def test_the_part_and_merge_messages_as_lambda_delivers_them() -> None:
    from pathlib import Path

    from audiolift_processor.events import MalformedEvent

    events = Path(__file__).resolve().parents[3] / "events"
    part, merge = json.loads((events / "sqs-fanout.json").read_text())["Records"]
    (ref,) = refs_from_sqs_body(part["body"])
    assert (ref.part, ref.checkpoint, ref.merge, ref.event_name) == (2, 0, False, "Continue")
    (ref,) = refs_from_sqs_body(merge["body"])
    assert (ref.part, ref.merge, ref.event_name) == (None, True, "Merge")
    body = json.loads(part["body"])
    for broken in (
        {**body, "range": -1},
        {**body, "range": "2"},
        {**body, "checkpoint": -1},
        {**body, "merge": True},  # a part and the merge at once
    ):
        with pytest.raises(MalformedEvent):
            refs_from_sqs_body(json.dumps(broken))
