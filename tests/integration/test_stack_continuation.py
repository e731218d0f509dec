"""A recording longer than one processor invocation on the local stack: the SDK uploads
it through the API, moto's S3 announces it, the devstack poller runs the real processor
handler with a 2-second function timeout, and each invocation checkpoints and hands the
analysis on through the processing queue until it is done. The result equals a
straight-through analysis of the same file."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from audiolift import Client
from audiolift_devstack.samples import write_sample_recording
from audiolift_devstack.stack import Stack, StackConfig
from audiolift_processor.decode import analyze_stream

pytestmark = pytest.mark.integration

PART = 1024 * 1024


def _close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(b, dict):
        for key in b:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(b, list):
        assert len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{index}]")
    elif isinstance(b, float) and isinstance(a, float):
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_a_long_recording_is_analysed_over_several_invocations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", PART)
    config = StackConfig(
        state_dir=tmp_path / "state",
        s3_backend="moto",
        table_backend="moto",
        part_min_bytes=PART,
        part_size_bytes=4 * PART,
        # A deadline margin of nearly the whole timeout: every invocation analyzes one
        # block, checkpoints and hands on.
        function_timeout=2,
        extra_environment={"DEADLINE_MARGIN_SECONDS": "1.95"},
        visibility_timeout=30,
        poll_wait_seconds=1,
        schedules=[],  # no sweeper: the hand-on messages alone carry the job
    )
    recording = write_sample_recording(tmp_path / "long.wav", seconds=45, samplerate=48000)
    with recording.open("rb") as file:
        expected = analyze_stream(file, size=recording.stat().st_size)
    with Stack(config) as stack:
        info = stack.info
        assert info is not None
        with Client(info.api_url, info.api_key) as client:
            job = client.upload(recording)
            seen: list[int] = []
            deadline = time.monotonic() + 120
            while job.status not in ("completed", "failed", "cancelled"):
                assert time.monotonic() < deadline, f"job stuck in {job.status}"
                time.sleep(0.2)
                job = client.get_job(job.job_id)
                if job.status == "processing":
                    seen.append(int(job.raw.get("invocations", 0)))
                    assert job.raw.get("phase") == "analyzing"
            assert job.status == "completed", job.error
            document = client.result(job.job_id)
    assert job.raw["invocations"] >= 4, job.raw
    assert job.raw.get("phase") is None
    assert seen == sorted(seen)
    for key in ("loudness", "channels", "format"):
        _close(document[key], expected[key], key)
