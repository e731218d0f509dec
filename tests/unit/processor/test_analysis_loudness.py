"""Loudness and loudness range against references: pyloudnorm, analytical EBU Tech 3341
-style signals, and a plain whole-array implementation of EBU Tech 3342 written here."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
from audiolift_processor.analysis import AnalysisOptions, StreamingAnalyzer
from audiolift_processor.analysis.filters import k_weighting, k_weighting_stages
from scipy.signal import lfilter

SR = 48_000


def analyze(signal: np.ndarray, samplerate: int = SR, block: int = 65_537, **options) -> dict:
    """Run the streaming analyzer over ``signal`` in blocks of an awkward size."""
    if signal.ndim == 1:
        signal = signal[:, None]
    analyzer = StreamingAnalyzer(
        samplerate,
        signal.shape[1],
        expected_frames=len(signal),
        options=AnalysisOptions(**options),
    )
    for start in range(0, len(signal), block):
        analyzer.feed(signal[start : start + block])
    return analyzer.finish()


def sine(seconds: float, dbfs: float, freq: float = 1000.0, samplerate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * samplerate)) / samplerate
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)


def pyloudnorm_lufs(signal: np.ndarray, samplerate: int = SR) -> float:
    return float(pyloudnorm.Meter(samplerate).integrated_loudness(signal))


def test_k_weighting_matches_the_bs1770_table_at_48k():
    shelf, highpass = k_weighting_stages(48_000)
    np.testing.assert_allclose(shelf.b, [1.53512485958697, -2.69169618940638, 1.19839281085285])
    np.testing.assert_allclose(shelf.a, [1.0, -1.69065929318241, 0.73248077421585])
    np.testing.assert_allclose(highpass.b, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(highpass.a, [1.0, -1.99004745483398, 0.99007225036621])


@pytest.mark.parametrize(("dbfs", "expected_lufs"), [(-23.0, -23.0), (-33.0, -33.0)])
def test_tech3341_stereo_sines(dbfs, expected_lufs):
    tone = sine(20, dbfs)
    stereo = np.stack([tone, tone], axis=1)
    document = analyze(stereo)
    integrated = document["loudness"]["integrated_lufs"]
    assert integrated == pytest.approx(expected_lufs, abs=0.1)
    assert integrated == pytest.approx(pyloudnorm_lufs(stereo), abs=0.1)
    # a steady tone has (almost) no loudness range
    assert document["loudness"]["loudness_range_lu"] == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize("dbfs", [-23.0, -33.0])
def test_tech3341_mono_sines(dbfs):
    tone = sine(20, dbfs)
    document = analyze(tone)
    integrated = document["loudness"]["integrated_lufs"]
    # one channel carries half the power of the stereo case: 3.01 dB lower
    assert integrated == pytest.approx(dbfs - 10 * math.log10(2), abs=0.1)
    assert integrated == pytest.approx(pyloudnorm_lufs(tone), abs=0.1)


def test_gated_programme_with_silence_and_level_changes_matches_pyloudnorm():
    rng = np.random.default_rng(7)
    seconds = 30
    noise = rng.standard_normal((seconds * SR, 2))
    envelope = np.repeat([0.2, 0.02, 0.0, 0.1, 0.005, 0.3], seconds * SR // 6)[:, None]
    signal = noise * envelope
    document = analyze(signal)
    assert document["loudness"]["integrated_lufs"] == pytest.approx(
        pyloudnorm_lufs(signal), abs=0.1
    )


def test_five_channel_weights_match_pyloudnorm():
    rng = np.random.default_rng(11)
    signal = rng.standard_normal((10 * SR, 5)) * np.array([0.1, 0.05, 0.02, 0.08, 0.03])
    document = analyze(signal)
    assert document["loudness"]["channel_weights"] == [1.0, 1.0, 1.0, 1.41, 1.41]
    assert document["loudness"]["integrated_lufs"] == pytest.approx(
        pyloudnorm_lufs(signal), abs=0.1
    )


def test_other_sample_rates_match_pyloudnorm():
    rng = np.random.default_rng(3)
    for rate in (44_100, 22_050, 96_000):
        signal = rng.standard_normal((6 * rate, 2)) * 0.05
        document = analyze(signal, samplerate=rate)
        assert document["loudness"]["integrated_lufs"] == pytest.approx(
            pyloudnorm_lufs(signal, rate), abs=0.1
        ), rate


# --- loudness range -------------------------------------------------------------------


def reference_lra(signal: np.ndarray, samplerate: int) -> float:
    """EBU Tech 3342, straight from the text, over the whole array at once: K-weight,
    3 s windows every 100 ms, -70 LUFS absolute gate, -20 LU relative gate, 10th to 95th
    percentile. Uses the filter pyloudnorm designs, not ours."""
    meter = pyloudnorm.Meter(samplerate)
    weighted = signal.astype(np.float64)
    for stage in meter._filters.values():
        weighted = lfilter(stage.b, stage.a, weighted, axis=0)
    window, hop = 3 * samplerate, samplerate // 10
    energy = np.concatenate([[0.0], np.cumsum((weighted**2).sum(axis=1))])
    starts = np.arange(0, len(weighted) - window + 1, hop)
    power = (energy[starts + window] - energy[starts]) / window
    loudness = -0.691 + 10 * np.log10(power)
    loudness = loudness[loudness > -70]
    relative = -0.691 + 10 * np.log10(np.mean(10 ** ((loudness + 0.691) / 10))) - 20
    loudness = loudness[loudness > relative]
    low, high = np.percentile(loudness, [10, 95])
    return float(high - low)


def test_lra_of_two_alternating_levels_is_their_difference():
    # 30 s at -20 dBFS, 30 s at -30 dBFS, 30 s at -20 dBFS: a 1 kHz tone, so every 3 s
    # window inside a plateau has exactly that plateau's loudness, the 10th percentile
    # lies in the quiet plateau and the 95th in the loud ones: LRA = 10 LU.
    signal = np.concatenate([sine(30, -20), sine(30, -30), sine(30, -20)])
    document = analyze(signal)
    assert document["loudness"]["loudness_range_lu"] == pytest.approx(10.0, abs=0.5)


def test_lra_matches_a_whole_array_reference():
    rng = np.random.default_rng(5)
    seconds = 60
    t = np.arange(seconds * SR) / SR
    level = 0.01 + 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 23.0)) ** 2
    signal = rng.standard_normal((len(t), 2)) * level[:, None]
    document = analyze(signal)
    assert document["loudness"]["loudness_range_lu"] == pytest.approx(
        reference_lra(signal, SR), abs=0.5
    )
    assert document["loudness"]["loudness_range_lu"] > 5  # the test signal has a range


def test_short_recordings_have_no_lra_and_tiny_ones_no_loudness():
    two_seconds = analyze(sine(2, -20))
    assert two_seconds["loudness"]["integrated_lufs"] is not None
    assert two_seconds["loudness"]["loudness_range_lu"] is None
    tiny = analyze(sine(0.3, -20))
    assert tiny["loudness"]["integrated_lufs"] is None
    assert tiny["loudness"]["blocks"] == 0


# --- the NaN-poisoning case -----------------------------------------------------------


def test_nan_samples_do_not_poison_the_loudness_filter():
    """Five NaN samples early in a loud file. pyloudnorm's IIR state becomes NaN and the
    rest of the file silently drops out of its gating (ffmpeg's ebur128 does the same);
    ours replaces them by 0 before filtering and measures the whole file."""
    rng = np.random.default_rng(1)
    quiet = rng.standard_normal((10 * SR, 2)) * 0.05
    loud = rng.standard_normal((30 * SR, 2)) * 0.2
    clean = np.concatenate([quiet, loud])
    poisoned = clean.copy()
    positions = [SR * 5 + 100 * i for i in range(5)]
    poisoned[positions, 0] = np.nan
    reference = clean.copy()
    reference[positions, 0] = 0.0

    ours = analyze(poisoned)["loudness"]["integrated_lufs"]
    expected = pyloudnorm_lufs(reference)
    assert ours == pytest.approx(expected, abs=0.1)
    assert expected == pytest.approx(-8, abs=1.5)
    # ...and the reference implementations really are fooled by this file
    fooled = pyloudnorm_lufs(poisoned)
    assert not math.isfinite(fooled) or abs(fooled - expected) > 1.0


def test_k_weighting_single_section_equals_two_stages():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(48_000)
    combined = k_weighting(SR)
    shelf, highpass = k_weighting_stages(SR)
    two = lfilter(highpass.b, highpass.a, lfilter(shelf.b, shelf.a, x))
    np.testing.assert_allclose(lfilter(combined.b, combined.a, x), two, atol=1e-9)
