"""Jobs through the SDK against the fake API: polling, results, listing, cancelling,
errors and configuration."""

from __future__ import annotations

import httpx
import pytest
from audiolift import (
    AuthenticationError,
    Client,
    ConfigurationError,
    ConflictError,
    Job,
    JobCancelledError,
    JobFailedError,
    NotFoundError,
    RetryConfig,
    ServerError,
    WaitTimeoutError,
)
from audiolift._retry import retry_after_seconds
from sdk_fakes import API_KEY, API_URL, FakeCloud, answers, error, is_api

DOCUMENT = {
    "format": {"sample_rate": 48000, "channels": 2, "duration_seconds": 180.0},
    "loudness": {"integrated_lufs": -16.2, "loudness_range_lu": 6.1, "true_peak_dbtp": -1.0},
}


def test_wait_polls_with_backoff_until_completed(
    client: Client, cloud: FakeCloud, sleeps: list[float]
) -> None:
    stored = cloud.add_job(status="uploaded")
    stored.script = [
        ("uploaded", 0, None),
        ("processing", 10, None),
        ("processing", 60, None),
        ("processing", 90, None),
        ("completed", 100, None),
    ]
    seen: list[tuple[str, int]] = []

    job = client.get_job(stored.job_id).wait(
        on_progress=lambda j: seen.append((j.status, j.progress))
    )

    assert job.status == "completed"
    assert seen[-3:] == [("processing", 60), ("processing", 90), ("completed", 100)]
    # First poll is the get_job's refresh; pauses grow by 1.5x from 0.5 s.
    assert sleeps == [0.5, 0.75, 1.125]


def test_wait_backoff_is_capped(client: Client, cloud: FakeCloud, sleeps: list[float]) -> None:
    stored = cloud.add_job(status="processing")
    stored.script = [("processing", 5, None)] * 12 + [("completed", 100, None)]
    client.get_job(stored.job_id).wait(max_poll_interval=2.0)
    assert max(sleeps) == 2.0


def test_wait_raises_the_jobs_error_when_it_fails(client: Client, cloud: FakeCloud) -> None:
    stored = cloud.add_job(status="processing")
    reason = {"code": "corrupt_audio", "message": "The WAV data chunk is cut short."}
    stored.script = [("processing", 40, None), ("failed", 40, reason)]
    with pytest.raises(JobFailedError) as caught:
        client.get_job(stored.job_id).wait()
    assert caught.value.code == "corrupt_audio"
    assert "cut short" in caught.value.message
    assert isinstance(caught.value.job, Job)
    assert caught.value.job.status == "failed"


def test_wait_on_a_cancelled_job(client: Client, cloud: FakeCloud) -> None:
    stored = cloud.add_job(status="cancelled")
    with pytest.raises(JobCancelledError):
        client.get_job(stored.job_id).wait()


def test_wait_times_out(client: Client, cloud: FakeCloud, sleeps: list[float]) -> None:
    stored = cloud.add_job(status="processing", progress=30)
    with pytest.raises(WaitTimeoutError) as caught:
        client.get_job(stored.job_id).wait(timeout=3.0)
    assert isinstance(caught.value, TimeoutError)
    assert "still processing (30%)" in caught.value.message
    assert sum(sleeps) == pytest.approx(3.0)


def test_result_inline(client: Client, cloud: FakeCloud) -> None:
    stored = cloud.add_job(result=DOCUMENT)
    assert client.get_job(stored.job_id).result() == DOCUMENT


def test_result_through_a_redirect_is_fetched_without_the_api_key(
    client: Client, cloud: FakeCloud
) -> None:
    stored = cloud.add_job(result=DOCUMENT, result_via_redirect=True)
    assert client.result(stored.job_id) == DOCUMENT
    fetched = [r for r in cloud.requests if r.url.path.startswith("/bucket/results/")]
    assert len(fetched) == 1
    assert "authorization" not in fetched[0].headers


def test_result_of_an_unfinished_job_is_a_conflict(client: Client, cloud: FakeCloud) -> None:
    stored = cloud.add_job(status="processing")
    with pytest.raises(ConflictError) as caught:
        client.result(stored.job_id)
    assert (caught.value.status, caught.value.code) == (409, "conflict")


def test_jobs_follows_cursors(client: Client, cloud: FakeCloud) -> None:
    made = [cloud.add_job(status="completed" if i % 2 else "failed") for i in range(5)]
    listed = list(client.jobs(page_size=2))
    assert [j.job_id for j in listed] == [j.job_id for j in reversed(made)]  # newest first
    assert len(cloud.api_requests("GET", "/v1/jobs")) == 3
    assert [j.job_id for j in client.jobs(limit=3, page_size=2)] == [
        j.job_id for j in reversed(made)
    ][:3]
    assert {j.status for j in client.jobs(status="failed")} == {"failed"}


def test_cancel_an_unfinished_job(client: Client, cloud: FakeCloud) -> None:
    stored = cloud.add_job(status="processing")
    job = client.cancel(stored.job_id)
    assert job.status == "cancelled"
    assert cloud.jobs[stored.job_id].status == "cancelled"
    assert cloud.api_requests("POST", f"/v1/jobs/{stored.job_id}/cancel")


def test_cancel_an_upload_in_progress_cancels_it_without_deleting(
    client: Client, cloud: FakeCloud
) -> None:
    stored = cloud.add_job(status="awaiting_upload")
    assert client.cancel(stored.job_id).status == "cancelled"
    assert cloud.api_requests("POST", f"/v1/jobs/{stored.job_id}/cancel")
    assert not cloud.api_requests("DELETE", ".*")


def test_cancel_leaves_a_finished_job_and_its_result_alone(
    client: Client, cloud: FakeCloud
) -> None:
    stored = cloud.add_job(status="completed", result=DOCUMENT)
    with pytest.raises(ConflictError, match="already completed"):
        client.cancel(stored.job_id)
    assert stored.job_id in cloud.jobs
    assert not cloud.api_requests("DELETE", ".*")


def test_cancel_racing_a_completing_job_does_not_delete_it(
    client: Client, cloud: FakeCloud
) -> None:
    stored = cloud.add_job(status="awaiting_upload")

    def finished_meanwhile() -> None:
        stored.status = "completed"

    # The job finishes just before the cancel arrives: the API refuses, nothing is deleted.
    cloud.on_request(is_api("POST", f"/v1/jobs/{stored.job_id}/cancel"), finished_meanwhile)
    with pytest.raises(ConflictError, match="already completed"):
        client.cancel(stored.job_id)
    assert stored.job_id in cloud.jobs
    assert not cloud.api_requests("DELETE", ".*")


def test_errors_carry_the_servers_code_and_message(client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_job("0" * 32)
    assert caught.value.code == "not_found"
    assert caught.value.status == 404
    assert caught.value.message == f"No job '{'0' * 32}'."


def test_a_wrong_key_is_an_authentication_error(cloud: FakeCloud) -> None:
    with (
        Client(API_URL, "wrong", transport=cloud.api_transport()) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        list(client.jobs())
    assert caught.value.status == 401


def test_persistent_server_errors_surface_after_retries(
    client: Client, cloud: FakeCloud, sleeps: list[float]
) -> None:
    cloud.inject(is_api("GET", "/v1/jobs"), answers(lambda: error(500, "internal", "boom")), 10)
    with pytest.raises(ServerError) as caught:
        list(client.jobs())
    assert caught.value.code == "internal"
    assert len(cloud.api_requests("GET", "/v1/jobs")) == 4
    assert sleeps == [0.1, 0.2, 0.4]


def test_non_json_error_bodies_still_make_a_sentence(cloud: FakeCloud) -> None:
    cloud.inject(is_api("GET", "/v1/jobs"), answers(lambda: httpx.Response(502, text="<html>")))
    with (
        Client(
            API_URL, API_KEY, transport=cloud.api_transport(), retry=RetryConfig(max_attempts=1)
        ) as client,
        pytest.raises(ServerError, match="The API answered 502"),
    ):
        list(client.jobs())


def test_full_jitter_stays_under_the_ceiling() -> None:
    config = RetryConfig(initial_backoff=1.0, max_backoff=8.0, random=lambda: 0.5)
    assert [config.backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None


def test_from_env(cloud: FakeCloud) -> None:
    env = {"AUDIOLIFT_API_URL": API_URL + "/", "AUDIOLIFT_API_KEY": API_KEY}
    with Client.from_env(env, transport=cloud.api_transport()) as client:
        assert client.base_url == API_URL
        assert list(client.jobs()) == []
    with pytest.raises(ConfigurationError):
        Client.from_env({})


def test_limits(client: Client, cloud: FakeCloud) -> None:
    limits = client.limits()
    assert limits.max_upload_bytes == 5 * 1024**3
    assert (limits.min_part_bytes, limits.preferred_part_bytes, limits.max_parts) == (
        5 * 1024**2,
        16 * 1024**2,
        10_000,
    )
    assert limits.processor_timeout_seconds == 900.0
    wav, flac = limits.formats
    assert (wav.name, wav.label, wav.extensions) == ("wav", "WAV", (".wav", ".wave", ".bwf"))
    assert (flac.analysis_mib_per_second, flac.max_analysable_bytes) == (11.25, 8_833_204_224)
    assert flac.usd_per_gib_analysed == 0.0098
    assert limits.cost is not None
    assert (limits.cost.usd_per_gib_analysed, limits.cost.memory_mb) == (0.0021, 2048)
    assert limits.cost.price_date == "2026-11-30"
    assert limits.raw == cloud.limits


def test_limits_a_server_leaves_out_are_none(client: Client, cloud: FakeCloud) -> None:
    cloud.limits = {"max_upload_bytes": 10, "formats": [{"name": "wav"}]}
    limits = client.limits()
    assert (limits.max_upload_bytes, limits.max_parts, limits.cost) == (10, None, None)
    assert limits.formats[0].label == "wav"
    assert limits.formats[0].max_analysable_bytes is None
