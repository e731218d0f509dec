"""Gated loudness from the channel-weighted mean squares of 100 ms sub-blocks.

The streaming part (K-weighting, sub-block energies) lives in the analyzer; what is left
is small: one float per 100 ms (36 000 per hour), so the gating runs on the whole
series at the end and is exact, with no histogram approximation.

- Integrated loudness: ITU-R BS.1770-4 -- 400 ms blocks every 100 ms (75 % overlap), an
  absolute gate at -70 LUFS and a relative gate 10 LU below the loudness of the blocks
  that pass the absolute gate.
- Loudness range: EBU Tech 3342 -- 3 s short-term blocks every 100 ms, absolute gate
  -70 LUFS, relative gate 20 LU below, then the spread between the 10th and the 95th
  percentile of the remaining short-term loudness values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
LRA_LOW_PERCENTILE = 10.0
LRA_HIGH_PERCENTILE = 95.0
MOMENTARY_SUBBLOCKS = 4  # 400 ms
SHORT_TERM_SUBBLOCKS = 30  # 3 s
_OFFSET = -0.691  # BS.1770's calibration constant


def lufs(power: float) -> float:
    return _OFFSET + 10.0 * math.log10(power) if power > 0 else -math.inf


def _lufs_array(power: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore"):
        return _OFFSET + 10.0 * np.log10(power)


def _power(loudness: float) -> float:
    return 10.0 ** ((loudness - _OFFSET) / 10.0)


def moving_mean(values: NDArray[np.float64], length: int) -> NDArray[np.float64]:
    """Means of every run of ``length`` consecutive values (empty if there are fewer)."""
    if len(values) < length:
        return np.empty(0)
    return np.convolve(values, np.full(length, 1.0 / length), mode="valid")


@dataclass(frozen=True)
class LoudnessResult:
    integrated_lufs: float | None
    loudness_range_lu: float | None
    lra_low_lufs: float | None
    lra_high_lufs: float | None
    momentary_max_lufs: float | None
    short_term_max_lufs: float | None
    gated_blocks: int
    blocks: int


def gated_loudness(subblock_power: NDArray[np.float64]) -> LoudnessResult:
    """``subblock_power``: per 100 ms, the sum over channels of weight x mean square of
    the K-weighted signal."""
    # an overflow from absurd input (|x| ~ 1e300) must not turn into an infinite result
    subblock_power = np.where(np.isfinite(subblock_power), subblock_power, 0.0)
    momentary = moving_mean(subblock_power, MOMENTARY_SUBBLOCKS)
    short_term = moving_mean(subblock_power, SHORT_TERM_SUBBLOCKS)
    integrated, gated = integrated_loudness(momentary)
    lra = loudness_range(short_term)
    return LoudnessResult(
        integrated_lufs=integrated,
        loudness_range_lu=lra[0],
        lra_low_lufs=lra[1],
        lra_high_lufs=lra[2],
        momentary_max_lufs=_finite_or_none(lufs(float(momentary.max())))
        if len(momentary)
        else None,
        short_term_max_lufs=(
            _finite_or_none(lufs(float(short_term.max()))) if len(short_term) else None
        ),
        gated_blocks=gated,
        blocks=len(momentary),
    )


def integrated_loudness(block_power: NDArray[np.float64]) -> tuple[float | None, int]:
    """(integrated loudness in LUFS or None when no block passes the gates, gated blocks)."""
    above_absolute = block_power[block_power > _power(ABSOLUTE_GATE_LUFS)]
    if not len(above_absolute):
        return None, 0
    relative_gate = lufs(float(above_absolute.mean())) + RELATIVE_GATE_LU
    gated = above_absolute[above_absolute > _power(relative_gate)]
    if not len(gated):
        return None, 0
    return lufs(float(gated.mean())), len(gated)


def loudness_range(
    short_term_power: NDArray[np.float64],
) -> tuple[float | None, float | None, float | None]:
    """(LRA in LU, its low and high percentile in LUFS); None when no short-term block
    passes the gates (for instance, recordings shorter than 3 s)."""
    above_absolute = short_term_power[short_term_power > _power(ABSOLUTE_GATE_LUFS)]
    if not len(above_absolute):
        return None, None, None
    relative_gate = lufs(float(above_absolute.mean())) + LRA_RELATIVE_GATE_LU
    gated = above_absolute[above_absolute > _power(relative_gate)]
    if not len(gated):
        return None, None, None
    loudness = _lufs_array(gated)
    low, high = np.percentile(loudness, [LRA_LOW_PERCENTILE, LRA_HIGH_PERCENTILE])
    return float(high - low), float(low), float(high)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
