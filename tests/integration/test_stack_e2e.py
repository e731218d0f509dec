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
