"""End to end through the live local stack (SeaweedFS): the HTTP API creates the upload,
the parts go straight to SeaweedFS through the presigned URLs, the API completes it,
the bridge announces the object on the queue, the poller runs the processor, and the job
ends completed with an analysis that matches the file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from audiolift_devstack.samples import write_sample_recording
from audiolift_testkit import TEST_PART_BYTES, StackProcess

pytestmark = pytest.mark.integration

JOB_TIMEOUT = 120.0


def upload_through_api(
    stack: StackProcess, path: Path, *, content_type: str = "audio/wav"
) -> dict[str, Any]:
    """The client's side of the contract, by hand: create, PUT every part, complete."""
    size = path.stat().st_size
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        created = api.post(
            "/v1/uploads",
            json={"filename": path.name, "size": size, "content_type": content_type},
        )
        assert created.status_code == 201, created.text
        upload = created.json()
        part_size, part_count = upload["part_size"], upload["part_count"]
        urls = {p["part_number"]: p["url"] for p in upload["parts"]}
        missing = [n for n in range(1, part_count + 1) if n not in urls]
        if missing:
            signed = api.post(
                f"/v1/uploads/{upload['job_id']}/parts", json={"part_numbers": missing}
            )
            assert signed.status_code == 200, signed.text
            urls.update({p["part_number"]: p["url"] for p in signed.json()["parts"]})
        etags = []
        with path.open("rb") as stream, httpx.Client(timeout=60) as s3:
            for number in range(1, part_count + 1):
                stream.seek((number - 1) * part_size)
                put = s3.put(urls[number], content=stream.read(part_size))
                assert put.status_code == 200, put.text
                etags.append({"part_number": number, "etag": put.headers["etag"]})
        completed = api.post(f"/v1/uploads/{upload['job_id']}/complete", json={"parts": etags})
        assert completed.status_code == 200, completed.text
    return upload


def wait_for_job(stack: StackProcess, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        while True:
            response = api.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in ("completed", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(0.25)


def fetch_result(stack: StackProcess, job_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=stack.info.api_url, headers=stack.auth, timeout=30) as api:
        response = api.get(f"/v1/jobs/{job_id}/result")
        if response.status_code == 303:
            response = httpx.get(response.headers["location"], timeout=30)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document


def test_upload_in_parts_is_processed_to_completion(
    local_stack: StackProcess, tmp_path: Path
) -> None:
    path = write_sample_recording(tmp_path / "take one.wav", seconds=70, samplerate=44100)
    size = path.stat().st_size
    upload = upload_through_api(local_stack, path)
    assert upload["part_size"] == TEST_PART_BYTES
    assert upload["part_count"] >= 3  # really multipart

    job = wait_for_job(local_stack, upload["job_id"])
    assert job["status"] == "completed", job
    assert job["progress"] == 100
    assert job["size"] == size

    # The object is in SeaweedFS under the server-made key, whole.
    head = local_stack.clients.s3.head_object(
        Bucket=local_stack.info.bucket, Key=f"uploads/{job['job_id']}"
    )
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith(f"-{upload['part_count']}")

    result = fetch_result(local_stack, upload["job_id"])
    info = sf.info(str(path))
    assert result["format"]["sample_rate"] == 44100
    assert result["format"]["channels"] == 2
    assert result["format"]["frames"] == info.frames
    samples, _ = sf.read(str(path), dtype="float64")
    peak_dbfs = 20 * np.log10(np.max(np.abs(samples)))
    assert result["peak_dbfs"] == pytest.approx(peak_dbfs, abs=0.01)
    # The sample has silences: the analysis must have seen them.
    assert result["silence"]
