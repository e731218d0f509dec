"""The fan-out's merge: parts of a recording analysed on their own (each after a warm-up
on the frames before it) and merged give the straight-through document -- loudness, LRA
and true peak to 1e-9, every count exactly, silence and waveform equal."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from audiolift_processor.analysis import AnalysisOptions, StreamingAnalyzer
from audiolift_processor.analysis.filters import k_weighting, settling_samples
from audiolift_processor.analysis.merge import merge_states
from audiolift_processor.analysis.state import dumps, loads

SR = 48_000
BLOCK = 40_000  # a multiple of the true-peak row (16): parts cut blocks where straight does


def signal_with_everything(channels: int, seconds: int = 20) -> np.ndarray:
    """Loud and quiet passages, long digital silences across part boundaries, NaN/Inf,
    an overflowing value, clipping."""
    rng = np.random.default_rng(channels)
    frames = seconds * SR + 1234
    envelope = 0.02 + 0.3 * (np.sin(np.arange(frames) / SR) ** 2)
    signal = rng.standard_normal((frames, channels)) * envelope[:, None]
    signal[2 * SR : 7 * SR] = 0.0  # silence over a part boundary
    signal[11 * SR : 12 * SR + 17, 0] = np.nan
    signal[13 * SR + 10, -1] = np.inf
    signal[14 * SR + 99, 0] = 1e300
    signal[15 * SR : 15 * SR + 20] = 1.0
    return signal


def analyze(
    signal: np.ndarray, start: int, end: int, options: AnalysisOptions, *, warm: bool
) -> StreamingAnalyzer:
    channels = signal.shape[1]
    analyzer = StreamingAnalyzer(
        SR, channels, expected_frames=len(signal), options=options, start_frame=start
    )
    if warm and start:
        before = max(0, start - settling_samples(k_weighting(SR)))
        analyzer.warm_up(signal[before:start])
    position = start
    while position < end:  # blocks cut where the straight run cuts them
        stop = min(end, (position // BLOCK + 1) * BLOCK)
        analyzer.feed(signal[position:stop])
        position = stop
    return analyzer


def parts_document(
    signal: np.ndarray, cuts: list[int], options: AnalysisOptions, *, warm: bool = True
) -> dict[str, Any]:
    edges = [0, *cuts, len(signal)]
    states = []
    for start, end in itertools.pairwise(edges):
        part = analyze(signal, start, end, options, warm=warm)
        states.append(loads(dumps(part.state())))  # as stored between invocations
        part.close()
    return StreamingAnalyzer.merge(states).finish()


def assert_same(a: Any, b: Any, path: str = "document") -> None:
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), path
        for key in b:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{index}]")
    elif isinstance(b, float) and isinstance(a, float):
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("threads", [1, None])
def test_merged_parts_equal_the_straight_through_document(channels: int, threads: Any) -> None:
    signal = signal_with_everything(channels)
    options = AnalysisOptions(threads=threads, waveform_buckets=300)
    expected = analyze(signal, 0, len(signal), options, warm=False).finish()
    # part starts on multiples of the sub-block (4800) and the silence window (2400),
    # one inside the long silence, one inside a waveform bucket
    cuts = [4 * 4800 * 10, 9 * 4800 * 10, 13 * 4800 * 10 + 4800 * 3]
    document = parts_document(signal, cuts, options)
    assert_same(document, expected)
    assert document["silence"]["longest_seconds"] == expected["silence"]["longest_seconds"]
    assert document["waveform"] == expected["waveform"]


def test_one_part_merges_to_itself() -> None:
    signal = signal_with_everything(2)
    options = AnalysisOptions(threads=1)
    expected = analyze(signal, 0, len(signal), options, warm=False).finish()
    assert_same(parts_document(signal, [], options), expected)


def test_without_the_warm_up_loudness_and_true_peak_would_differ() -> None:
    """The warm-up is what makes the parts exact: without it, the K-weighting filter
    starts from silence at every part (its transient spoils the first sub-blocks) and
    the true-peak interpolator has no history."""
    rng = np.random.default_rng(5)
    signal = np.clip(rng.standard_normal((12 * SR, 2)) * 0.3, -1, 1)
    signal[:, 1] += 0.2  # a DC offset: the filter's transient is large
    options = AnalysisOptions(threads=1)
    expected = analyze(signal, 0, len(signal), options, warm=False).finish()
    cuts = [4800 * 30, 4800 * 70, 4800 * 100]
    warmed = parts_document(signal, cuts, options)
    cold = parts_document(signal, cuts, options, warm=False)
    assert_same(warmed["loudness"], expected["loudness"])
    figures = ("integrated_lufs", "momentary_max_lufs")
    assert any(abs(cold["loudness"][name] - expected["loudness"][name]) > 1e-9 for name in figures)


def test_parts_that_do_not_fit_together_are_refused() -> None:
    signal = signal_with_everything(1)
    options = AnalysisOptions(threads=1)
    first = analyze(signal, 0, 48_000, options, warm=True)
    gap = analyze(signal, 96_000, len(signal), options, warm=True)
    inside_a_window = analyze(signal, 0, 48_001, options, warm=True)
    rest = analyze(signal, 48_001, len(signal), options, warm=True)
    with pytest.raises(ValueError, match="consecutive"):
        merge_states([first.state(), gap.state()])
    with pytest.raises(ValueError, match="inside"):
        merge_states([inside_a_window.state(), rest.state()])
    with pytest.raises(ValueError, match="nothing"):
        merge_states([])
    for analyzer in (first, gap, inside_a_window, rest):
        analyzer.close()
