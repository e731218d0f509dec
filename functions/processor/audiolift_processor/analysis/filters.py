"""Filter designs: BS.1770 K-weighting at any sample rate, and the 4x true-peak
interpolator.

The K-weighting is the two-stage filter of ITU-R BS.1770-4 (a high shelf modelling the
head, then the "RLB" high-pass), designed from its analog parameters with the bilinear
transform so that it is right at every sample rate, not only at 48 kHz where the
standard tabulates the coefficients. The two biquads are multiplied into a single
4th-order section: one ``lfilter`` pass instead of two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# Analog parameters of the BS.1770 pre-filter (shelf) and RLB high-pass, as fitted to the
# standard's 48 kHz coefficients.
_SHELF_HZ = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_HIGHPASS_HZ = 38.13547087602444
_HIGHPASS_Q = 0.5003270373238773

# Below this rate the shelf lies above Nyquist: BS.1770 loudness is not defined there.
MIN_LOUDNESS_RATE = 8000


@dataclass(frozen=True)
class Biquad:
    b: NDArray[np.float64]
    a: NDArray[np.float64]


def k_weighting_stages(samplerate: float) -> tuple[Biquad, Biquad]:
    """The shelf and high-pass biquads (normalised, a[0] == 1) for ``samplerate``."""
    k = math.tan(math.pi * _SHELF_HZ / samplerate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = Biquad(
        b=np.array(
            [
                (vh + vb * k / _SHELF_Q + k * k) / a0,
                2.0 * (k * k - vh) / a0,
                (vh - vb * k / _SHELF_Q + k * k) / a0,
            ]
        ),
        a=np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _SHELF_Q + k * k) / a0]),
    )
    k = math.tan(math.pi * _HIGHPASS_HZ / samplerate)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = Biquad(
        b=np.array([1.0, -2.0, 1.0]),
        a=np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HIGHPASS_Q + k * k) / a0]),
    )
    return shelf, highpass


def k_weighting(samplerate: float) -> Biquad:
    """Both stages as one 4th-order filter (b, a each of length 5)."""
    shelf, highpass = k_weighting_stages(samplerate)
    return Biquad(b=np.convolve(shelf.b, highpass.b), a=np.convolve(shelf.a, highpass.a))


def settling_samples(filter_: Biquad, tolerance: float = 1e-17) -> int:
    """Samples after which the filter has forgotten its initial state to ``tolerance``
    (relative): from the slowest pole, with a margin for the near-double pole of the
    high-pass (whose decay carries a factor n)."""
    radius = float(np.abs(np.roots(filter_.a)).max())
    if radius >= 1.0:
        raise ValueError("unstable filter")
    return math.ceil(1.5 * math.log(tolerance) / math.log(radius))


# --- true peak ------------------------------------------------------------------------

OVERSAMPLING = 4
TAPS_PER_PHASE = 12
_PROTOTYPE_TAPS = OVERSAMPLING * TAPS_PER_PHASE + 1  # 49: odd, so phase 0 is the identity
_KAISER_BETA = 6.0


def true_peak_phases() -> NDArray[np.float64]:
    """Polyphase taps of a 4x interpolator: shape (3, 12), the three phases that fall
    between the original samples (phase 0 of an odd-length windowed sinc reproduces the
    samples themselves, so the sample peak covers it).

    ``phases[p - 1, k]`` multiplies ``x[n - k]`` for the output at ``n + p/4`` (less the
    filter's fixed delay, which does not matter for a maximum).
    """
    n = np.arange(_PROTOTYPE_TAPS) - (_PROTOTYPE_TAPS - 1) / 2
    prototype = np.sinc(n / OVERSAMPLING) * np.kaiser(_PROTOTYPE_TAPS, _KAISER_BETA)
    return np.stack(
        [prototype[p : p + OVERSAMPLING * TAPS_PER_PHASE : OVERSAMPLING] for p in (1, 2, 3)]
    )


def true_peak_gain_bound(phases: NDArray[np.float64]) -> float:
    """The largest possible |output| of any phase per unit of max|input| over its taps:
    a region whose sample peak times this cannot beat the running true peak is skipped."""
    return float(np.abs(phases).sum(axis=1).max())


def true_peak_matrix(phases: NDArray[np.float64], row: int) -> NDArray[np.float64]:
    """A banded Toeplitz matrix turning a row of ``row`` samples, preceded by the 11 samples
    before it, into its 3 * ``row`` interpolated values with one matrix product (BLAS),
    much faster than any FIR loop numpy offers."""
    history = TAPS_PER_PHASE - 1
    matrix = np.zeros((row + history, row * phases.shape[0]))
    for n in range(row):
        for p in range(phases.shape[0]):
            for k in range(TAPS_PER_PHASE):
                matrix[history + n - k, n * phases.shape[0] + p] = phases[p, k]
    return matrix
