"""End to end through the live local stack (SeaweedFS): the HTTP API creates the upload,
the parts go straight to SeaweedFS through the presigned URLs, the API completes it,
the bridge announces the object on the queue, the poller runs the processor, and the job
ends completed with an analysis that matches the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audiolift_devstack.samples import write_sample_recording
from audiolift_testkit import (
    TEST_PART_BYTES,
    StackProcess,
    fetch_result,
    upload_through_api,
    wait_for_job,
)

pytestmark = pytest.mark.integration


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


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs/{id}"),
        ("GET", "/v1/jobs/{id}/result"),
        ("POST", "/v1/jobs/{id}/cancel"),
        ("DELETE", "/v1/jobs/{id}"),
        ("POST", "/v1/uploads/{id}/parts"),
        ("GET", "/v1/uploads/{id}/parts"),
        ("POST", "/v1/uploads/{id}/complete"),
        ("DELETE", "/v1/uploads/{id}"),
    ],
)
def test_a_job_id_longer_than_any_table_key_is_404_not_500(
    local_stack: StackProcess, method: str, path: str
) -> None:
    """DynamoDB (here dynalite; moto does not check) refuses a key over 2,048 bytes with a
    ValidationException, which answered 500: such an id names no job."""
    import httpx

    with httpx.Client(base_url=local_stack.info.api_url, headers=local_stack.auth) as api:
        for job_id in ("a" * 2049, "\u00e9" * 1025):
            body = {"part_numbers": [1]} if path.endswith("/parts") and method == "POST" else None
            response = api.request(method, path.format(id=job_id), json=body)
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "not_found"
        # Uppy's routes take the job id from the object key.
        response = api.get(
            "/s3/multipart/some-upload", params={"key": "uploads/" + "\U0001f3b5" * 1000}
        )
        assert response.status_code == 404, response.text
