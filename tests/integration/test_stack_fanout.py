"""A multi-GiB WAV on the local stack (SeaweedFS as S3, dynalite, two processor worker
processes): the SDK uploads it, the first invocation splits its analysis into frame
ranges, two workers analyse the parts at once, the last part done asks for the merge,
and the result equals the straight-through analysis of the same file, computed here."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from audiolift import Client
from audiolift_devstack.samples import write_long_recording
from audiolift_devstack.stack import Stack, StackConfig
from audiolift_processor.decode import analyze_stream
from test_stack_continuation import _close

# Generating, uploading and analysing 2 GiB twice: about 1.5 min on the 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

GiB = 1 << 30


def test_a_multi_gib_wav_split_over_two_workers_equals_the_straight_through_analysis(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    recording = write_long_recording(tmp_path / "long.wav", 2 * GiB + 64 * (1 << 20))
    size = recording.stat().st_size
    assert size > 2 * GiB
    with recording.open("rb") as file:
        expected = analyze_stream(file, size=size)
    config = StackConfig(
        state_dir=tmp_path / "state",
        workers=2,
        extra_environment={
            "FANOUT_MIN_BYTES": str(GiB),
            "FANOUT_RANGE_BYTES": str(GiB // 2),
            "MAX_UPLOAD_BYTES": str(4 * GiB),
        },
        schedules=[],
    )
    phases: set[tuple[str | None, int | None, int | None]] = set()
    with Stack(config) as stack:
        info = stack.info
        assert info is not None
        with Client(info.api_url, info.api_key) as client:
            job = client.upload(recording, concurrency=4)
            deadline = time.monotonic() + 300
            while job.status not in ("completed", "failed", "cancelled"):
                assert time.monotonic() < deadline, f"job stuck in {job.status}"
                time.sleep(0.2)
                job = client.get_job(job.job_id)
                raw = job.raw
                if job.status == "processing":
                    phases.add((raw.get("phase"), raw.get("parts_done"), raw.get("parts_total")))
            assert job.status == "completed", job.error
            document = client.result(job.job_id)
    recording.unlink()
    shutil.rmtree(config.state_dir)  # the stored copy: 2 GiB the session need not keep
    for key in ("format", "loudness", "channels", "silence", "waveform"):
        _close(document[key], expected[key], key)
    raw = job.raw
    # five ranges of ~half a GiB, the hash part, the planner and the merge
    assert (raw["parts_done"], raw["parts_total"]) == (6, 6)
    assert raw["invocations"] == 1 + 6 + 1
    assert any(phase == "analyzing" and total == 6 for phase, _, total in phases)
    print(f"\nfan-out test: {size / GiB:.2f} GiB in {time.monotonic() - started:.0f} s")
