"""The DynamoDB adapter beyond the state machine: records round-trip, listing pages past
the status filter, deletion of finished jobs only, and errors translated at the boundary."""

from __future__ import annotations

import math
from typing import Any

import pytest
from audiolift_core.errors import AudioliftError, Conflict, InvalidRequest, NotFound
from audiolift_core.jobs import Job, JobStatus, isoformat, new_job_id, utc_now
from audiolift_core.jobs_table import JobsTable, job_from_item, job_to_item, to_dynamo
from audiolift_testkit import AwsClients


def make(jobs: JobsTable, owner: str = "alice", status: JobStatus = JobStatus.UPLOADED) -> Job:
    job_id = new_job_id()
    now = isoformat(utc_now())
    return jobs.create(
        Job(
            job_id=job_id, owner=owner, status=status, filename="t.wav", size=10,
            content_type="audio/wav", object_key=f"uploads/{job_id}", created_at=now,
            updated_at=now, part_size=10, part_count=1,
        )
    )  # fmt: skip


def test_round_trip_with_nested_numbers(jobs_table: JobsTable) -> None:
    job = make(jobs_table)
    summary = {"integrated_lufs": -23.25, "channels": 2, "peaks": [0.5, 1.0], "ok": True}
    done = jobs_table.transition(
        job.job_id, JobStatus.PROCESSING, set_fields={"summary": summary, "progress": 50}
    )
    assert done.summary == summary and done.progress == 50
    assert jobs_table.get(job.job_id) == done
    assert isinstance(done.summary["channels"], int)


def test_unknown_attributes_are_kept_aside(jobs_table: JobsTable) -> None:
    job = make(jobs_table)
    item = job_to_item(job)
    item["added_later"] = {"S": "x"}
    restored = job_from_item(item)
    assert restored.extra == {"added_later": "x"}
    assert "extra" not in job_to_item(restored)


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(ValueError):
        to_dynamo({"lufs": math.inf})
    with pytest.raises(ValueError):
        to_dynamo(math.nan)


def test_a_job_id_is_created_once(jobs_table: JobsTable) -> None:
    job = make(jobs_table)
    with pytest.raises(Conflict):
        jobs_table.create(job)


def test_get_owned(jobs_table: JobsTable) -> None:
    job = make(jobs_table, owner="alice")
    assert jobs_table.get_owned(job.job_id, "alice").job_id == job.job_id
    with pytest.raises(NotFound):
        jobs_table.get_owned(job.job_id, "bob")
    with pytest.raises(NotFound):
        jobs_table.get_owned("nope", "alice")


def test_listing_fills_pages_past_the_status_filter(jobs_table: JobsTable) -> None:
    """DynamoDB's Limit counts items read before the filter: a page of 'failed' jobs
    must keep reading until it is full (or the owner's jobs run out)."""
    failed = []
    for index in range(12):
        job = make(jobs_table, status=JobStatus.FAILED if index % 4 == 0 else JobStatus.UPLOADED)
        if job.status is JobStatus.FAILED:
            failed.append(job.job_id)
    make(jobs_table, owner="bob", status=JobStatus.FAILED)
    page = jobs_table.list_by_owner("alice", status=JobStatus.FAILED, limit=2)
    assert [j.job_id for j in page.jobs] == failed[::-1][:2]
    assert page.next_cursor
    rest = jobs_table.list_by_owner(
        "alice", status=JobStatus.FAILED, limit=2, cursor=page.next_cursor
    )
    assert [j.job_id for j in rest.jobs] == failed[::-1][2:]
    everything = jobs_table.list_by_owner("alice", limit=100)
    assert len(everything.jobs) == 12 and everything.next_cursor is None


def test_delete_only_finished_jobs_of_the_owner(
    jobs_table: JobsTable, aws: AwsClients, aws_resources: Any
) -> None:
    running = make(jobs_table, status=JobStatus.PROCESSING)
    with pytest.raises(Conflict):
        jobs_table.delete(running.job_id, owner="alice")
    done = make(jobs_table, status=JobStatus.COMPLETED)
    with pytest.raises(NotFound):
        jobs_table.delete(done.job_id, owner="bob")
    jobs_table.delete(done.job_id, owner="alice")
    assert "Item" not in aws.dynamodb.get_item(
        TableName=aws_resources.table_name, Key={"job_id": {"S": done.job_id}}
    )
    assert jobs_table.get(running.job_id) is not None
    with pytest.raises(NotFound):
        jobs_table.delete(done.job_id, owner="alice")


def test_the_table_is_made_from_the_template(aws: AwsClients, aws_resources: Any) -> None:
    table = aws.dynamodb.describe_table(TableName=aws_resources.table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_owner", "by_status"}  # by_status: the sweeper's
    index = indexes["by_owner"]
    assert index["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    ttl = aws.dynamodb.describe_time_to_live(TableName=aws_resources.table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "purge_at"


def test_a_missing_table_is_an_error_not_a_crash(aws: AwsClients) -> None:
    jobs = JobsTable(aws.dynamodb, "no-such-table")
    with pytest.raises(AudioliftError) as raised:
        jobs.get("x")
    assert not isinstance(raised.value, InvalidRequest | NotFound)
