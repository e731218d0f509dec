"""An analysis longer than one invocation: checkpointed, handed on through the processing
queue, continued by the next invocation -- and the document equals the straight-through
run's. The queue, table and bucket are template.yaml's under moto; the devstack's poller
delivers the messages as Lambda's SQS event source does, each batch with a Lambda
context of a couple of seconds."""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from audiolift_core.aws import CallLimits, s3_client
from audiolift_core.jobs import Job, JobStatus
from audiolift_core.jobs_table import JobsTable
from audiolift_core.processing_queue import ProcessingQueue
from audiolift_core.settings import ProcessorSettings, StorageSettings, SweeperSettings
from audiolift_core.storage import UploadStore
from audiolift_devstack.lambda_context import LocalLambdaContext
from audiolift_devstack.poller import SqsPoller
from audiolift_devstack.template_resources import CreatedResources
from audiolift_processor.continuation import CHECKPOINT_PREFIX, Checkpoint
from audiolift_processor.decode import BLOCK_SAMPLES, BlockDone, Resume, analyze_stream
from audiolift_processor.events import ObjectRef
from audiolift_processor.handler import handle_event
from audiolift_processor.processing import Outcome, Processor
from audiolift_processor.s3reader import RetryPolicy
from audiolift_sweeper.sweep import Sweeper
from audiolift_testkit import AwsClients, add_job

RATE = 48_000
CHANNELS = 2
FRAMES_PER_BLOCK = BLOCK_SAMPLES // CHANNELS
# Of a couple of seconds, an invocation may use only the first few hundredths before the
# margin: it analyses one block (at least one always: the deadline is checked between
# blocks), checkpoints and hands on. A file of N blocks takes about N invocations,
# whatever this machine's speed.
CONTEXT_SECONDS = 2.0
MARGIN_SECONDS = CONTEXT_SECONDS - 0.05
FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "vorbis": ("OGG", "VORBIS"),
}


def recording(container: str, seconds: float) -> bytes:
    """Noise under a slow envelope (a real loudness range), some digital silence."""
    rng = np.random.default_rng(7)
    frames = int(seconds * RATE)
    envelope = 0.03 + 0.25 * np.sin(np.arange(frames) / (3.0 * RATE)) ** 2
    signal = rng.standard_normal((frames, CHANNELS)) * envelope[:, None] * 0.5
    signal[RATE : 2 * RATE] = 0.0
    out = io.BytesIO()
    kind, subtype = FORMATS[container]
    sf.write(out, np.clip(signal, -1, 1), RATE, format=kind, subtype=subtype)
    return out.getvalue()


def straight_through(body: bytes) -> dict[str, Any]:
    return analyze_stream(io.BytesIO(body), size=len(body))


def assert_same_analysis(result: dict[str, Any], expected: dict[str, Any]) -> None:
    """Floats (loudness, LRA, true peak, ...) to 1e-9; counts, strings and None exactly."""

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(b, dict):
            assert isinstance(a, dict) and a.keys() == b.keys(), path
            for key in b:
                walk(a[key], b[key], f"{path}.{key}")
        elif isinstance(b, list):
            assert isinstance(a, list) and len(a) == len(b), path
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{index}]")
        elif isinstance(b, float) and isinstance(a, float):
            assert math.isclose(a, b, rel_tol=0, abs_tol=1e-9), (path, a, b)
        else:
            assert a == b, (path, a, b)

    for key, value in expected.items():
        walk(result[key], value, key)


class Continuations:
    """The processor with a hand-on queue, over template.yaml's resources (moto)."""

    def __init__(self, aws: AwsClients, resources: CreatedResources):
        self.aws = aws
        self.resources = resources
        self.bucket = resources.bucket_name
        self.store = UploadStore(aws.s3, resources.bucket_name)
        self.table = JobsTable(aws.dynamodb, resources.table_name)

    def processor(
        self,
        *,
        table: JobsTable | None = None,
        analyze: Callable[..., dict[str, Any]] | None = None,
        hand_on: bool = True,
        **overrides: Any,
    ) -> Processor:
        settings = ProcessorSettings(
            storage=StorageSettings(
                jobs_table=self.resources.table_name, upload_bucket=self.bucket
            ),
            read_chunk_bytes=256 * 1024,
            progress_interval_seconds=0.0,
            processing_queue_url=self.resources.queue_url,
            **{"deadline_margin_seconds": MARGIN_SECONDS, **overrides},
        )
        return Processor(
            settings,
            table or self.table,
            self.store,
            s3_client.__wrapped__(CallLimits(total_max_attempts=1)),
            analyze=analyze,
            reader_retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
            hand_on=ProcessingQueue(self.aws.sqs, self.resources.queue_url) if hand_on else None,
        )

    def add_job(self, body: bytes, filename: str) -> Job:
        # moto announces the object on the processing queue, as S3 does
        return add_job(
            self.table, self.aws.s3, self.bucket, body, filename=filename,
            content_type="application/octet-stream", sha256=hashlib.sha256(body).hexdigest(),
        )  # fmt: skip

    def job(self, job_id: str) -> Job:
        job = self.table.get(job_id)
        assert job is not None
        return job

    def poller(self, processor: Processor, seconds: float = CONTEXT_SECONDS) -> SqsPoller:
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return handle_event(event, context, processor)

        return SqsPoller(
            self.aws.sqs,
            self.resources.queue_url,
            queue_arn=self.resources.queue_arn,
            handler=handler,
            wait_seconds=0,
            timeout_seconds=seconds,
        )

    def run_to_the_end(
        self, job_id: str, processor: Processor, *, seconds: float = CONTEXT_SECONDS
    ) -> list[int]:
        """Deliver messages until the job ends; the progress seen after each batch."""
        poller = self.poller(processor, seconds)
        progress: list[int] = []
        give_up = time.monotonic() + 120
        while not self.job(job_id).status.finished:
            assert time.monotonic() < give_up, f"not finished; progress {progress}"
            if poller.poll_once(wait_seconds=0) is not None:
                progress.append(self.job(job_id).progress)
        return progress

    def result(self, job: Job) -> dict[str, Any]:
        done = self.job(job.job_id)
        assert done.status is JobStatus.COMPLETED, done.error
        assert done.result_key is not None
        document: dict[str, Any] = self.store.get_json(done.result_key)
        return document

    def checkpoint_keys(self) -> list[str]:
        listing = self.aws.s3.list_objects_v2(Bucket=self.bucket, Prefix=CHECKPOINT_PREFIX)
        return [item["Key"] for item in listing.get("Contents", [])]

    def queued(self, url: str | None = None) -> int:
        attributes = self.aws.sqs.get_queue_attributes(
            QueueUrl=url or self.resources.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def take_messages(self) -> list[str]:
        """Every message on the queue now, removed from it (their bodies)."""
        bodies: list[str] = []
        while True:
            response = self.aws.sqs.receive_message(
                QueueUrl=self.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = response.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.aws.sqs.delete_message(
                    QueueUrl=self.resources.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def first_invocation(self, job: Job, poller: SqsPoller) -> None:
        """Deliver until the job was claimed (the queue may hold S3's test event first)."""
        for _ in range(5):
            poller.poll_once(wait_seconds=0)
            if self.job(job.job_id).status is not JobStatus.UPLOADED:
                return
        raise AssertionError("the object's announcement never came")

    def ref(self, job: Job) -> ObjectRef:
        return ObjectRef(self.bucket, job.object_key, None, None, "ObjectCreated:Put")


@pytest.fixture
def continuations(aws: AwsClients, aws_resources: CreatedResources) -> Continuations:
    return Continuations(aws, aws_resources)


# --- seeking --------------------------------------------------------------------------------


@pytest.mark.parametrize("container", [*FORMATS, "opus"])
def test_libsndfile_seeks_sample_exactly_in_every_codec(container: str) -> None:
    """Decode straight through vs seek to a frame and decode on: the same samples. The
    continuation relies on this (and checks it on every resume with a fingerprint)."""
    out = io.BytesIO()
    rng = np.random.default_rng(3)
    signal = np.clip(rng.standard_normal((24 * RATE, 2)) * 0.2, -1, 1)
    kind, subtype = FORMATS.get(container, ("OGG", "OPUS"))
    sf.write(out, signal, RATE, format=kind, subtype=subtype)
    data = out.getvalue()
    with sf.SoundFile(io.BytesIO(data)) as sound:
        whole = sound.read(dtype="float32")
    for frame in (1000, FRAMES_PER_BLOCK, 3 * FRAMES_PER_BLOCK + 12_345):
        with sf.SoundFile(io.BytesIO(data)) as sound:
            sound.seek(frame)
            rest = sound.read(dtype="float32")
        assert np.array_equal(rest, whole[frame:]), (container, frame)


# --- continuation across invocations ----------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "seconds"), [("wav", 60), ("flac", 60), ("mp3", 40), ("vorbis", 40)]
)
def test_a_long_analysis_continues_across_invocations_to_the_straight_through_result(
    continuations: Continuations, container: str, seconds: int
) -> None:
    body = recording(container, seconds)
    expected = straight_through(body)
    job = continuations.add_job(body, f"take.{container}")
    # Every invocation gets a couple of seconds and stops with most of them left: it
    # analyses a block or a few, checkpoints, and hands on.
    progress = continuations.run_to_the_end(job.job_id, continuations.processor())

    document = continuations.result(job)
    assert_same_analysis(document, expected)
    # The SHA-256 was carried across the invocations: the whole object's, as declared.
    assert document["source"]["sha256"] == hashlib.sha256(body).hexdigest()
    done = continuations.job(job.job_id)
    assert done.verified_sha256 == hashlib.sha256(body).hexdigest()
    blocks = -(-(seconds * RATE) // FRAMES_PER_BLOCK)
    assert blocks // 2 <= done.invocations <= blocks + 1, (done.invocations, blocks)
    assert progress == sorted(progress), progress  # never back to 0 on a new invocation
    # Nothing is left over: no checkpoint, no message, no running-analysis fields.
    assert (done.checkpoint, done.phase, done.lease_token) == (None, None, None)
    assert continuations.checkpoint_keys() == []
    assert continuations.queued() == 0
    assert continuations.queued(continuations.resources.dlq_url) == 0


def test_checkpoint_names_the_phase_and_the_invocations_while_it_runs(
    continuations: Continuations,
) -> None:
    body = recording("wav", 30)
    job = continuations.add_job(body, "take.wav")
    poller = continuations.poller(continuations.processor())
    continuations.first_invocation(job, poller)  # it hands on
    running = continuations.job(job.job_id)
    assert running.status is JobStatus.PROCESSING
    assert running.phase == "analyzing" and running.invocations == 1
    assert running.checkpoint is not None and running.checkpoint["seq"] >= 1
    assert running.checkpoint["frames"] % FRAMES_PER_BLOCK == 0
    assert running.checkpoint.get("handed_on") is True
    assert 0 < running.progress < 100
    # the record names the only checkpoint object
    assert continuations.checkpoint_keys() == [running.checkpoint["key"]]
    (body_text,) = continuations.take_messages()
    message = json.loads(body_text)
    assert message["kind"] == "audiolift.continue"
    assert (message["job_id"], message["checkpoint"]) == (job.job_id, running.checkpoint["seq"])


# --- duplicates and crashes -----------------------------------------------------------------


def test_a_duplicated_hand_on_message_does_no_double_work(continuations: Continuations) -> None:
    body = recording("flac", 40)
    expected = straight_through(body)
    job = continuations.add_job(body, "take.flac")
    poller = continuations.poller(continuations.processor())
    continuations.first_invocation(job, poller)
    (hand_on,) = continuations.take_messages()
    # SQS delivers the hand-on twice: both copies are on the queue.
    for _ in range(2):
        continuations.aws.sqs.send_message(
            QueueUrl=continuations.resources.queue_url, MessageBody=hand_on
        )
    analysed: list[int] = []
    counting = _counting_blocks(continuations, analysed)
    outcomes: list[Outcome] = []
    give_up = time.monotonic() + 120
    while not continuations.job(job.job_id).status.finished:
        assert time.monotonic() < give_up
        for text in continuations.take_messages():
            (ref,) = _refs(text)
            context = LocalLambdaContext("processor", timeout_seconds=CONTEXT_SECONDS)
            outcomes.append(counting.process(ref, context=context))

    assert_same_analysis(continuations.result(job), expected)
    # One copy continued the job; the other found a later checkpoint handed on (or the
    # job done) and was acknowledged without work.
    assert Outcome.DUPLICATE in outcomes
    # No block was analysed twice: each once, in order, from the first invocation's end.
    assert analysed == sorted(set(analysed)), analysed
    assert analysed[0] > FRAMES_PER_BLOCK


def _refs(body: str) -> list[ObjectRef]:
    from audiolift_processor.events import refs_from_sqs_body

    return refs_from_sqs_body(body)


def _counting_blocks(continuations: Continuations, analysed: list[int]) -> Processor:
    """A processor that records the end frame of every block it analyses."""

    def analyze(reader: Any, **kwargs: Any) -> dict[str, Any]:
        inner = kwargs.pop("on_block")

        def on_block(block: BlockDone) -> None:
            analysed.append(block.frames)
            inner(block)

        return analyze_stream(reader, on_block=on_block, **kwargs)

    return continuations.processor(analyze=analyze)


class Killed(BaseException):
    """The invocation dies (Lambda's timeout, out of memory): no handler code runs."""


@pytest.mark.parametrize("taken_over_by", ["sweeper", "redelivery"])
def test_a_killed_invocation_costs_at_most_one_checkpoint_interval(
    continuations: Continuations, taken_over_by: str
) -> None:
    body = recording("mp3", 40)
    expected = straight_through(body)
    job = continuations.add_job(body, "take.mp3")
    # the announcement is in flight with the invocation that will die
    announcements = continuations.take_messages()
    checkpointed: list[int] = []
    analysed_after: list[int] = []

    def analyze_and_die(reader: Any, **kwargs: Any) -> dict[str, Any]:
        inner = kwargs.pop("on_block")

        def on_block(block: BlockDone) -> None:
            if len(checkpointed) == 3:
                raise Killed  # between two checkpoints: this block is lost
            inner(block)
            checkpointed.append(block.frames)

        return analyze_stream(reader, on_block=on_block, **kwargs)

    # A checkpoint after every block (the interval is shorter than one block's work);
    # a long deadline: only the kill stops the invocation.
    dying = continuations.processor(
        analyze=analyze_and_die, checkpoint_interval_seconds=1e-6, deadline_margin_seconds=1.0
    )
    with pytest.raises(Killed):
        dying.process(continuations.ref(job), context=LocalLambdaContext("p", timeout_seconds=60))
    crashed = continuations.job(job.job_id)
    assert crashed.status is JobStatus.PROCESSING and crashed.checkpoint is not None
    assert crashed.checkpoint["frames"] == checkpointed[-1]
    assert continuations.queued() == 0  # no hand-on: the invocation died

    # The lease runs out (two minutes later, on the clocks of the table and sweeper used
    # from here on). Then either the sweeper finds the job quiet and re-drives it, or the
    # announcement comes back after its visibility timeout: it names no checkpoint, but
    # the job's latest was not handed on, so it takes over.
    later = _later(120.0)
    later_table = JobsTable(
        continuations.aws.dynamodb, continuations.resources.table_name, clock=later
    )
    if taken_over_by == "sweeper":
        report = _sweeper(continuations, later_table, later).run(lambda: 60.0)
        assert report.redriven == 1, report
    else:
        for announcement in announcements:
            continuations.aws.sqs.send_message(
                QueueUrl=continuations.resources.queue_url, MessageBody=announcement
            )

    def analyze_and_note(reader: Any, **kwargs: Any) -> dict[str, Any]:
        inner = kwargs.pop("on_block")

        def on_block(block: BlockDone) -> None:
            analysed_after.append(block.frames)
            inner(block)

        return analyze_stream(reader, on_block=on_block, **kwargs)

    taking_over = continuations.processor(table=later_table, analyze=analyze_and_note)
    continuations.run_to_the_end(job.job_id, taking_over, seconds=60.0)

    assert_same_analysis(continuations.result(job), expected)
    # It continued from the last checkpoint: the one lost block is all that was redone.
    assert analysed_after[0] == checkpointed[-1] + FRAMES_PER_BLOCK
    assert continuations.checkpoint_keys() == []


def _later(seconds: float) -> Callable[[], float]:
    return lambda: time.time() + seconds


def _sweeper(continuations: Continuations, table: JobsTable, clock: Callable[[], float]) -> Sweeper:
    return Sweeper(
        SweeperSettings(
            storage=StorageSettings(
                jobs_table=continuations.resources.table_name,
                upload_bucket=continuations.bucket,
            ),
            processing_queue_url=continuations.resources.queue_url,
        ),
        table,
        continuations.store,
        ProcessingQueue(continuations.aws.sqs, continuations.resources.queue_url),
        clock=clock,
    )


def test_cancelling_between_invocations_ends_the_job_and_removes_its_checkpoint(
    continuations: Continuations,
) -> None:
    body = recording("wav", 30)
    job = continuations.add_job(body, "take.wav")
    poller = continuations.poller(continuations.processor())
    continuations.first_invocation(job, poller)
    assert continuations.checkpoint_keys() != []
    continuations.table.transition(job.job_id, JobStatus.CANCELLED, owner="alice")
    assert poller.poll_once(wait_seconds=0) is not None  # the hand-on message
    assert continuations.job(job.job_id).status is JobStatus.CANCELLED
    assert continuations.checkpoint_keys() == []
    assert continuations.queued() == 0
    assert continuations.store.head(job.object_key)  # the upload itself stays


def test_without_a_hand_on_queue_a_long_analysis_still_ends_timeout(
    continuations: Continuations,
) -> None:
    body = recording("wav", 30)
    job = continuations.add_job(body, "take.wav")
    processor = continuations.processor(hand_on=False)
    continuations.take_messages()
    outcome = processor.process(
        continuations.ref(job),
        context=LocalLambdaContext("p", timeout_seconds=CONTEXT_SECONDS),
    )
    assert outcome is Outcome.FAILED
    failed = continuations.job(job.job_id)
    assert failed.error is not None and failed.error["code"] == "timeout"
    assert continuations.checkpoint_keys() == []


def test_a_checkpoint_round_trips_through_bytes() -> None:
    from audiolift_processor.decode import Resume
    from audiolift_processor.s3reader import HashState

    checkpoint = Checkpoint(
        seq=4,
        etag="abc",
        chunk_size=1 << 20,
        resume=Resume(123, {"frames": 123, "power": np.arange(3.0)}, "f" * 64),
        hashed=HashState(1 << 20, bytes(range(112))),
    )
    again = Checkpoint.decode(checkpoint.encode())
    assert again.resume is not None
    assert (again.seq, again.etag, again.chunk_size, again.hashed) == (
        4,
        "abc",
        1 << 20,
        checkpoint.hashed,
    )
    assert again.resume.frames == 123 and again.resume.fingerprint == "f" * 64
    assert np.array_equal(again.resume.analysis["power"], np.arange(3.0))


def test_a_decoder_landing_elsewhere_is_caught_by_the_fingerprint() -> None:
    """A resume whose frames do not match the saved fingerprint, after seeking and after
    decoding from the start, is refused rather than analysed from the wrong place."""
    from audiolift_processor.decode import Resume, ResumeMismatch

    body = recording("flac", 15)
    snapshots: list[Resume] = []
    analyze_stream(
        io.BytesIO(body), size=len(body), on_block=lambda block: snapshots.append(block.snapshot())
    )
    saved = snapshots[0]
    resumed = analyze_stream(io.BytesIO(body), size=len(body), resume=saved)
    assert_same_analysis(resumed, straight_through(body))
    wrong = Resume(saved.frames, saved.analysis, "0" * 64)
    with pytest.raises(ResumeMismatch):
        analyze_stream(io.BytesIO(body), size=len(body), resume=wrong)


def test_an_unusable_checkpoint_restarts_the_analysis_from_the_start(
    continuations: Continuations,
) -> None:
    """A checkpoint that does not fit (here: its fingerprint spoiled in S3) costs the work
    before it, never the result."""
    body = recording("vorbis", 30)
    expected = straight_through(body)
    job = continuations.add_job(body, "take.ogg")
    continuations.first_invocation(job, continuations.poller(continuations.processor()))
    running = continuations.job(job.job_id)
    assert running.checkpoint is not None
    key = running.checkpoint["key"]
    saved = Checkpoint.decode(continuations.store.get_bytes(key))
    assert saved.resume is not None
    spoiled = Checkpoint(
        seq=saved.seq,
        etag=saved.etag,
        chunk_size=saved.chunk_size,
        resume=Resume(saved.resume.frames, saved.resume.analysis, "0" * 64),
        hashed=saved.hashed,
    )
    continuations.store.put_bytes(key, spoiled.encode())
    continuations.run_to_the_end(job.job_id, continuations.processor(), seconds=60.0)
    document = continuations.result(job)
    assert_same_analysis(document, expected)
    assert document["source"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert continuations.checkpoint_keys() == []


def test_the_hand_on_message_as_lambda_delivers_it() -> None:
    from pathlib import Path

    from audiolift_processor.events import MalformedEvent, refs_from_sqs_body

    events = Path(__file__).resolve().parents[3] / "events"
    (record,) = json.loads((events / "sqs-continuation.json").read_text())["Records"]
    (ref,) = refs_from_sqs_body(record["body"])
    assert (ref.key, ref.checkpoint, ref.event_name) == (
        "uploads/0f8e2c4a9b7d4e1f8a6c3b5d7e9f1a2b",
        3,
        "Continue",
    )
    body = json.loads(record["body"])
    for broken in ({**body, "checkpoint": 0}, {**body, "checkpoint": "3"}, {"kind": body["kind"]}):
        with pytest.raises(MalformedEvent):
            refs_from_sqs_body(json.dumps(broken))
