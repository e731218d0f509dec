"""The job state machine: the rules (pure), then the same rules as DynamoDB conditional
writes (moto), the processor's lease, and the races between the API and the processor
and between complete and cancel (threads, with the interleavings forced)."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from audiolift_core.errors import Conflict, JobCancelled, NotFound
from audiolift_core.jobs import (
    ALLOWED_SOURCES,
    FINISHED,
    Job,
    JobStatus,
    can_transition,
    isoformat,
    new_job_id,
    utc_now,
)
from audiolift_core.jobs_table import ClaimRefused, JobsTable, claim_condition
from audiolift_testkit import SMALL_PART_BYTES, Api, AwsClients

S = JobStatus
# The specification, written out independently of ALLOWED_SOURCES: (from, to) pairs.
ALLOWED = {
    (S.AWAITING_UPLOAD, S.UPLOADED),
    (S.AWAITING_UPLOAD, S.PROCESSING),  # S3's event reached the processor first
    (S.UPLOADED, S.PROCESSING),
    (S.PROCESSING, S.COMPLETED),
    (S.AWAITING_UPLOAD, S.FAILED),
    (S.UPLOADED, S.FAILED),
    (S.PROCESSING, S.FAILED),
    (S.AWAITING_UPLOAD, S.CANCELLED),
    (S.UPLOADED, S.CANCELLED),
    (S.PROCESSING, S.CANCELLED),
}
RANK = {
    S.AWAITING_UPLOAD: 0,
    S.UPLOADED: 1,
    S.PROCESSING: 2,
    S.COMPLETED: 3,
    S.FAILED: 3,
    S.CANCELLED: 3,
}
ALL_PAIRS = list(itertools.product(JobStatus, JobStatus))


# --- pure --------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=lambda s: s.value)
def test_can_transition_matches_the_specification(source: S, target: S) -> None:
    assert can_transition(source, target) == ((source, target) in ALLOWED)


def test_nothing_moves_backwards_and_finished_is_final() -> None:
    for target, sources in ALLOWED_SOURCES.items():
        for source in sources:
            assert RANK[target] > RANK[source], (source, target)
            assert source not in FINISHED
    assert ALLOWED_SOURCES[S.AWAITING_UPLOAD] == frozenset()  # only ever created


# --- the same rules as conditional writes ----------------------------------------------


def make_job(jobs: JobsTable, status: S = S.AWAITING_UPLOAD, owner: str = "alice") -> Job:
    now = isoformat(utc_now())
    job_id = new_job_id()
    return jobs.create(
        Job(
            job_id=job_id,
            owner=owner,
            status=status,
            filename="take.wav",
            size=100,
            content_type="audio/wav",
            object_key=f"uploads/{job_id}",
            created_at=now,
            updated_at=now,
            part_size=100,
            part_count=1,
            upload_id="upload-1",
        )
    )


def raw_item(aws: AwsClients, table: str, job_id: str) -> dict[str, Any]:
    item: dict[str, Any] = aws.dynamodb.get_item(
        TableName=table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    return item


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=lambda s: s.value)
def test_transition_in_dynamodb(
    jobs_table: JobsTable, aws: AwsClients, aws_resources: Any, source: S, target: S
) -> None:
    job = make_job(jobs_table, source)
    before = raw_item(aws, aws_resources.table_name, job.job_id)
    if (source, target) in ALLOWED:
        moved = jobs_table.transition(job.job_id, target, owner="alice")
        assert moved.status is target
        stored = raw_item(aws, aws_resources.table_name, job.job_id)
        assert stored["status"] == {"S": target.value}
        assert stored["updated_at"]["S"] >= before["updated_at"]["S"]
    else:
        with pytest.raises(Conflict) as refused:
            jobs_table.transition(job.job_id, target, owner="alice")
        if ALLOWED_SOURCES[target]:  # else refused before any write: nothing enters it
            assert refused.value.details == {"status": source.value}
        assert raw_item(aws, aws_resources.table_name, job.job_id) == before


def test_transition_of_another_owners_or_a_missing_job_is_not_found(
    jobs_table: JobsTable, aws: AwsClients, aws_resources: Any
) -> None:
    job = make_job(jobs_table)
    before = raw_item(aws, aws_resources.table_name, job.job_id)
    with pytest.raises(NotFound):
        jobs_table.transition(job.job_id, S.CANCELLED, owner="bob")
    assert raw_item(aws, aws_resources.table_name, job.job_id) == before
    with pytest.raises(NotFound):
        jobs_table.transition("0" * 32, S.CANCELLED)


def test_transition_narrowed_by_sources(jobs_table: JobsTable) -> None:
    job = make_job(jobs_table, S.UPLOADED)
    with pytest.raises(Conflict):
        jobs_table.transition(job.job_id, S.CANCELLED, sources={S.AWAITING_UPLOAD})
    with pytest.raises(Conflict):  # no state can reach UPLOADED from COMPLETED
        jobs_table.transition(job.job_id, S.UPLOADED, sources={S.COMPLETED})
    assert jobs_table.get(job.job_id).status is S.UPLOADED  # type: ignore[union-attr]


# --- the processor's lease ---------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def leased_table(aws: AwsClients, aws_resources: Any, clock: Clock) -> JobsTable:
    return JobsTable(aws.dynamodb, aws_resources.table_name, clock=clock)


def test_claim_from_awaiting_upload(leased_table: JobsTable) -> None:
    """S3's event can reach the processor before the API records the upload."""
    job = make_job(leased_table, S.AWAITING_UPLOAD)
    claimed = leased_table.claim(job.job_id, object_etag='"e1"', lease_token="a", lease_seconds=60)
    assert claimed.status is S.PROCESSING
    assert claimed.lease_token == "a" and claimed.attempts == 1
    assert claimed.lease_expires_at == pytest.approx(1_000_060.0)
    assert claimed.object_etag == '"e1"'


def test_claim_refused_for_a_live_lease_and_taken_after_expiry(
    leased_table: JobsTable, clock: Clock
) -> None:
    job = make_job(leased_table, S.UPLOADED)
    leased_table.claim(job.job_id, object_etag="e", lease_token="first", lease_seconds=60)
    clock.now += 59
    with pytest.raises(ClaimRefused) as refused:
        leased_table.claim(job.job_id, object_etag="e", lease_token="second", lease_seconds=60)
    assert refused.value.job is not None and refused.value.job.lease_token == "first"
    clock.now += 2  # the first invocation's lease ran out (it crashed)
    taken = leased_table.claim(job.job_id, object_etag="e", lease_token="second", lease_seconds=60)
    assert taken.lease_token == "second" and taken.attempts == 2
    # The crashed invocation, should it wake up, has lost the job.
    with pytest.raises(Conflict):
        leased_table.heartbeat(job.job_id, lease_token="first", progress=50, lease_seconds=60)
    with pytest.raises(Conflict):
        leased_table.transition(job.job_id, S.COMPLETED, lease_token="first")
    done = leased_table.transition(job.job_id, S.COMPLETED, lease_token="second")
    assert done.status is S.COMPLETED


@pytest.mark.parametrize("status", sorted(FINISHED))
def test_claim_refused_once_finished(leased_table: JobsTable, status: S) -> None:
    job = make_job(leased_table, status)
    with pytest.raises(ClaimRefused) as refused:
        leased_table.claim(job.job_id, object_etag="e", lease_token="t", lease_seconds=60)
    assert refused.value.job is not None and refused.value.job.status is status


def test_claim_of_a_missing_job(leased_table: JobsTable) -> None:
    with pytest.raises(ClaimRefused) as refused:
        leased_table.claim("f" * 32, object_etag="e", lease_token="t", lease_seconds=60)
    assert refused.value.job is None


def test_heartbeat_records_progress_then_sees_the_cancel(
    leased_table: JobsTable, clock: Clock
) -> None:
    job = make_job(leased_table, S.UPLOADED)
    leased_table.claim(job.job_id, object_etag="e", lease_token="t", lease_seconds=60)
    clock.now += 30
    beat = leased_table.heartbeat(job.job_id, lease_token="t", progress=140, lease_seconds=60)
    assert beat.progress == 99  # capped: 100 only with the result
    assert beat.lease_expires_at == pytest.approx(clock.now + 60)
    leased_table.transition(job.job_id, S.CANCELLED, owner="alice")  # the owner cancels
    with pytest.raises(JobCancelled):
        leased_table.heartbeat(job.job_id, lease_token="t", progress=60, lease_seconds=60)
    with pytest.raises(Conflict):  # and cannot complete it either
        leased_table.transition(job.job_id, S.COMPLETED, lease_token="t")
    assert leased_table.get(job.job_id).status is S.CANCELLED  # type: ignore[union-attr]


# --- races between API calls and the processor (moto, threads, forced order) -----------


def uploaded_parts(api: Api, size: int = 2 * SMALL_PART_BYTES) -> tuple[str, bytes]:
    payload = os.urandom(size)
    job_id = api.create_upload(size=size)["job_id"]
    api.upload_parts(job_id, payload)
    return job_id, payload


def pause_after_s3_complete(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Make the API's complete stop between S3's completion and its DynamoDB write."""
    s3_done, resume = threading.Event(), threading.Event()
    original = api.store.complete

    def complete(*args: Any, **kwargs: Any) -> str:
        etag = original(*args, **kwargs)
        s3_done.set()
        assert resume.wait(30)
        return etag

    monkeypatch.setattr(api.store, "complete", complete)
    return s3_done, resume


def run_in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def object_exists(api: Api, key: str) -> bool:
    return "Contents" in api.aws.s3.list_objects_v2(Bucket=api.bucket, Prefix=key)


def test_cancel_wins_after_s3_completed_deletes_the_audio(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _ = uploaded_parts(api)
    s3_done, resume = pause_after_s3_complete(api, monkeypatch)
    complete, completed = run_in_thread(
        lambda: api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    )
    assert s3_done.wait(30)
    assert object_exists(api, f"uploads/{job_id}")  # S3 has completed the object
    cancel = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth("alice"))
    resume.set()
    complete.join(30)
    assert cancel.status_code == 202
    assert completed[0].status_code == 409  # the loser
    assert completed[0].json()["error"]["details"] == {"status": "cancelled"}
    assert api.jobs.get(job_id).status is S.CANCELLED
    assert not object_exists(api, f"uploads/{job_id}")  # the audio is not kept


def test_abort_wins_before_complete_reads_the_parts(api: Api) -> None:
    job_id, _ = uploaded_parts(api)
    first, aborted = run_in_thread(
        lambda: api.client.delete(f"/v1/uploads/{job_id}", headers=api.auth("alice"))
    )
    first.join(30)
    second, completed = run_in_thread(
        lambda: api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    )
    second.join(30)
    assert aborted[0].status_code == 204
    assert completed[0].status_code == 409
    assert api.jobs.get(job_id).status is S.CANCELLED
    assert not object_exists(api, f"uploads/{job_id}")
    assert api.aws.s3.list_multipart_uploads(Bucket=api.bucket).get("Uploads", []) == []


def test_abort_arriving_after_the_complete_is_recorded_is_409(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The abort read the job while it was awaiting its upload; the complete's write lands
    first; the abort's conditional write must then fail (no cancel of an uploaded job
    through the upload route)."""
    job_id, payload = uploaded_parts(api)
    stale = api.jobs.get(job_id)
    assert stale is not None
    assert (
        api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice")).status_code
        == 200
    )
    with pytest.raises(Conflict):
        api.service.abort_upload(stale)  # what the abort route does with its (stale) read
    assert api.jobs.get(job_id).status is S.UPLOADED
    stored = api.aws.s3.get_object(Bucket=api.bucket, Key=f"uploads/{job_id}")["Body"].read()
    assert stored == payload


def test_processor_claims_before_the_api_records_the_upload(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _ = uploaded_parts(api)
    s3_done, resume = pause_after_s3_complete(api, monkeypatch)
    complete, completed = run_in_thread(
        lambda: api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    )
    assert s3_done.wait(30)
    head = api.aws.s3.head_object(Bucket=api.bucket, Key=f"uploads/{job_id}")
    claimed = api.jobs.claim(job_id, object_etag=head["ETag"], lease_token="p", lease_seconds=60)
    assert claimed.status is S.PROCESSING
    resume.set()
    complete.join(30)
    assert completed[0].status_code == 200
    answer = completed[0].json()  # the job view, as the processor left it
    assert (answer["job_id"], answer["status"]) == (job_id, "processing")
    job = api.jobs.get(job_id)
    assert job is not None and job.status is S.PROCESSING and job.lease_token == "p"
    assert object_exists(api, f"uploads/{job_id}")


def test_the_claim_condition_is_derived_from_the_state_machine() -> None:
    """The states claim accepts are ALLOWED_SOURCES[PROCESSING] (plus PROCESSING under a
    lease that ran out): a change to the table changes the condition, never drifts."""
    condition, values = claim_condition(1.0)
    named = {v["S"] for k, v in values.items() if k.startswith(":claimable")}
    assert named == {s.value for s in ALLOWED_SOURCES[S.PROCESSING]}
    assert "#status = :processing AND lease_expires_at < :now" in condition


@pytest.mark.parametrize("status", sorted(set(S) - {S.PROCESSING}))
def test_claim_is_allowed_exactly_from_the_states_processing_may_be_entered_from(
    leased_table: JobsTable, status: S
) -> None:
    job = make_job(leased_table, status)
    if status in ALLOWED_SOURCES[S.PROCESSING]:
        claimed = leased_table.claim(job.job_id, object_etag="e", lease_token="t", lease_seconds=9)
        assert claimed.status is S.PROCESSING
    else:
        with pytest.raises(ClaimRefused):
            leased_table.claim(job.job_id, object_etag="e", lease_token="t", lease_seconds=9)
        assert (current := leased_table.get(job.job_id)) and current.status is status
