"""Faults injected into the live local stack mid-job; every job must still end, with
exactly one result when it completes and nothing left in S3 when it was cancelled or
deleted.

- The stack SIGKILLed mid-analysis (the processor runs inside ``up``) and started again
  on the same state directory: the queue's messages died with moto, the job is still
  ``processing`` with its lease and another is ``uploaded``; the sweeper re-drives both
  (the first once its lease has run out) and they end ``completed``, the first with the
  result of an uninterrupted run.
- SeaweedFS stopped (SIGSTOP) for seconds mid-analysis: the job completes, same result.
- The object deleted before or during processing: ``failed`` ``object_missing`` at once;
  replaced before processing: the object as it is then is analysed (the result names its
  ETag); replaced during the analysis: ``failed`` ``object_changed``, no result.
- A job cancelled mid-analysis, or deleted once completed: nothing of it in S3.
- The stack SIGKILLed mid-upload: the parts sent before are kept, the SDK's resume sends
  only the rest and the job completes.

A SIGKILLed ``up`` leaving no process behind is test_stack_state's test; the kill below
relies on it (a restart on the same state directory needs the old processes gone).

The stacks run with a 20 s function timeout (the processor stops 5 s before it; a lease
lasts at most 50 s past the last heartbeat), the sweeper every 2 s, and 1 MiB ranged
reads, so that an analysis of the ~10 MB FLAC recording (a few seconds) is still reading
S3 when a fault lands.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from audiolift import Client, RetryConfig, TransportError
from audiolift_devstack.samples import write_sample_recording
from audiolift_testkit import (
    TEST_PART_BYTES,
    StackProcess,
    complete_upload,
    fetch_result,
    start_stack_process,
    upload_through_api,
    wait_for_job,
)
from sdk_fakes import Faulty, is_put

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FUNCTION_TIMEOUT = 20
STACK_ARGUMENTS = (
    "--function-timeout", str(FUNCTION_TIMEOUT), "--sweep-interval", "2",
    "--part-size-bytes", str(TEST_PART_BYTES), "--log-level", "INFO",
    "--env", f"READ_CHUNK_BYTES={1024 * 1024}",
    # The processor writes the record every 2 s while alive; the lease (20 s) decides.
    "--env", "SWEEP_PROCESSING_QUIET_SECONDS=5",
)  # fmt: skip
FLAC = "audio/flac"
# A processing job is re-driven once its lease has run out and it has been quiet for the
# sweeper's 5 s: at most ~25 s after the kill, plus an analysis.
REDRIVE_TIMEOUT = 150.0


def start_fault_stack(state_dir: Path, *arguments: str) -> StackProcess:
    return start_stack_process(state_dir, *STACK_ARGUMENTS, *arguments)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~10 MB of FLAC (two parts): a few seconds of analysis on this machine."""
    return write_sample_recording(tmp_path_factory.mktemp("audio") / "take.flac", 180)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    handle = start_fault_stack(tmp_path_factory.mktemp("faults"))
    try:
        yield handle
    finally:
        handle.stop_checked()


@pytest.fixture(scope="module")
def reference(stack: StackProcess, recording: Path) -> dict[str, Any]:
    """The recording's result from an uninterrupted run."""
    job_id = upload_through_api(stack, recording, content_type=FLAC)["job_id"]
    assert wait_for_job(stack, job_id)["status"] == "completed"
    return comparable(fetch_result(stack, job_id))


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A result without what names its job or its moment."""
    kept = {k: v for k, v in document.items() if k not in ("job_id", "analyzed_at")}
    kept["source"] = {k: v for k, v in document["source"].items() if k != "key"}
    return kept


def job_view(stack: StackProcess, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.info.api_url}/v1/jobs/{job_id}", headers=stack.auth)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def wait_for_status(
    stack: StackProcess, job_id: str, status: str, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = job_view(stack, job_id)
        if job["status"] == status:
            return job
        assert job["status"] not in ("completed", "failed", "cancelled"), job
        assert time.monotonic() < deadline, f"never {status}: {job}"
        time.sleep(0.02)


def start_analysis(stack: StackProcess, path: Path) -> str:
    """Upload ``path`` and return its job's id once the processor has claimed it."""
    job_id = str(upload_through_api(stack, path, content_type=FLAC)["job_id"])
    wait_for_status(stack, job_id, "processing")
    return job_id


def s3_state(stack: StackProcess, job_id: str) -> set[str]:
    """Every key of the job's in the bucket, and its open multipart uploads."""
    s3, bucket = stack.clients.s3, stack.info.bucket
    keys = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
        if job_id in item["Key"]
    }
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return keys | {f"multipart:{u['Key']}" for u in uploads if job_id in u["Key"]}


def completed_keys(job_id: str) -> set[str]:
    return {f"uploads/{job_id}", f"results/{job_id}.json"}


def weed_processes(stack: StackProcess) -> list[psutil.Process]:
    """SeaweedFS: master, volume, filer and S3 gateway."""
    weed = [p for p in stack.descendants if p.name() == "weed"]
    assert len(weed) == 4, weed
    return weed


@contextlib.contextmanager
def frozen(processes: list[psutil.Process]) -> Iterator[None]:
    """The processes stopped (SIGSTOP) until the block ends, as a hung host would be."""
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)


# --- the processor's process killed mid-analysis --------------------------------------


def test_a_stack_killed_mid_analysis_finishes_the_jobs_after_a_restart(
    tmp_path: Path, recording: Path, reference: dict[str, Any]
) -> None:
    """Killed with one job mid-analysis and one uploaded whose message still waited in
    the queue: after the restart, neither has a message; the sweeper re-drives both (the
    uploaded one once the queue would have given up on its message: visibility timeout x
    max receives, 5 s x 3 here)."""
    short = write_sample_recording(tmp_path / "short.flac", 6)
    state = tmp_path / "state"
    key = ("--api-key", "al_dev_faults-kill-0000000000000001")
    first = start_fault_stack(state, *key)
    try:
        queued = upload_through_api(first, short, content_type=FLAC, complete=False)
        queued_id = str(queued["job_id"])
        job_id = start_analysis(first, recording)
        complete_upload(first, queued)  # its message waits behind the analysis
        assert job_view(first, queued_id)["status"] == "uploaded"
    finally:
        first.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    assert first.survivors(grace=5.0) == []

    second = start_fault_stack(state, *key, "--visibility-timeout", "5")
    try:
        # Killed mid-analysis: the job is still held by the dead invocation's lease, and
        # no message is left (the queue died with the stack).
        assert job_view(second, job_id)["status"] == "processing"
        assert job_view(second, queued_id)["status"] == "uploaded"
        waited = wait_for_job(second, queued_id, timeout=REDRIVE_TIMEOUT)
        assert waited["status"] == "completed", waited
        queued_after = time.monotonic() - killed_at
        job = wait_for_job(second, job_id, timeout=REDRIVE_TIMEOUT)
        assert job["status"] == "completed", job
        assert comparable(fetch_result(second, job_id)) == reference
        assert s3_state(second, job_id) == completed_keys(job_id)
        assert s3_state(second, queued_id) == completed_keys(queued_id)
        # The sweeper brought them back: nothing else sends a message for them.
        assert second.log_path.read_text().count('"job re-driven"') == 2
        print(
            f"killed -> queued job completed in {queued_after:.0f} s, "
            f"the one in analysis in {time.monotonic() - killed_at:.0f} s"
        )
    finally:
        second.stop_checked()


# --- S3 faults mid-analysis ------------------------------------------------------------


def test_an_s3_outage_mid_analysis_only_delays_the_job(
    stack: StackProcess, recording: Path, reference: dict[str, Any]
) -> None:
    job_id = start_analysis(stack, recording)
    with frozen(weed_processes(stack)):
        time.sleep(4)
        assert job_view(stack, job_id)["status"] == "processing"
    job = wait_for_job(stack, job_id)
    assert job["status"] == "completed", job
    assert comparable(fetch_result(stack, job_id)) == reference
    assert s3_state(stack, job_id) == completed_keys(job_id)


def test_an_object_replaced_mid_analysis_fails_the_job_object_changed(
    stack: StackProcess, recording: Path, tmp_path: Path
) -> None:
    other = write_sample_recording(tmp_path / "other.flac", 180, seed=11)
    job_id = start_analysis(stack, recording)
    # The processor (in ``up``) holds still while the object is replaced: it has read a
    # few MiB ahead of the decoder at most, so it reads on from the new object.
    with frozen([psutil.Process(stack.process.pid)]):
        stack.clients.s3.put_object(
            Bucket=stack.info.bucket, Key=f"uploads/{job_id}", Body=other.read_bytes()
        )
    job = wait_for_job(stack, job_id)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "object_changed", job
    # No result of half of one file and half of another; the object is kept for a retry.
    assert s3_state(stack, job_id) == {f"uploads/{job_id}"}


def test_an_object_deleted_mid_analysis_fails_the_job_object_missing(
    stack: StackProcess, recording: Path
) -> None:
    job_id = start_analysis(stack, recording)
    with frozen([psutil.Process(stack.process.pid)]):
        stack.clients.s3.delete_object(Bucket=stack.info.bucket, Key=f"uploads/{job_id}")
    job = wait_for_job(stack, job_id)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "object_missing", job
    assert s3_state(stack, job_id) == set()


def test_objects_deleted_or_replaced_before_processing(stack: StackProcess, tmp_path: Path) -> None:
    """The poller takes one message at a time: while it analyses ``busy``, the other
    jobs' messages wait in the queue, and their objects change meanwhile."""
    short = write_sample_recording(tmp_path / "short.flac", 6)
    replacement = write_sample_recording(tmp_path / "replacement.flac", 9, seed=3)
    # Three times the shared recording: its analysis must outlast the two completions,
    # the delete and the put below, on a fast and quiet machine too.
    long = write_sample_recording(tmp_path / "long.flac", 540, seed=5)
    s3, bucket = stack.clients.s3, stack.info.bucket
    # Sent before, completed while the poller is busy: their messages wait in the queue.
    uploads = [
        upload_through_api(stack, short, content_type=FLAC, complete=False) for _ in range(2)
    ]
    deleted, replaced = (str(upload["job_id"]) for upload in uploads)
    busy = start_analysis(stack, long)
    for upload in uploads:
        complete_upload(stack, upload)
    assert job_view(stack, deleted)["status"] == "uploaded"
    assert job_view(stack, replaced)["status"] == "uploaded"
    s3.delete_object(Bucket=bucket, Key=f"uploads/{deleted}")
    put = s3.put_object(Bucket=bucket, Key=f"uploads/{replaced}", Body=replacement.read_bytes())
    assert job_view(stack, busy)["status"] == "processing"  # all of it before their turn

    gone = wait_for_job(stack, deleted)
    assert gone["status"] == "failed" and gone["error"]["code"] == "object_missing", gone
    assert s3_state(stack, deleted) == set()

    # What is in the bucket when its turn comes is what gets analysed, and the result
    # says which object that was.
    analysed = wait_for_job(stack, replaced)
    assert analysed["status"] == "completed", analysed
    result = fetch_result(stack, replaced)
    assert result["source"]["etag"] == put["ETag"].strip('"')
    assert result["source"]["size"] == replacement.stat().st_size
    assert result["format"]["duration_seconds"] == pytest.approx(9, abs=0.01)
    assert s3_state(stack, replaced) == completed_keys(replaced)
    assert wait_for_job(stack, busy)["status"] == "completed"


# --- cancelled and deleted jobs ----------------------------------------------------------


def cancel_mid_analysis(stack: StackProcess, recording: Path) -> str:
    job_id = start_analysis(stack, recording)
    # S3 holds the analysis still (it cannot finish first) while the job is cancelled.
    with (
        httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api,
        concurrent.futures.ThreadPoolExecutor(1) as background,
    ):
        with frozen(weed_processes(stack)):
            # The cancel is recorded in the table at once; deleting the audio waits for S3.
            cancelling = background.submit(api.post, f"/v1/jobs/{job_id}/cancel")
            deadline = time.monotonic() + 20
            while job_view(stack, job_id)["status"] != "cancelled":
                assert time.monotonic() < deadline, "the cancel was not recorded"
                time.sleep(0.1)
        cancelled = cancelling.result(timeout=30)
        assert cancelled.status_code == 202, cancelled.text
    # The processor notices at its next heartbeat and stops without a result.
    time.sleep(3)
    assert job_view(stack, job_id)["status"] == "cancelled"
    return job_id


def test_a_job_cancelled_mid_analysis_stops_without_a_result(
    stack: StackProcess, recording: Path
) -> None:
    job_id = cancel_mid_analysis(stack, recording)
    assert f"results/{job_id}.json" not in s3_state(stack, job_id)
    # Deleting the cancelled job removes what is left of it.
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert s3_state(stack, job_id) == set()


def test_a_job_cancelled_mid_analysis_leaves_no_audio_in_s3(
    stack: StackProcess, recording: Path
) -> None:
    job_id = cancel_mid_analysis(stack, recording)
    assert s3_state(stack, job_id) == set()


def test_a_deleted_job_leaves_nothing_in_s3(stack: StackProcess, tmp_path: Path) -> None:
    short = write_sample_recording(tmp_path / "short.flac", 6)
    job_id = str(upload_through_api(stack, short, content_type=FLAC)["job_id"])
    assert wait_for_job(stack, job_id)["status"] == "completed"
    assert s3_state(stack, job_id) == completed_keys(job_id)
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
        assert api.get(f"/v1/jobs/{job_id}").status_code == 404
    assert s3_state(stack, job_id) == set()


# --- restarts mid-upload -----------------------------------------------------------------


def test_a_stack_killed_mid_upload_keeps_the_parts_and_the_sdk_resumes(
    tmp_path: Path,
) -> None:
    path = write_sample_recording(tmp_path / "long.wav", 100)  # 19 MB: four parts
    state = tmp_path / "state"
    first = start_fault_stack(state)

    def kill_the_stack(request: httpx.Request) -> httpx.Response:
        first.stop(signal.SIGKILL)
        raise httpx.ConnectError("the stack is gone", request=request)

    storage = Faulty(httpx.HTTPTransport())
    storage.inject(is_put(3), kill_the_stack)
    retry = RetryConfig(max_attempts=2, initial_backoff=0.05, max_backoff=0.1)
    try:
        with Client(first.info.api_url, first.info.api_key, s3_transport=storage,
                    retry=retry) as client, pytest.raises(TransportError) as caught:  # fmt: skip
            client.upload(path, concurrency=1)
    finally:
        first.stop(signal.SIGKILL)
    job_id = str(caught.value.job_id)
    # Parts 1 and 2 went through; part 3 (tried again) met the dead stack.
    assert {r.url.params["partNumber"] for r in storage.puts()} == {"1", "2", "3"}
    assert first.survivors(grace=5.0) == []

    second = start_fault_stack(state, "--api-key", first.info.api_key)
    try:
        resumed = Faulty(httpx.HTTPTransport())
        with Client(second.info.api_url, second.info.api_key, s3_transport=resumed) as client:
            assert [p.part_number for p in client.uploaded_parts(job_id)] == [1, 2]
            job = client.resume(job_id, path)
            assert sorted(r.url.params["partNumber"] for r in resumed.puts()) == ["3", "4"]
            finished = job.wait(timeout=60)
        assert finished.status == "completed"
        stored = second.clients.s3.get_object(Bucket=second.info.bucket, Key=f"uploads/{job_id}")
        assert stored["Body"].read() == path.read_bytes()
        assert s3_state(second, job_id) == completed_keys(job_id)
    finally:
        second.stop_checked()


def test_an_api_restarted_mid_upload_keeps_the_parts_and_the_sdk_resumes(
    stack: StackProcess, tmp_path: Path
) -> None:
    """The client loses its connection at part 3 while the API restarts (SIGHUP to
    ``up``: a new app, new clients, as a new Lambda sandbox); the new API lists the parts
    S3 kept and the SDK's resume sends only the others."""
    path = write_sample_recording(tmp_path / "long.wav", 100)  # 19 MB: four parts
    log = stack.log_path
    restarts = log.read_text().count("API restarted")

    def restart_the_api(request: httpx.Request) -> httpx.Response:
        stack.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while log.read_text().count("API restarted") == restarts:
            assert time.monotonic() < deadline, "the API did not restart"
            time.sleep(0.05)
        raise httpx.ConnectError("connection lost", request=request)

    storage = Faulty(httpx.HTTPTransport())
    storage.inject(is_put(3), restart_the_api)
    retry = RetryConfig(max_attempts=1)
    with Client(stack.info.api_url, stack.info.api_key, s3_transport=storage,
                retry=retry) as client, pytest.raises(TransportError) as caught:  # fmt: skip
        client.upload(path, concurrency=1)
    job_id = str(caught.value.job_id)
    assert {r.url.params["partNumber"] for r in storage.puts()} == {"1", "2", "3"}

    resumed = Faulty(httpx.HTTPTransport())
    with Client(stack.info.api_url, stack.info.api_key, s3_transport=resumed) as client:
        assert [p.part_number for p in client.uploaded_parts(job_id)] == [1, 2]
        job = client.resume(job_id, path)
        assert sorted(r.url.params["partNumber"] for r in resumed.puts()) == ["3", "4"]
        assert job.wait(timeout=60).status == "completed"
    assert fetch_result(stack, job_id)["source"]["size"] == path.stat().st_size
    assert s3_state(stack, job_id) == completed_keys(job_id)
