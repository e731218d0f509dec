"""Levels, non-finite samples, silence, waveform, true peak and the document's shape."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from audiolift_processor.analysis import AnalysisOptions, StreamingAnalyzer, summarize
from audiolift_processor.analysis.filters import true_peak_phases

SR = 48_000


def analyze(
    signal: np.ndarray,
    samplerate: int = SR,
    block: int = 40_001,
    expected: int | str | None = "exact",
    **options,
) -> dict:
    if signal.ndim == 1:
        signal = signal[:, None]
    announced = len(signal) if expected == "exact" else expected
    assert announced is None or isinstance(announced, int)
    analyzer = StreamingAnalyzer(
        samplerate,
        signal.shape[1],
        expected_frames=announced,
        options=AnalysisOptions(**options),
    )
    for start in range(0, len(signal), block):
        analyzer.feed(signal[start : start + block])
    return analyzer.finish()


def strict_json(document: dict) -> dict:
    return json.loads(json.dumps(document, allow_nan=False))


def db(value: float) -> float:
    return 20 * math.log10(value)


def test_peak_rms_dc_match_numpy_over_the_whole_array():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((10 * SR + 123, 3)) * [0.3, 0.01, 0.1] + [0.0, 0.002, -0.05]
    document = strict_json(analyze(signal))
    for index, channel in enumerate(document["channels"]):
        column = signal[:, index]
        assert channel["peak_dbfs"] == pytest.approx(db(np.abs(column).max()), abs=0.01)
        assert channel["rms_dbfs"] == pytest.approx(db(np.sqrt(np.mean(column**2))), abs=0.01)
        assert channel["dc_offset"] == pytest.approx(column.mean(), abs=1e-9)
        assert channel["finite_samples"] == len(column)
    assert document["peak_dbfs"] == pytest.approx(db(np.abs(signal).max()), abs=0.01)


def test_results_do_not_depend_on_block_size():
    rng = np.random.default_rng(4)
    signal = rng.standard_normal((5 * SR + 77, 2)) * 0.1
    signal[SR : SR + 3 * SR // 2] = 0.0  # some silence
    one = analyze(signal, block=len(signal))
    for block in (1_000, 4_801, 65_536):
        other = analyze(signal, block=block)
        assert other["loudness"]["integrated_lufs"] == pytest.approx(
            one["loudness"]["integrated_lufs"], abs=1e-9
        )
        assert other["loudness"]["true_peak_dbtp"] == pytest.approx(
            one["loudness"]["true_peak_dbtp"], abs=1e-6
        )
        assert other["silence"] == one["silence"]
        assert other["waveform"] == one["waveform"]
        assert [c["rms_dbfs"] for c in other["channels"]] == pytest.approx(
            [c["rms_dbfs"] for c in one["channels"]], abs=1e-9
        )


def test_threads_and_inline_agree():
    rng = np.random.default_rng(9)
    signal = rng.standard_normal((3 * SR, 4)) * 0.2
    threaded = analyze(signal, threads=4)
    inline = analyze(signal, threads=1)
    assert threaded == inline


def test_clipped_samples_are_counted():
    signal = np.zeros((1000, 2))
    signal[10:15, 0] = 1.0
    signal[20, 0] = -1.2
    signal[30, 1] = 0.999
    document = analyze(signal)
    assert [c["clipped_samples"] for c in document["channels"]] == [6, 0]


def test_integer_blocks_with_a_scale_and_a_clip_level():
    samples = np.array([[0], [32767], [-32768], [100], [-32767]], dtype=np.int16)
    analyzer = StreamingAnalyzer(SR, 1, clip_level=1 - 2**-15)
    analyzer.feed(samples, scale=1 / 32768)
    document = analyzer.finish()
    assert document["channels"][0]["clipped_samples"] == 3
    assert document["channels"][0]["peak_dbfs"] == pytest.approx(0.0)


def test_nan_and_inf_are_counted_and_excluded_from_every_statistic():
    rng = np.random.default_rng(2)
    clean = rng.standard_normal((4 * SR, 2)) * 0.1
    dirty = clean.copy()
    dirty[[100, 5000, 70_000], 0] = np.nan
    dirty[[200, 90_000], 0] = np.inf
    dirty[300, 0] = -np.inf
    document = strict_json(analyze(dirty))
    channel = document["channels"][0]
    assert (channel["nan_samples"], channel["inf_samples"]) == (3, 3)
    assert channel["finite_samples"] == len(dirty) - 6
    finite = dirty[np.isfinite(dirty[:, 0]), 0]
    assert channel["peak_dbfs"] == pytest.approx(db(np.abs(finite).max()), abs=0.01)
    assert channel["rms_dbfs"] == pytest.approx(db(np.sqrt(np.mean(finite**2))), abs=0.01)
    assert channel["dc_offset"] == pytest.approx(finite.mean(), abs=1e-9)
    assert channel["clipped_samples"] == 0  # +-inf is not "clipped": it is not a sample
    assert document["channels"][1]["nan_samples"] == 0
    # the waveform holds only finite values
    for values in document["waveform"]["channels"][0].values():
        assert all(v is None or abs(v) < 1 for v in values)


def test_silence_is_none_in_json_never_infinite():
    document = strict_json(analyze(np.zeros((SR, 2))))
    channel = document["channels"][0]
    assert channel["peak_dbfs"] is None
    assert channel["rms_dbfs"] is None
    assert channel["dc_offset"] == 0.0
    assert document["peak_dbfs"] is None
    assert document["loudness"]["integrated_lufs"] is None
    assert document["loudness"]["true_peak_dbtp"] is None
    assert document["silence"]["ratio"] == 1.0
    assert document["silence"]["longest_seconds"] == pytest.approx(1.0)


def test_all_nan_input_gives_a_valid_document():
    document = strict_json(analyze(np.full((SR // 2, 2), np.nan)))
    channel = document["channels"][0]
    assert channel["nan_samples"] == SR // 2
    assert channel["finite_samples"] == 0
    assert channel["peak_dbfs"] is None
    assert channel["rms_dbfs"] is None
    assert channel["dc_offset"] is None
    assert document["loudness"]["integrated_lufs"] is None
    assert set(document["waveform"]["channels"][0]["max"]) == {None}


def test_zero_frames_and_one_sample():
    empty = strict_json(StreamingAnalyzer(SR, 2).finish())
    assert empty["format"]["frames"] == 0
    assert empty["format"]["duration_seconds"] == 0.0
    assert empty["silence"]["ratio"] is None
    assert empty["waveform"]["buckets"] == 0
    assert empty["loudness"]["integrated_lufs"] is None

    one = strict_json(analyze(np.array([[0.5]])))
    assert one["format"]["frames"] == 1
    assert one["channels"][0]["peak_dbfs"] == pytest.approx(db(0.5))
    assert one["waveform"]["buckets"] == 1
    assert one["loudness"]["integrated_lufs"] is None


@pytest.mark.parametrize("channels", [1, 2, 8])
def test_channel_counts(channels):
    rng = np.random.default_rng(channels)
    signal = rng.standard_normal((2 * SR, channels)) * 0.1
    document = strict_json(analyze(signal))
    assert len(document["channels"]) == channels
    assert len(document["waveform"]["channels"]) == channels
    assert document["loudness"]["integrated_lufs"] is not None
    if channels == 8:  # 7.1: the LFE does not count, surrounds count +1.5 dB
        assert document["loudness"]["channel_weights"][3] == 0.0


def test_silence_share_and_longest_stretch():
    rng = np.random.default_rng(3)
    signal = rng.standard_normal(10 * SR) * 0.1
    signal[1 * SR : 3 * SR] *= 1e-4  # -80 dBFS: silent
    signal[5 * SR : 5 * SR + SR // 2] = 0.0  # digital silence
    document = analyze(signal)
    silence = document["silence"]
    assert silence["silent_seconds"] == pytest.approx(2.5, abs=0.1)
    assert silence["ratio"] == pytest.approx(0.25, abs=0.01)
    assert silence["longest_seconds"] == pytest.approx(2.0, abs=0.1)


def test_silence_needs_every_channel_to_be_quiet():
    signal = np.zeros((2 * SR, 2))
    signal[:, 1] = np.sin(np.arange(2 * SR) / 10) * 0.1
    assert analyze(signal)["silence"]["ratio"] == 0.0


@pytest.mark.parametrize("expected", ["exact", None, 1000, 4 * (3 * SR + 17)])
def test_waveform_buckets_match_numpy_whatever_length_was_announced(expected):
    rng = np.random.default_rng(8)
    frames = 3 * SR + 17
    signal = rng.standard_normal((frames, 2)) * np.linspace(0.01, 0.9, frames)[:, None]
    waveform = analyze(signal, expected=expected, waveform_buckets=100)["waveform"]
    count = waveform["buckets"]
    assert count == 100
    assert waveform["frames_per_bucket"] == pytest.approx(frames / 100)
    mins = waveform["channels"][0]["min"]
    maxs = waveform["channels"][0]["max"]
    # every bucket spans about 1/100 of the file, in order, and covers it all
    assert min(mins) == pytest.approx(signal[:, 0].min(), abs=1e-5)
    assert max(maxs) == pytest.approx(signal[:, 0].max(), abs=1e-5)
    for index in (0, 50, 99):
        lo = int(index * frames / 100)
        hi = int((index + 1) * frames / 100)
        # bucket edges are exact to a tenth of a bucket; an overstated length makes the
        # finer buckets they are built from coarser
        margin = frames // 1000 if expected != 4 * frames else frames // 100
        inner = signal[lo + margin : hi - margin, 0]
        if len(inner):
            assert maxs[index] >= inner.max() - 1e-5
            assert mins[index] <= inner.min() + 1e-5
        wider = signal[max(0, lo - margin) : hi + margin, 0]
        assert maxs[index] <= wider.max() + 1e-5


def test_a_wildly_overstated_length_still_gives_a_valid_overview():
    signal = np.sin(np.arange(SR) / 7)
    waveform = strict_json(analyze(signal, expected=10**9))["waveform"]
    assert waveform["buckets"] >= 1
    assert max(waveform["channels"][0]["max"]) == pytest.approx(signal.max(), abs=1e-5)


def test_short_files_get_one_bucket_per_frame():
    waveform = analyze(np.array([0.1, -0.2, 0.3]), waveform_buckets=800)["waveform"]
    assert waveform["buckets"] == 3
    assert waveform["channels"][0]["max"] == [0.1, -0.2, 0.3]


def reference_true_peak(x: np.ndarray) -> float:
    phases = true_peak_phases()
    interpolated = max(np.abs(np.convolve(x, phase)[: len(x)]).max() for phase in phases)
    return max(float(interpolated), float(np.abs(x).max()))


def test_true_peak_finds_intersample_peaks():
    # fs/4 at 45 degrees: every sample at +-0.707 of the amplitude, the wave itself at 1.0
    n = np.arange(SR)
    signal = 0.5 * np.sin(2 * np.pi * n / 4 + np.pi / 4)
    document = analyze(signal)
    assert document["peak_dbfs"] == pytest.approx(db(0.5 * math.sqrt(0.5)), abs=0.01)
    assert document["loudness"]["true_peak_dbtp"] == pytest.approx(db(0.5), abs=0.2)


@pytest.mark.parametrize("block", [1, 777, 1024, 50_000])
def test_true_peak_streaming_equals_whole_array_reference(block):
    rng = np.random.default_rng(block)
    # band-limited bursts so that inter-sample peaks exceed sample peaks somewhere
    t = np.arange(SR // 2 if block > 1 else 6000) / SR
    signal = np.sin(2 * np.pi * 11_000 * t + 0.3) * 0.6 + rng.standard_normal(len(t)) * 0.01
    signal[len(t) // 3 :] *= 0.2
    document = analyze(signal, block=block)
    expected = db(reference_true_peak(signal))
    assert document["channels"][0]["true_peak_dbtp"] == pytest.approx(expected, abs=1e-5)


def test_true_peak_can_be_switched_off():
    document = analyze(np.ones(100) * 0.5, true_peak=False)
    assert document["loudness"]["true_peak_dbtp"] is None
    assert "true_peak_dbtp" not in document["channels"][0]


def test_summary_is_small_and_plain():
    rng = np.random.default_rng(1)
    document = analyze(rng.standard_normal((4 * SR, 2)) * 0.1)
    document["format"]["container"] = "wav"
    summary = summarize(document)
    assert set(summary) == {
        "duration_seconds",
        "sample_rate",
        "channels",
        "container",
        "integrated_lufs",
        "loudness_range_lu",
        "true_peak_dbtp",
        "peak_dbfs",
        "silence_ratio",
    }
    assert summary["sample_rate"] == SR
    assert summary["channels"] == 2
    assert summary["container"] == "wav"
    assert summary["duration_seconds"] == 4.0
    assert isinstance(summary["integrated_lufs"], float)
    json.dumps(summary, allow_nan=False)
    silent = summarize(strict_json(analyze(np.zeros(SR))))
    assert silent["integrated_lufs"] is None
    assert silent["peak_dbfs"] is None
    assert summarize({}) == dict.fromkeys(summary)


def test_low_sample_rates_skip_loudness_but_keep_levels():
    document = strict_json(analyze(np.sin(np.arange(4000) / 3) * 0.5, samplerate=2000))
    assert document["loudness"]["integrated_lufs"] is None
    assert document["channels"][0]["peak_dbfs"] == pytest.approx(db(0.5), abs=0.01)


def test_absurdly_large_finite_values_are_unusable_like_non_finite_ones():
    signal = np.full(SR, 0.1)
    signal[1000:1010] = 1e300
    signal[2000] = -1e308
    document = strict_json(analyze(signal))
    channel = document["channels"][0]
    assert (channel["overflow_samples"], channel["clipped_samples"]) == (11, 0)
    assert channel["finite_samples"] == SR - 11
    assert channel["peak_dbfs"] == pytest.approx(db(0.1))
    # the loudness of the rest of the file is still measured
    later = analyze(np.concatenate([signal, np.sin(np.arange(2 * SR) / 5) * 0.1]))
    assert later["loudness"]["integrated_lufs"] is not None


def test_empty_blocks_are_harmless():
    analyzer = StreamingAnalyzer(SR, 2)
    analyzer.feed(np.zeros((0, 2)))
    analyzer.feed(np.full((100, 2), 0.5))
    analyzer.feed(np.zeros((0, 2)))
    document = strict_json(analyzer.finish())
    assert document["format"]["frames"] == 100


def test_one_channel_split_over_two_threads_equals_the_serial_filter():
    rng = np.random.default_rng(21)
    t = np.arange(20 * SR) / SR
    signal = rng.standard_normal(len(t)) * (0.02 + 0.3 * (t % 7 < 2)) + 0.01
    split = analyze(signal, block=100_000, threads=2)
    serial = analyze(signal, block=100_000, threads=1)
    for key in ("integrated_lufs", "loudness_range_lu", "momentary_max_lufs"):
        assert split["loudness"][key] == pytest.approx(serial["loudness"][key], abs=1e-9)
    assert split["loudness"]["gated_blocks"] == serial["loudness"]["gated_blocks"]


@pytest.mark.parametrize("level", [0.02, 0.3])
def test_true_peak_pruning_never_misses_the_peak(level):
    """Sparse loud spots (rows gathered) and dense loud noise (the contiguous pass)."""
    rng = np.random.default_rng(int(level * 100))
    signal = np.clip(rng.standard_normal(SR) * level, -1, 1)
    spots = rng.integers(0, SR - 16, 20)
    for spot in spots:
        # fs/4 at 45 degrees: samples at 0.6, the wave between them near 0.85
        signal[spot : spot + 16] = np.tile([0.6, 0.6, -0.6, -0.6], 4)
    for block in (4_096, 30_001):
        document = analyze(signal, block=block)
        expected = db(reference_true_peak(signal))
        assert document["loudness"]["true_peak_dbtp"] == pytest.approx(expected, abs=1e-5)
        assert expected > db(np.abs(signal).max()) + 0.1  # inter-sample peaks exist
