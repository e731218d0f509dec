"""The sweeper on moto: table, queues and bucket from template.yaml (tests/conftest.py), jobs
left stuck the ways a job gets stuck, assertions on the items, the queue and the bucket."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from audiolift_core.errors import Conflict
from audiolift_core.jobs import Job, JobStatus, isoformat, new_job_id
from audiolift_core.jobs_table import JobsTable
from audiolift_core.processing_queue import ProcessingQueue
from audiolift_core.settings import StorageSettings, SweeperSettings
from audiolift_core.storage import UploadStore
from audiolift_devstack.lambda_context import LocalLambdaContext
from audiolift_devstack.template_resources import CreatedResources
from audiolift_sweeper.sweep import Sweeper
from audiolift_testkit import AwsClients

ROOT = Path(__file__).resolve().parents[3]
VISIBILITY = 360
RECEIVES = 3
WAIT = VISIBILITY * RECEIVES  # how long the queue may take with one message
UPLOAD_TTL = 86_400


def iso_ago(seconds: float) -> str:
    return isoformat(datetime.fromtimestamp(time.time() - seconds, UTC))


@pytest.fixture
def settings(aws_resources: CreatedResources) -> SweeperSettings:
    return SweeperSettings(
        storage=StorageSettings(
            jobs_table=aws_resources.table_name, upload_bucket=aws_resources.bucket_name
        ),
        processing_queue_url=aws_resources.queue_url,
        visibility_timeout_seconds=VISIBILITY,
        max_receive_count=RECEIVES,
        upload_ttl_seconds=UPLOAD_TTL,
        max_redrives=2,
        max_jobs_per_run=50,
    )


SweeperFactory = Callable[..., Sweeper]


@pytest.fixture
def make_sweeper(
    aws: AwsClients, settings: SweeperSettings, jobs_table: JobsTable, upload_store: UploadStore
) -> SweeperFactory:
    def make(*, later_by: float = 0.0, **changes: Any) -> Sweeper:
        return Sweeper(
            replace(settings, **changes),
            jobs_table,
            upload_store,
            ProcessingQueue(aws.sqs, settings.processing_queue_url),
            clock=lambda: time.time() + later_by,
        )

    return make


def plenty() -> float:
    return 60.0


def put_job(
    table: JobsTable,
    status: JobStatus,
    *,
    quiet_for: float,
    lease_left: float | None = None,
    upload_id: str | None = None,
    job_id: str | None = None,
) -> Job:
    job_id = job_id or new_job_id()
    stamp = iso_ago(quiet_for)
    job = Job(
        job_id=job_id,
        owner="alice",
        status=status,
        filename="take.wav",
        size=0,
        content_type="audio/wav",
        object_key=f"uploads/{job_id}",
        created_at=stamp,
        updated_at=stamp,
        part_size=0,
        part_count=0,
        upload_id=upload_id,
        lease_token="a-crashed-invocation" if lease_left is not None else None,
        lease_expires_at=time.time() + lease_left if lease_left is not None else None,
    )
    return table.create(job)


def wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, 0.25 * np.sin(2 * np.pi * 440 * t), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def put_object(aws: AwsClients, resources: CreatedResources, job: Job) -> str:
    response = aws.s3.put_object(Bucket=resources.bucket_name, Key=job.object_key, Body=wav())
    return str(response["ETag"]).strip('"')


def drain(aws: AwsClients, queue_url: str) -> list[dict[str, Any]]:
    """The queue's messages (S3 notifications that moto sent for our own PUTs included)."""
    bodies: list[dict[str, Any]] = []
    while True:
        response = aws.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        messages = response.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            aws.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def redrives(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweeper's messages among them (moto's own notifications carry no principal)."""
    return [
        b
        for b in bodies
        if b.get("Records", [{}])[0].get("userIdentity", {}).get("principalId")
        == "audiolift-sweeper"
    ]


def stored(table: JobsTable, job: Job) -> Job:
    found = table.get(job.job_id)
    assert found is not None
    return found


# --- processing with an expired lease ---------------------------------------------------------


def test_a_crashed_invocations_job_is_re_driven_once_per_deadline_then_ended(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    make_sweeper: SweeperFactory,
) -> None:
    from audiolift_processor.events import refs_from_sqs_body

    job = put_job(jobs_table, JobStatus.PROCESSING, quiet_for=900, lease_left=-30)
    etag = put_object(aws, aws_resources, job)
    drain(aws, aws_resources.queue_url)  # moto's own notification for the PUT

    report = make_sweeper().run(plenty)

    assert (report.redriven, report.examined) == (1, 1)
    (message,) = redrives(drain(aws, aws_resources.queue_url))
    (ref,) = refs_from_sqs_body(json.dumps(message))  # the processor's own parser
    assert (ref.bucket, ref.key, ref.etag) == (aws_resources.bucket_name, job.object_key, etag)
    assert ref.event_name.startswith("ObjectCreated:")
    after = stored(jobs_table, job)
    assert after.status is JobStatus.PROCESSING  # the processor takes it over
    assert after.extra["redrives"] == 1 and after.updated_at > job.updated_at

    # Again at once, and again before the queue has had its time: nothing new.
    assert make_sweeper().run(plenty).redriven == 0
    assert make_sweeper(later_by=WAIT - 60).run(plenty).redriven == 0
    assert redrives(drain(aws, aws_resources.queue_url)) == []

    # Still stuck once that time has passed: one more message.
    assert make_sweeper(later_by=WAIT + 60).run(plenty).redriven == 1
    assert len(redrives(drain(aws, aws_resources.queue_url))) == 1
    assert stored(jobs_table, job).extra["redrives"] == 2

    # And after max_redrives (2) re-drives, it is ended instead of re-driven forever.
    report = make_sweeper(later_by=2 * WAIT + 120).run(plenty)
    assert (report.stalled, report.redriven) == (1, 0)
    ended = stored(jobs_table, job)
    assert ended.status is JobStatus.FAILED
    assert ended.error is not None and ended.error["code"] == "stalled"
    assert ended.lease_token is None and ended.lease_expires_at is None
    assert redrives(drain(aws, aws_resources.queue_url)) == []


def test_a_job_with_a_live_lease_is_left_alone(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    make_sweeper: SweeperFactory,
) -> None:
    # Quiet for a long time, but the lease still runs: a slow analysis, not a crash.
    job = put_job(jobs_table, JobStatus.PROCESSING, quiet_for=600, lease_left=300)
    put_object(aws, aws_resources, job)
    drain(aws, aws_resources.queue_url)

    report = make_sweeper().run(plenty)

    assert report.examined == 0
    assert stored(jobs_table, job) == job
    assert redrives(drain(aws, aws_resources.queue_url)) == []


def test_a_processing_job_is_looked_at_once_quiet_for_the_configured_time(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    make_sweeper: SweeperFactory,
) -> None:
    """Lease run out, record unchanged for 30 s: not yet with the default minute, at once
    with SWEEP_PROCESSING_QUIET_SECONDS=10."""
    job = put_job(jobs_table, JobStatus.PROCESSING, quiet_for=30, lease_left=-5)
    put_object(aws, aws_resources, job)
    drain(aws, aws_resources.queue_url)

    assert make_sweeper().run(plenty).redriven == 0
    assert make_sweeper(processing_quiet_seconds=10).run(plenty).redriven == 1
    assert len(redrives(drain(aws, aws_resources.queue_url))) == 1


def test_a_job_updated_after_it_was_read_is_not_touched(
    aws: AwsClients, aws_resources: CreatedResources, jobs_table: JobsTable
) -> None:
    job = put_job(jobs_table, JobStatus.PROCESSING, quiet_for=900, lease_left=-30)
    seen = stored(jobs_table, job)
    # The processor takes the job over between the sweeper's read and its write.
    jobs_table.claim(job.job_id, object_etag="e", lease_token="new-owner", lease_seconds=900)

    with pytest.raises(Conflict):
        jobs_table.mark_redriven(seen, now=time.time())
    with pytest.raises(Conflict):
        jobs_table.fail_stuck(seen, {"code": "stalled", "message": "m"}, now=time.time())
    after = stored(jobs_table, job)
    assert (after.status, after.lease_token) == (JobStatus.PROCESSING, "new-owner")
    assert "redrives" not in after.extra and after.error is None


# --- uploaded, and the message lost -----------------------------------------------------------


def test_an_uploaded_job_quiet_past_the_queues_deadline_is_re_driven(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    make_sweeper: SweeperFactory,
) -> None:
    stuck = put_job(jobs_table, JobStatus.UPLOADED, quiet_for=WAIT + 60)
    recent = put_job(jobs_table, JobStatus.UPLOADED, quiet_for=WAIT - 60)
    for job in (stuck, recent):
        put_object(aws, aws_resources, job)
    drain(aws, aws_resources.queue_url)

    report = make_sweeper().run(plenty)

    assert (report.examined, report.redriven) == (1, 1)
    (message,) = redrives(drain(aws, aws_resources.queue_url))
    assert message["Records"][0]["s3"]["object"]["key"] == f"uploads%2F{stuck.job_id}"
    assert stored(jobs_table, stuck).extra["redrives"] == 1
    assert stored(jobs_table, recent) == recent


def test_a_job_whose_object_is_gone_ends_object_missing(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    make_sweeper: SweeperFactory,
) -> None:
    uploaded = put_job(jobs_table, JobStatus.UPLOADED, quiet_for=WAIT + 60)
    processing = put_job(jobs_table, JobStatus.PROCESSING, quiet_for=900, lease_left=-1)

    report = make_sweeper().run(plenty)

    assert report.object_missing == 2 and report.redriven == 0
    for job in (uploaded, processing):
        ended = stored(jobs_table, job)
        assert ended.status is JobStatus.FAILED
        assert ended.error is not None and ended.error["code"] == "object_missing"
        assert job.object_key not in json.dumps(ended.error)  # no internals in messages
    assert redrives(drain(aws, aws_resources.queue_url)) == []


# --- awaiting_upload past the upload's lifetime -----------------------------------------------


def test_an_abandoned_upload_ends_upload_expired_and_its_multipart_upload_is_aborted(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    make_sweeper: SweeperFactory,
) -> None:
    bucket = aws_resources.bucket_name
    job_id = new_job_id()
    key = f"uploads/{job_id}"
    upload_id = aws.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    abandoned = put_job(
        jobs_table,
        JobStatus.AWAITING_UPLOAD,
        quiet_for=UPLOAD_TTL + 60,
        job_id=job_id,
        upload_id=upload_id,
    )
    in_progress = put_job(jobs_table, JobStatus.AWAITING_UPLOAD, quiet_for=UPLOAD_TTL - 600)

    report = make_sweeper().run(plenty)

    assert (report.examined, report.upload_expired) == (1, 1)
    ended = stored(jobs_table, abandoned)
    assert ended.status is JobStatus.FAILED
    assert ended.error is not None and ended.error["code"] == "upload_expired"
    uploads = aws.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert upload_id not in {u["UploadId"] for u in uploads}
    assert stored(jobs_table, in_progress) == in_progress


def test_an_upload_completed_but_never_announced_is_re_driven_not_expired(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    make_sweeper: SweeperFactory,
) -> None:
    job = put_job(jobs_table, JobStatus.AWAITING_UPLOAD, quiet_for=UPLOAD_TTL + 60)
    put_object(aws, aws_resources, job)
    drain(aws, aws_resources.queue_url)

    report = make_sweeper().run(plenty)

    assert (report.redriven, report.upload_expired) == (1, 0)
    assert len(redrives(drain(aws, aws_resources.queue_url))) == 1
    assert stored(jobs_table, job).status is JobStatus.AWAITING_UPLOAD


# --- bounds ---------------------------------------------------------------------------------


def test_a_run_stops_at_its_job_limit_and_the_next_run_continues_oldest_first(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    make_sweeper: SweeperFactory,
) -> None:
    jobs = [
        put_job(jobs_table, JobStatus.UPLOADED, quiet_for=WAIT + 600 - 10 * n) for n in range(5)
    ]  # jobs[0] is the oldest

    first = make_sweeper(max_jobs_per_run=2).run(plenty)
    assert (first.examined, first.object_missing, first.truncated) == (2, 2, True)
    ended = {j.job_id for j in jobs if stored(jobs_table, j).status is JobStatus.FAILED}
    assert ended == {jobs[0].job_id, jobs[1].job_id}

    second = make_sweeper(max_jobs_per_run=2).run(plenty)
    assert second.examined == 2
    third = make_sweeper(max_jobs_per_run=2).run(plenty)
    assert (third.examined, third.truncated) == (1, False)
    assert all(stored(jobs_table, j).status is JobStatus.FAILED for j in jobs)


def test_a_run_starts_no_job_once_its_time_is_nearly_up(
    aws_resources: CreatedResources, jobs_table: JobsTable, make_sweeper: SweeperFactory
) -> None:
    jobs = [put_job(jobs_table, JobStatus.UPLOADED, quiet_for=WAIT + 60 + n) for n in range(2)]
    left = iter([30.0])  # time for one job, then 5 s: under the 10 s margin

    report = make_sweeper(safety_margin_seconds=10.0).run(lambda: next(left, 5.0))

    assert (report.examined, report.truncated) == (1, True)
    statuses = sorted(stored(jobs_table, j).status.value for j in jobs)
    assert statuses == ["failed", "uploaded"]
    report = make_sweeper(safety_margin_seconds=10.0).run(lambda: 9.0)
    assert (report.examined, report.truncated) == (0, True)


# --- the processor takes the re-driven message; the Lambda entry point ---------------------


def test_the_processor_finishes_a_re_driven_job_from_the_sweepers_message(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    upload_store: UploadStore,
    make_sweeper: SweeperFactory,
) -> None:
    from audiolift_core.settings import ProcessorSettings
    from audiolift_processor.handler import handle_event
    from audiolift_processor.processing import Processor

    job = put_job(jobs_table, JobStatus.PROCESSING, quiet_for=900, lease_left=-30)
    put_object(aws, aws_resources, job)
    drain(aws, aws_resources.queue_url)
    assert make_sweeper().run(plenty).redriven == 1
    response = aws.sqs.receive_message(QueueUrl=aws_resources.queue_url, AttributeNames=["All"])
    (message,) = response["Messages"]

    processor = Processor(
        ProcessorSettings(storage=upload_store_settings(aws_resources)),
        jobs_table,
        upload_store,
        aws.s3,
    )
    event = {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": aws_resources.queue_arn,
                "awsRegion": "us-east-1",
            }
        ]
    }
    assert handle_event(event, None, processor) == {"batchItemFailures": []}

    finished = stored(jobs_table, job)
    assert finished.status is JobStatus.COMPLETED, finished.error
    assert finished.result_key
    result = upload_store.get_json(finished.result_key)
    assert result["job_id"] == job.job_id


def upload_store_settings(resources: CreatedResources) -> StorageSettings:
    return StorageSettings(jobs_table=resources.table_name, upload_bucket=resources.bucket_name)


def test_the_handler_sweeps_on_the_scheduled_event_and_reports_metrics(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from audiolift_sweeper import handler as sweeper_handler
    from audiolift_sweeper.sweep import sweeper_metrics

    for name, value in {
        "JOBS_TABLE": aws_resources.table_name,
        "UPLOAD_BUCKET": aws_resources.bucket_name,
        "PROCESSING_QUEUE_URL": aws_resources.queue_url,
        "VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY),
        "MAX_RECEIVE_COUNT": str(RECEIVES),
        "POWERTOOLS_METRICS_NAMESPACE": "audiolift",
    }.items():
        monkeypatch.setenv(name, value)
    sweeper_handler.default_sweeper.cache_clear()
    job = put_job(jobs_table, JobStatus.UPLOADED, quiet_for=WAIT + 60)
    event = json.loads((ROOT / "events/eventbridge-scheduled-sweep.json").read_text())
    sweeper_metrics.clear_metrics()  # earlier tests' runs (never flushed: no handler)
    capsys.readouterr()

    try:
        report = sweeper_handler.handler(
            event,
            LocalLambdaContext(
                "SweeperFunction",
                timeout_seconds=55,
                memory_limit_in_mb=256,
                aws_request_id="sweep",
            ),
        )
    finally:
        sweeper_handler.default_sweeper.cache_clear()

    assert (report["examined"], report["object_missing"]) == (1, 1)
    assert stored(jobs_table, job).status is JobStatus.FAILED
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (metrics,) = emf
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "audiolift"
    assert metrics["service"] == "audiolift-sweeper"
    assert metrics["JobsObjectMissing"] in (1.0, [1.0])
    assert metrics["JobsRedriven"] in (0.0, [0.0])


def test_the_sweep_index_holds_unfinished_jobs_only(
    aws: AwsClients,
    aws_resources: CreatedResources,
    jobs_table: JobsTable,
) -> None:
    from audiolift_core.jobs_table import SWEEP_INDEX

    awaiting = put_job(jobs_table, JobStatus.AWAITING_UPLOAD, quiet_for=10)
    processing = put_job(jobs_table, JobStatus.PROCESSING, quiet_for=10, lease_left=60)
    finished = put_job(jobs_table, JobStatus.UPLOADED, quiet_for=10)
    jobs_table.transition(finished.job_id, JobStatus.CANCELLED)
    failed = put_job(jobs_table, JobStatus.PROCESSING, quiet_for=10, lease_left=-1)
    jobs_table.fail_stuck(failed, {"code": "stalled", "message": "m"}, now=time.time())
    jobs_table.claim(awaiting.job_id, object_etag="e", lease_token="t", lease_seconds=60)

    entries = aws.dynamodb.scan(TableName=aws_resources.table_name, IndexName=SWEEP_INDEX)
    indexed = {i["job_id"]["S"]: i["sweep_status"]["S"] for i in entries["Items"]}
    # The claimed job moved partition with its status; finished jobs left the index.
    assert indexed == {awaiting.job_id: "processing", processing.job_id: "processing"}
