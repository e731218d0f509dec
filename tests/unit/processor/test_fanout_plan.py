"""Which files are split into parts and where the parts start (pure), and a file split
into frame ranges analysed one by one and merged: the straight-through document."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import soundfile as sf
from audiolift_processor.analysis import StreamingAnalyzer, part_alignment
from audiolift_processor.decode import analyze_range, analyze_stream, probe_stream
from audiolift_processor.fanout_plan import FanOutPlan, plan_ranges, splittable
from test_analysis_merge import assert_same

GiB = 1 << 30


@pytest.mark.parametrize(
    ("frames", "size", "range_bytes", "max_ranges", "count"),
    [
        (10_000_000, 40 * GiB, 1 * GiB, 64, 40),  # about range_bytes each
        (10_000_000, 400 * GiB, 1 * GiB, 64, 64),  # at most max_ranges
        (10_000_000, GiB // 2, 1 * GiB, 64, 1),  # smaller than one range: not split
        (9_600, 40 * GiB, 1 * GiB, 64, 2),  # never shorter than the alignment
    ],
)
def test_ranges_cover_every_frame_once_on_aligned_starts(
    frames: int, size: int, range_bytes: int, max_ranges: int, count: int
) -> None:
    alignment = part_alignment(48_000)
    assert alignment == 4800  # the 100 ms sub-block, the 50 ms window, the 16-sample row
    ranges = plan_ranges(frames, size, alignment, range_bytes=range_bytes, max_ranges=max_ranges)
    assert len(ranges) == count
    assert ranges[0][0] == 0 and ranges[-1][1] == frames
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start and start % alignment == 0
    lengths = [end - start for start, end in ranges]
    assert max(lengths) - min(lengths) <= 2 * alignment  # even parts


def test_alignment_at_other_rates() -> None:
    assert part_alignment(44_100) == 35_280  # lcm(4410, 2205, 16): 0.8 s
    assert part_alignment(96_000) % 9600 == 0
    assert plan_ranges(0, 0, 4800, range_bytes=1, max_ranges=4) == ()
    with pytest.raises(ValueError, match="positive"):
        plan_ranges(10, 10, 0, range_bytes=1, max_ranges=4)


def test_the_plan_round_trips_through_the_record() -> None:
    plan = FanOutPlan(etag="e-2", size=123, frames=9600, ranges=((0, 4800), (4800, 9600)))
    assert FanOutPlan.from_record(plan.as_record()) == plan
    assert (plan.parts, plan.hash_part) == (3, 2)


def _encoded(kind: str, subtype: str, seconds: int = 30) -> bytes:
    rng = np.random.default_rng(1)
    signal = np.clip(rng.standard_normal((seconds * 48_000, 2)) * 0.2, -1, 1)
    out = io.BytesIO()
    sf.write(out, signal, 48_000, format=kind, subtype=subtype)
    return out.getvalue()


@pytest.mark.parametrize(
    ("kind", "subtype", "split"),
    [
        ("WAV", "PCM_16", True),
        ("WAV", "PCM_24", True),
        ("RF64", "FLOAT", True),
        ("AIFF", "PCM_16", True),
        ("CAF", "PCM_16", True),
        ("AU", "ULAW", True),
        ("WAV", "IMA_ADPCM", False),  # blocks of compressed frames
        ("FLAC", "PCM_16", False),
    ],
)
def test_only_pcm_at_fixed_offsets_is_split(kind: str, subtype: str, split: bool) -> None:
    body = _encoded(kind, subtype, seconds=2)
    assert splittable(probe_stream(io.BytesIO(body), size=len(body))) is split


def test_a_truncated_wav_is_not_split() -> None:
    body = _encoded("WAV", "PCM_16", seconds=2)
    cut = body[: len(body) - 10_000]  # the header still promises every frame
    assert not splittable(probe_stream(io.BytesIO(cut), size=len(cut)))


@pytest.mark.parametrize(("kind", "subtype"), [("WAV", "PCM_16"), ("W64", "PCM_24")])
def test_ranges_analysed_apart_and_merged_equal_the_straight_through_analysis(
    kind: str, subtype: str
) -> None:
    """The decoder's side: each range opened on its own, warmed up, cut into the blocks
    a straight run cuts, and the merged document equals `analyze_stream`'s."""
    rng = np.random.default_rng(9)
    frames = 40 * 48_000 + 777
    envelope = 0.03 + 0.3 * np.sin(np.arange(frames) / 96_000.0) ** 2
    signal = rng.standard_normal((frames, 2)) * envelope[:, None]
    signal[5 * 48_000 : 14 * 48_000] = 0.0  # a silence over a range boundary
    out = io.BytesIO()
    sf.write(out, np.clip(signal, -1, 1), 48_000, format=kind, subtype=subtype)
    body = out.getvalue()
    expected = analyze_stream(io.BytesIO(body), size=len(body))

    stream = probe_stream(io.BytesIO(body), size=len(body))
    assert stream.expected == frames
    ranges = plan_ranges(
        frames, len(body), part_alignment(48_000), range_bytes=len(body) // 4 + 1, max_ranges=8
    )
    assert len(ranges) == 4
    parts = [
        analyze_range(io.BytesIO(body), start=start, end=end, size=len(body))
        for start, end in ranges
    ]
    document = StreamingAnalyzer.merge([part["analysis"] for part in parts]).finish()
    document["format"].update(parts[0]["format"])
    assert_same(document, expected)
    assert document["waveform"] == expected["waveform"]
    assert document["channels"][0]["true_peak_dbtp"] == expected["channels"][0]["true_peak_dbtp"]
