"""Everything the streaming analysis carries between blocks can be saved as plain data,
made into bytes, restored, and continued: the same document as straight through."""

from __future__ import annotations

import math

import numpy as np
import pytest
from audiolift_processor.analysis import AnalysisOptions, StreamingAnalyzer
from audiolift_processor.analysis.layout import declared_layout
from audiolift_processor.analysis.state import dumps, loads

SR = 48_000


def awkward_signal(channels: int) -> np.ndarray:
    """Loud and quiet passages, digital silence, NaN/Inf bursts, an overflowing value."""
    rng = np.random.default_rng(channels)
    frames = 9 * SR + 1234
    envelope = 0.02 + 0.3 * (np.sin(np.arange(frames) / SR) ** 2)
    signal = rng.standard_normal((frames, channels)) * envelope[:, None]
    signal[2 * SR : 3 * SR] *= 1e-5
    signal[4 * SR : 4 * SR + 777, 0] = np.nan
    signal[5 * SR + 10, -1] = np.inf
    signal[6 * SR + 99, 0] = 1e300
    signal[7 * SR : 7 * SR + 20] = 1.0  # clipped
    return signal


def feed(analyzer: StreamingAnalyzer, signal: np.ndarray, block: int) -> None:
    for start in range(0, len(signal), block):
        analyzer.feed(signal[start : start + block])


def assert_same_document(restored: dict, straight: dict) -> None:
    def walk(a, b, path):
        if isinstance(a, dict):
            assert a.keys() == b.keys(), path
            for key in a:
                walk(a[key], b[key], f"{path}.{key}")
        elif isinstance(a, list):
            assert len(a) == len(b), path
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{i}]")
        elif isinstance(a, float) and isinstance(b, float):
            assert math.isclose(a, b, rel_tol=0, abs_tol=1e-9), (path, a, b)
        else:
            assert a == b, (path, a, b)  # counts, strings, None: exactly

    walk(restored, straight, "document")


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("threads", [1, None])
@pytest.mark.parametrize("cut_blocks", [1, 5, 9])
def test_save_restore_continue_equals_straight_through(channels, threads, cut_blocks):
    signal = awkward_signal(channels)
    block = 40_001  # not a multiple of any window: partial windows are carried
    layout = declared_layout(("FL", "FR", "FC", "LFE", "BL", "BR")[:channels], channels, "test")
    options = AnalysisOptions(threads=threads, waveform_buckets=300)

    def fresh() -> StreamingAnalyzer:
        return StreamingAnalyzer(
            SR, channels, expected_frames=len(signal), options=options, layout=layout
        )

    straight = fresh()
    feed(straight, signal, block)
    expected = straight.finish()

    first = fresh()
    cut = cut_blocks * block
    feed(first, signal[:cut], block)
    saved = dumps(first.state())
    first.close()
    second = StreamingAnalyzer.restore(loads(saved))
    feed(second, signal[cut:], block)
    assert_same_document(second.finish(), expected)


def test_the_state_is_plain_data_and_its_bytes_round_trip_exactly():
    analyzer = StreamingAnalyzer(SR, 2)
    analyzer.feed(awkward_signal(2)[: 3 * SR + 5])
    state = analyzer.state()
    analyzer.close()

    def check_plain(value):
        if isinstance(value, dict):
            assert all(isinstance(key, str) for key in value)
            for item in value.values():
                check_plain(item)
        elif isinstance(value, list):
            for item in value:
                check_plain(item)
        else:
            assert value is None or isinstance(value, bool | int | float | str | np.ndarray)

    check_plain(state)
    again = loads(dumps(state))

    def same(a, b):
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for key in a:
                same(a[key], b[key])
        elif isinstance(a, list):
            for x, y in zip(a, b, strict=True):
                same(x, y)
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b or (a != a and b != b)

    same(state, again)


def test_a_state_from_another_version_is_refused():
    state = StreamingAnalyzer(SR, 1).state()
    state["version"] = 999
    with pytest.raises(ValueError, match="version"):
        StreamingAnalyzer.restore(state)


def test_a_finished_analyzer_has_no_state_to_save():
    analyzer = StreamingAnalyzer(SR, 1)
    analyzer.finish()
    with pytest.raises(RuntimeError):
        analyzer.state()
