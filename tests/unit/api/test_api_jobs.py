"""The /v1/jobs routes, and owner isolation on every job route: another owner's job is
404 (never 403) and nothing about it changes."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from audiolift_core.jobs import Job, JobStatus
from audiolift_core.storage import result_key
from audiolift_testkit import SMALL_PART_BYTES, Api

pytestmark = pytest.mark.timeout(120)

DOCUMENT = {"loudness": {"integrated_lufs": -23.1}, "peaks": [0.5, 0.25], "ok": True}


def complete_upload(api: Api, owner: str = "alice", size: int = 10) -> str:
    job_id = api.create_upload(owner, size=size)["job_id"]
    payload = os.urandom(size)
    api.upload_parts(job_id, payload)
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth(owner))
    assert response.status_code == 200, response.text
    return job_id


def finish(api: Api, job_id: str, *, document: Any = DOCUMENT) -> Job:
    """What the processor does: claim the job, store the result, record completion."""
    head = api.aws.s3.head_object(Bucket=api.bucket, Key=f"uploads/{job_id}")
    api.jobs.claim(job_id, object_etag=head["ETag"], lease_token="lease-1", lease_seconds=60)
    key = result_key(api.service.settings.storage.result_prefix, job_id)
    api.store.put_json(key, document)
    return api.jobs.transition(
        job_id,
        JobStatus.COMPLETED,
        lease_token="lease-1",
        set_fields={"result_key": key, "progress": 100, "summary": {"integrated_lufs": -23.1}},
        remove_fields=("lease_token", "lease_expires_at"),
    )


def error_code_of(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


# --- GET /v1/jobs/{id} -------------------------------------------------------------------


def test_get_job_shows_the_contract_fields(api: Api) -> None:
    job_id = api.create_upload(size=3 * SMALL_PART_BYTES, filename="a b.flac")["job_id"]
    response = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice"))
    assert response.status_code == 200
    view = response.json()
    assert view["job_id"] == job_id
    assert view["status"] == "awaiting_upload"
    assert view["progress"] == 0
    assert view["filename"] == "a b.flac"
    assert view["size"] == 3 * SMALL_PART_BYTES
    assert view["content_type"] == "audio/flac"
    assert view["created_at"] == view["updated_at"]
    assert "error" not in view or view["error"] is None
    assert "owner" not in view and "upload_id" not in view and "lease_token" not in view


def test_get_job_shows_the_phase_and_the_invocations_of_a_continued_analysis(api: Api) -> None:
    job_id = complete_upload(api)
    head = api.aws.s3.head_object(Bucket=api.bucket, Key=f"uploads/{job_id}")
    for lease in ("first", "second"):  # the second invocation continues the first's work
        api.jobs.claim(
            job_id,
            object_etag=head["ETag"],
            lease_token=lease,
            lease_seconds=-1 if lease == "first" else 60,
            keep_progress=True,
            phase="analyzing",
        )
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert (view["status"], view["phase"], view["invocations"]) == ("processing", "analyzing", 2)
    assert "checkpoint" not in view
    api.jobs.transition(job_id, JobStatus.CANCELLED, owner="alice")
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert (view["status"], view["phase"], view["invocations"]) == ("cancelled", None, 2)


def test_get_job_shows_the_failure(api: Api) -> None:
    job_id = complete_upload(api)
    api.jobs.transition(
        job_id,
        JobStatus.FAILED,
        set_fields={"error": {"code": "corrupt_audio", "message": "The file is damaged."}},
    )
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert view["status"] == "failed"
    assert view["error"]["code"] == "corrupt_audio"


def test_unknown_job_is_404(api: Api) -> None:
    response = api.client.get("/v1/jobs/" + "0" * 32, headers=api.auth("alice"))
    assert response.status_code == 404
    assert error_code_of(response) == "not_found"


# --- cross-owner isolation ---------------------------------------------------------------


def test_another_owners_job_is_404_on_every_job_route(api: Api) -> None:
    open_id = api.create_upload("alice", size=2 * SMALL_PART_BYTES)["job_id"]
    done_id = complete_upload(api, "alice")
    finish(api, done_id)
    before = {job_id: api.jobs.get(job_id) for job_id in (open_id, done_id)}
    open_job = before[open_id]
    assert open_job is not None
    upload_id = open_job.upload_id
    calls = [
        ("POST", f"/v1/uploads/{open_id}/parts", {"part_numbers": [1]}),
        ("GET", f"/v1/uploads/{open_id}/parts", None),
        ("POST", f"/v1/uploads/{open_id}/complete", {}),
        ("DELETE", f"/v1/uploads/{open_id}", None),
        ("GET", f"/v1/jobs/{open_id}", None),
        ("GET", f"/v1/jobs/{done_id}", None),
        ("GET", f"/v1/jobs/{done_id}/result", None),
        ("DELETE", f"/v1/jobs/{open_id}", None),
        ("DELETE", f"/v1/jobs/{done_id}", None),
        # The Uppy routes: bob knows alice's key and upload id, still 404.
        ("GET", f"/s3/multipart/{upload_id}?key=uploads/{open_id}", None),
        ("GET", f"/s3/multipart/{upload_id}/1?key=uploads/{open_id}", None),
        (
            "POST",
            f"/s3/multipart/{upload_id}/complete?key=uploads/{open_id}",
            {"parts": [{"PartNumber": 1, "ETag": "x"}]},
        ),
        ("DELETE", f"/s3/multipart/{upload_id}?key=uploads/{open_id}", None),
    ]
    for method, path, body in calls:
        response = api.client.request(method, path, json=body, headers=api.auth("bob"))
        assert response.status_code == 404, (method, path, response.text)
        assert error_code_of(response) == "not_found"
        # Same answer as for a job that does not exist at all.
        assert "alice" not in response.text
    after = {job_id: api.jobs.get(job_id) for job_id in (open_id, done_id)}
    assert after == before  # nothing changed
    assert len(api.aws.s3.list_multipart_uploads(Bucket=api.bucket).get("Uploads", [])) == 1
    assert api.aws.s3.head_object(Bucket=api.bucket, Key=f"uploads/{done_id}")
    assert api.client.get("/v1/jobs", headers=api.auth("bob")).json()["jobs"] == []


# --- GET /v1/jobs ------------------------------------------------------------------------


def test_list_jobs_newest_first_paged_and_only_the_callers(api: Api) -> None:
    mine = [api.create_upload("alice")["job_id"] for _ in range(5)]
    theirs = api.create_upload("bob")["job_id"]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = api.client.get("/v1/jobs", params=params, headers=api.auth("alice"))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["jobs"]) <= 2
        seen.extend(job["job_id"] for job in page["jobs"])
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 10
    assert seen == list(reversed(mine))
    assert theirs not in seen
    created = [
        job["created_at"]
        for job in api.client.get("/v1/jobs", headers=api.auth("alice")).json()["jobs"]
    ]
    assert created == sorted(created, reverse=True)


def test_list_jobs_by_status(api: Api) -> None:
    waiting = api.create_upload("alice")["job_id"]
    uploaded = complete_upload(api, "alice")
    cancelled = api.create_upload("alice")["job_id"]
    api.client.delete(f"/v1/uploads/{cancelled}", headers=api.auth("alice"))
    for _ in range(3):  # more awaiting jobs than the page, to make the filter work for it
        api.create_upload("alice")

    def listed(status: str, limit: int = 20) -> list[str]:
        response = api.client.get(
            "/v1/jobs", params={"status": status, "limit": limit}, headers=api.auth("alice")
        )
        assert response.status_code == 200, response.text
        return [job["job_id"] for job in response.json()["jobs"]]

    assert listed("uploaded") == [uploaded]
    assert listed("cancelled") == [cancelled]
    assert listed("uploaded", limit=1) == [uploaded]
    assert waiting in listed("awaiting_upload")
    assert len(listed("awaiting_upload")) == 4
    assert listed("completed") == []


@pytest.mark.parametrize(
    "params", [{"status": "done"}, {"limit": 0}, {"limit": 101}, {"limit": "x"}]
)
def test_list_jobs_bad_parameters_are_4xx(api: Api, params: dict[str, Any]) -> None:
    response = api.client.get("/v1/jobs", params=params, headers=api.auth("alice"))
    assert 400 <= response.status_code < 500
    assert error_code_of(response)


def test_a_cursor_from_another_owner_is_refused(api: Api) -> None:
    for _ in range(3):
        api.create_upload("bob")
    bobs = api.client.get("/v1/jobs", params={"limit": 1}, headers=api.auth("bob")).json()
    assert bobs["next_cursor"]
    response = api.client.get(
        "/v1/jobs", params={"cursor": bobs["next_cursor"]}, headers=api.auth("alice")
    )
    assert response.status_code == 400
    assert error_code_of(response) == "invalid_request"


def _cursor(key: Any) -> str:
    raw = json.dumps(key).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        _cursor(["a list"]),
        _cursor({"owner": {"S": "alice"}}),  # the right owner, but not a key the index has
        _cursor({"owner": {"S": "alice"}, "created_at": {"N": "1"}, "job_id": {"S": "x"}}),
        _cursor({"owner": {"S": "alice"}, "created_at": {"S": "x"}, "job_id": {"S": "x"}, "z": 1}),
        _cursor({"owner": "alice"}),
    ],
)
def test_a_forged_cursor_is_400_never_5xx(api: Api, cursor: str) -> None:
    api.create_upload("alice")
    response = api.client.get("/v1/jobs", params={"cursor": cursor}, headers=api.auth("alice"))
    assert response.status_code == 400, response.text
    assert error_code_of(response) == "invalid_request"


# --- GET /v1/jobs/{id}/result ------------------------------------------------------------


def test_result_is_409_until_completed(api: Api) -> None:
    job_id = api.create_upload()["job_id"]
    response = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.auth("alice"))
    assert response.status_code == 409
    assert response.json()["error"]["details"]["status"] == "awaiting_upload"
    done_id = complete_upload(api)
    uploaded = api.client.get(f"/v1/jobs/{done_id}/result", headers=api.auth("alice"))
    assert uploaded.status_code == 409


def test_result_of_a_completed_job_is_the_document(api: Api) -> None:
    job_id = complete_upload(api)
    finish(api, job_id)
    response = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.auth("alice"))
    assert response.status_code == 200
    assert response.json() == DOCUMENT
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("alice")).json()
    assert view["status"] == "completed" and view["progress"] == 100
    assert view["summary"] == {"integrated_lufs": -23.1}


def test_result_expired_before_its_job_says_so(api: Api) -> None:
    """The bucket's lifecycle can expire a result before the table's TTL removes its job
    (TTL deletes up to days late): the answer says what happened, not 'No such object.'"""
    job_id = complete_upload(api)
    finish(api, job_id)
    api.aws.s3.delete_object(Bucket=api.bucket, Key=result_key("results/", job_id))
    response = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.auth("alice"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "no longer stored" in error["message"] and job_id in error["message"]
    assert "results/" not in error["message"]


def test_large_result_is_a_303_to_a_presigned_get(api: Api) -> None:
    from dataclasses import replace

    api.service.settings = replace(api.service.settings, result_inline_max_bytes=10)
    job_id = complete_upload(api)
    finish(api, job_id)
    response = api.client.get(
        f"/v1/jobs/{job_id}/result", headers=api.auth("alice"), follow_redirects=False
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert f"results/{job_id}.json" in location and "X-Amz-Signature=" in location
    assert "X-Amz-Expires=300" in location


# --- DELETE /v1/jobs/{id} ----------------------------------------------------------------


def test_delete_unfinished_job_cancels_it(api: Api) -> None:
    job_id = api.create_upload()["job_id"]
    response = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth("alice"))
    assert response.status_code == 202
    assert response.json() == {"job_id": job_id, "status": "cancelled"}
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.CANCELLED
    assert api.aws.s3.list_multipart_uploads(Bucket=api.bucket).get("Uploads", []) == []


def test_delete_processing_job_cancels_it_and_deletes_its_audio(api: Api) -> None:
    job_id = complete_upload(api)
    keep_id = complete_upload(api)  # another job's audio stays
    api.jobs.claim(job_id, object_etag="e", lease_token="t", lease_seconds=60)
    response = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth("alice"))
    assert response.status_code == 202
    assert api.jobs.get(job_id).status is JobStatus.CANCELLED
    keys = [o["Key"] for o in api.aws.s3.list_objects_v2(Bucket=api.bucket).get("Contents", [])]
    assert keys == [f"uploads/{keep_id}"]


def test_cancelling_an_uploaded_job_deletes_its_audio(api: Api) -> None:
    job_id = complete_upload(api)
    assert api.jobs.get(job_id).status is JobStatus.UPLOADED
    response = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth("alice"))
    assert response.status_code == 202
    assert "Contents" not in api.aws.s3.list_objects_v2(Bucket=api.bucket, Prefix="uploads/")


def test_delete_finished_job_removes_files_and_record(api: Api) -> None:
    job_id = complete_upload(api)
    finish(api, job_id)
    keep_id = complete_upload(api)  # another job's files stay
    response = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth("alice"))
    assert response.status_code == 204
    assert response.content == b""
    assert api.jobs.get(job_id) is None
    keys = [o["Key"] for o in api.aws.s3.list_objects_v2(Bucket=api.bucket).get("Contents", [])]
    assert keys == [f"uploads/{keep_id}"]
    again = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth("alice"))
    assert again.status_code == 404


def test_delete_cancelled_job_removes_the_record(api: Api) -> None:
    job_id = api.create_upload()["job_id"]
    assert api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth("alice")).status_code == 202
    assert api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth("alice")).status_code == 204
    assert api.jobs.get(job_id) is None


# --- POST /v1/jobs/{id}/cancel -------------------------------------------------------------


def test_cancel_route_cancels_an_unfinished_job_and_aborts_its_upload(api: Api) -> None:
    job_id = api.create_upload()["job_id"]
    response = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth("alice"))
    assert response.status_code == 202
    assert response.json() == {"job_id": job_id, "status": "cancelled"}
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.CANCELLED
    assert api.aws.s3.list_multipart_uploads(Bucket=api.bucket).get("Uploads", []) == []


def test_cancel_route_leaves_a_finished_job_and_its_files_alone(api: Api) -> None:
    job_id = complete_upload(api)
    finish(api, job_id)
    response = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth("alice"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED
    keys = [o["Key"] for o in api.aws.s3.list_objects_v2(Bucket=api.bucket).get("Contents", [])]
    assert f"uploads/{job_id}" in keys


def test_cancel_route_is_404_for_another_owner(api: Api) -> None:
    job_id = api.create_upload()["job_id"]
    response = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth("bob"))
    assert response.status_code == 404
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.AWAITING_UPLOAD


def test_the_job_view_shows_only_fields_of_the_job_record() -> None:
    """JobView is built from the record (from_attributes): a view field the record lacks
    would fail on every request, so it is caught here first."""
    from dataclasses import fields

    from audiolift_api.models import JobView

    derived = {name for name, value in vars(Job).items() if isinstance(value, property)}
    assert set(JobView.model_fields) <= {f.name for f in fields(Job)} | derived
    assert not hasattr(Job, "public")


def test_limits_need_a_caller_and_state_the_contract(api: Api) -> None:
    assert api.client.get("/v1/limits").status_code == 401
    response = api.client.get("/v1/limits", headers=api.auth("alice"))
    assert response.status_code == 200, response.text
    document = response.json()
    assert set(document) == {
        "max_upload_bytes", "min_part_bytes", "max_part_bytes", "preferred_part_bytes",
        "max_parts", "processor_timeout_seconds", "formats", "cost",
    }  # fmt: skip
    assert document["max_upload_bytes"] == api.service.settings.max_upload_bytes
    assert {
        "name",
        "label",
        "extensions",
        "analysis_mib_per_second",
        "max_analysable_bytes",
    } <= set(document["formats"][0])
    assert {"usd_per_gib_analysed", "price_per_gb_second", "price_date", "memory_mb",
            "architecture"} <= set(document["cost"])  # fmt: skip
