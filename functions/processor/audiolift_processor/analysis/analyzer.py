"""The streaming analyzer: feed blocks of samples, get one JSON-safe document at the end.

Memory is constant in the length of the recording (apart from one float per 100 ms for
the loudness gating). Each channel is processed by its own task -- de-interleave and
convert, statistics, K-weighting, window energies, true peak -- on a small thread pool:
numpy and scipy release the GIL in their loops, so channels run in parallel; the
cross-channel parts (loudness weighting, silence) are cheap and run on the caller's
thread.

Unusable samples -- NaN, +-Inf, and finite ones so large (beyond `LARGEST_SAMPLE`) that
their squares would overflow -- are counted per channel, replaced by 0 before anything
else sees them (the K-weighting filter's state would otherwise stay NaN or infinite for
the rest of the file) and left out of every statistic (peak, RMS, DC, clipping,
waveform). Time where any channel holds one is reported as such, never as silence.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray
from scipy.signal import lfilter

try:  # keep BLAS to one thread: our own workers already use every core
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - then OPENBLAS_NUM_THREADS=1 should be set
    threadpool_limits = None

from . import filters
from .layout import ChannelLayout, assumed_layout
from .loudness import gated_loudness
from .windows import WaveformBuckets, WindowCount, WindowEnergy

SCHEMA_VERSION = 1
STATE_VERSION = 1  # of `StreamingAnalyzer.state`
_EMPTY = np.empty(0)
TRUE_PEAK_ROW = 16  # samples per row of the true-peak matrix product
_FLOAT32_SAFE = 1e30  # interpolation runs in float32 (BLAS sgemm)
# Beyond this a finite sample is not audio (2000 dB above full scale): its square, summed
# over a window or K-weighted, could overflow. Such samples count as unusable.
LARGEST_SAMPLE = 1e100
_LARGEST_ENERGY = LARGEST_SAMPLE * LARGEST_SAMPLE


@dataclass(frozen=True)
class AnalysisOptions:
    waveform_buckets: int = 800
    silence_threshold_dbfs: float = -60.0
    silence_window_seconds: float = 0.05
    true_peak: bool = True
    # Worker threads for the per-channel work; None = one per CPU (never more than there
    # are channels). 1 runs everything on the caller's thread, with no read-ahead.
    threads: int | None = None


def part_alignment(samplerate: int, options: AnalysisOptions | None = None) -> int:
    """Frames a part of a recording analysed on its own must start on a multiple of: the
    gating sub-block, the silence window and the true-peak row, so that no window (and no
    row of the interpolator, which keeps its float32 rounding) straddles two parts."""
    options = options or AnalysisOptions()
    subblock = max(1, round(samplerate / 10))
    silence_window = max(1, round(samplerate * options.silence_window_seconds))
    return math.lcm(subblock, silence_window, TRUE_PEAK_ROW)


def channel_weights(channels: int) -> tuple[float, ...]:
    """BS.1770 weights for a file of ``channels`` that declares no layout."""
    return assumed_layout(channels).weights


def db(amplitude: float) -> float | None:
    """20*log10, with silence (and anything non-finite) as None, never -inf or NaN."""
    if not math.isfinite(amplitude) or amplitude <= 0:
        return None
    return 20.0 * math.log10(amplitude)


class _ChannelState:
    """Everything one channel accumulates. Touched by one worker at a time."""

    def __init__(
        self,
        samplerate: int,
        expected_frames: int | None,
        options: AnalysisOptions,
        *,
        subblock: int,
        silence_window: int,
        clip_level: float,
        kfilter: filters.Biquad | None,
        true_peak: tuple[NDArray[np.float64], float] | None,
        start_frame: int = 0,
    ):
        self.history = filters.TAPS_PER_PHASE - 1 if true_peak else 0
        self.buffer = np.zeros(self.history)
        self.clip_level = clip_level
        self.nan = 0
        self.inf = 0
        self.overflow = 0  # finite, but beyond LARGEST_SAMPLE
        self.samples = 0
        self.clipped = 0
        self.sum = 0.0
        self.silence = WindowEnergy(silence_window)
        self.silence_counts: WindowCount | None = None
        self.waveform = WaveformBuckets(options.waveform_buckets, expected_frames, start_frame)
        self.low = math.inf
        self.high = -math.inf
        self.kfilter = kfilter
        self.kstate = np.zeros(4)
        self.zero_state = np.zeros(4)
        self.split_helper: ThreadPoolExecutor | None = None
        self.warm_up = filters.settling_samples(kfilter) if kfilter is not None else 0
        self.subblocks = WindowEnergy(subblock)
        self.true_peak = 0.0
        if true_peak is not None:
            self.tp_matrix, self.tp_gain = true_peak
            self.tp_matrix32 = self.tp_matrix.astype(np.float32)

    # Everything carried from one block to the next, as plain data (see `state`).
    _SCALARS = ("nan", "inf", "overflow", "samples", "clipped", "sum", "low", "high", "true_peak")

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in self._SCALARS}
        state.update(
            history=self.buffer[: self.history].copy(),
            kstate=np.array(self.kstate, dtype=np.float64),
            silence=self.silence.state(),
            silence_counts=None if self.silence_counts is None else self.silence_counts.state(),
            waveform=self.waveform.state(),
            subblocks=self.subblocks.state(),
        )
        return state

    def load(self, state: dict[str, Any]) -> None:
        """Continue from `state` (this object must be configured as the saved one was)."""
        for name in self._SCALARS:
            setattr(self, name, type(getattr(self, name))(state[name]))
        history = np.asarray(state["history"], dtype=np.float64)
        if len(history) != self.history:
            raise ValueError("the saved state was made with other true-peak settings")
        self.buffer = history.copy()
        self.kstate = np.asarray(state["kstate"], dtype=np.float64).copy()
        self.silence = WindowEnergy.from_state(state["silence"])
        counts = state["silence_counts"]
        self.silence_counts = None if counts is None else WindowCount.from_state(counts)
        self.waveform = WaveformBuckets.from_state(state["waveform"])
        self.subblocks = WindowEnergy.from_state(state["subblocks"])

    def prime(self, column: NDArray[Any], scale: float | None) -> None:
        """Bring the K-weighting filter and the true-peak history to where they would be
        after ``column`` (the samples just before this channel's first analysed one),
        counting nothing: the filter forgets its zero start exponentially, so a column of
        ``filters.settling_samples`` frames leaves its state exact in float64, and the
        history is the column's last samples exactly."""
        x = np.asarray(column, dtype=np.float64) * (1.0 if scale is None else scale)
        with np.errstate(invalid="ignore"):
            x[~(np.abs(x) <= LARGEST_SAMPLE)] = 0.0  # as `process` does before filtering
        if self.kfilter is not None and len(x):
            _, self.kstate = lfilter(self.kfilter.b, self.kfilter.a, x, zi=self.kstate)
        if self.history:
            tail = x[-self.history :]
            self.buffer[: self.history] = 0.0
            self.buffer[self.history - len(tail) : self.history] = tail

    def process(
        self, column: NDArray[Any], scale: float | None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None, NDArray[np.float64]]:
        """Analyze one block of this channel (``column`` may be a strided view into an
        interleaved block of any numeric dtype; ``scale`` maps integers to [-1, 1)).

        Returns the energies of the silence windows and K-weighted 100 ms sub-blocks it
        completed, and the usable-sample counts of those silence windows if this channel
        has ever held an unusable sample."""
        n = len(column)
        if n == 0:
            return _EMPTY, None if self.silence_counts is None else _EMPTY, _EMPTY
        x = self._load(column, scale)
        usable = self._usable(x) if scale is None else None  # integers are always usable
        if usable is None:
            low = high = x
        else:
            low = np.where(usable, x, np.inf)
            high = np.where(usable, x, -np.inf)
            x[~usable] = 0.0  # before the filter and the energies see it
        self.sum += float(x.sum())
        block_peak = self._levels(x, low, high)

        silence = self.silence.push(x)
        counts = self.silence_counts.push(usable, n) if self.silence_counts else None
        loudness = self._k_weighted_energies(x) if self.kfilter is not None else _EMPTY
        if self.history:
            self._true_peak(n, block_peak)
            self.buffer[: self.history] = self.buffer[n : n + self.history]
        return silence, counts, loudness

    def _load(self, column: NDArray[Any], scale: float | None) -> NDArray[np.float64]:
        """The block as float64, after the true-peak history in the working buffer."""
        n, history = len(column), self.history
        if len(self.buffer) < history + n:
            grown = np.empty(history + n)
            grown[:history] = self.buffer[:history]
            self.buffer = grown
        x = self.buffer[history : history + n]
        if scale is None:
            np.copyto(x, column, casting="unsafe")
        else:
            np.multiply(column, scale, out=x)
        self.samples += n
        return x

    def _usable(self, x: NDArray[np.float64]) -> NDArray[np.bool_] | None:
        """None when every sample is usable (one dot product says so), else the mask of
        usable samples, with the others counted."""
        with np.errstate(over="ignore", invalid="ignore"):
            if float(np.dot(x, x)) < _LARGEST_ENERGY:  # False for NaN and overflow
                return None
            usable = np.abs(x) <= LARGEST_SAMPLE  # False for NaN
        bad = len(x) - int(np.count_nonzero(usable))
        if not bad:
            return None
        nan = int(np.count_nonzero(np.isnan(x)))
        inf = int(np.count_nonzero(np.isinf(x)))
        self.nan += nan
        self.inf += inf
        self.overflow += bad - nan - inf
        if self.silence_counts is None:
            self.silence_counts = WindowCount(self.silence.width, self.silence.fill)
        return usable

    def _levels(
        self, x: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64]
    ) -> float:
        """Waveform, extremes and clipping of one block; returns the block's peak."""
        block_min, block_max = self.waveform.push(low, high)
        self.low, self.high = min(self.low, block_min), max(self.high, block_max)
        block_peak = max(-block_min, block_max, 0.0)
        if block_peak >= self.clip_level:  # unusable samples are 0 in x by now
            self.clipped += int(np.count_nonzero(np.abs(x) >= self.clip_level))
        return block_peak

    def _k_weighted_energies(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """K-weight ``x`` (carrying the filter state) and return the energies of the 100 ms
        sub-blocks completed.

        With a helper thread (one channel, several cores) the block is cut in two: the
        first half is filtered on the helper from the carried state, the second half here
        from silence after a warm-up on the samples before it, long enough for the
        difference to decay below 1e-17 -- exact in float64 -- so one channel uses two
        cores for the serial IIR filter too."""
        kfilter = self.kfilter
        assert kfilter is not None
        n = len(x)
        helper, warm_up = self.split_helper, self.warm_up
        if helper is None or n < 4 * warm_up:
            weighted, self.kstate = lfilter(kfilter.b, kfilter.a, x, zi=self.kstate)
            return self.subblocks.push(weighted)
        half = n // 2
        first = helper.submit(lfilter, kfilter.b, kfilter.a, x[:half], zi=self.kstate)
        second, state = lfilter(kfilter.b, kfilter.a, x[half - warm_up :], zi=self.zero_state)
        head, _ = first.result()
        self.kstate = state
        return np.concatenate((self.subblocks.push(head), self.subblocks.push(second[warm_up:])))

    def _true_peak(self, n: int, block_peak: float) -> None:
        """Max |x| of the 4x-interpolated signal.

        An interpolated value is bounded by the filter's gain times the peak of the 12
        samples it reads. So only samples above (peak so far) / gain can raise the true
        peak, and only the rows of 16 outputs that read one of them are computed -- one
        matrix product over those rows (BLAS), or over the whole block when most qualify.
        Typical audio then costs a small fraction of a full 4x interpolation."""
        best = max(self.true_peak, block_peak)
        history, row = self.history, TRUE_PEAK_ROW
        buffer = self.buffer
        gain = self.tp_gain
        previous_peak = float(np.abs(buffer[:history]).max())
        reachable = max(block_peak, previous_peak) * gain
        if reachable <= best or reachable > _FLOAT32_SAFE:
            # too quiet to matter -- or absurd input float32 cannot hold: the sample peak
            # is all that can be said then
            self.true_peak = best
            return
        rows = n // row
        if rows:
            # buffer index j is read by rows (j - 11) // 16 and j // 16
            threshold = best / gain * (1.0 - 1e-12)  # rounding may only add rows
            loud = np.flatnonzero(np.abs(buffer[: history + rows * row]) > threshold)
            wanted = np.zeros(rows + 1, dtype=bool)
            wanted[loud // row] = True
            wanted[np.maximum(loud - history, 0) // row] = True
            chosen = np.flatnonzero(wanted[:rows])
            if len(chosen):
                best = max(best, self._interpolated_peak(chosen, rows))
        rest = n - rows * row
        if rest:
            start = rows * row
            window = buffer[start : start + rest + history].astype(np.float32)
            values = window @ self.tp_matrix32[: rest + history, : 3 * rest]
            best = max(best, float(values.max()), -float(values.min()))
        self.true_peak = best

    def _interpolated_peak(self, chosen: NDArray[np.intp], rows: int) -> float:
        """Peak of the interpolated values of the ``chosen`` rows (of ``rows``)."""
        windows = as_strided(
            self.buffer,
            shape=(rows, TRUE_PEAK_ROW + self.history),
            strides=(TRUE_PEAK_ROW * 8, 8),
            writeable=False,
        )
        # a third of them or more: one contiguous pass is cheaper than gathering rows
        selected = windows if 3 * len(chosen) > rows else windows[chosen]
        values = selected.astype(np.float32) @ self.tp_matrix32
        return max(float(values.max()), -float(values.min()))


class StreamingAnalyzer:
    """Feed blocks of shape (frames, channels) -- float in [-1, 1], or integers with a
    ``scale`` -- then call `finish` once for the document."""

    def __init__(
        self,
        samplerate: int,
        channels: int,
        *,
        expected_frames: int | None = None,
        options: AnalysisOptions | None = None,
        clip_level: float = 1.0,
        layout: ChannelLayout | None = None,
        start_frame: int = 0,
    ):
        """``start_frame``: where in the recording the first fed frame is, when a part of
        it is analysed on its own (see `warm_up` and `merge`)."""
        if samplerate <= 0 or channels <= 0:
            raise ValueError("samplerate and channels must be positive")
        self.options = options or AnalysisOptions()
        self.samplerate = int(samplerate)
        self.channels = int(channels)
        self.layout = layout or assumed_layout(self.channels)
        if len(self.layout.positions) != self.channels:
            raise ValueError(f"the layout names {len(self.layout.positions)} channels")
        self.expected_frames = expected_frames
        self.start_frame = int(start_frame)
        self.frames = 0
        self.clip_level = clip_level
        self.weights = self.layout.weights
        self.subblock = max(1, round(self.samplerate / 10))  # 100 ms, as libebur128 rounds
        self.silence_window = max(1, round(self.samplerate * self.options.silence_window_seconds))
        self.silence_power = 10.0 ** (self.options.silence_threshold_dbfs / 10.0)
        self.loudness_enabled = self.samplerate >= filters.MIN_LOUDNESS_RATE
        kfilter = filters.k_weighting(self.samplerate) if self.loudness_enabled else None
        self._states = self._channel_states(kfilter)
        self._subblock_power: list[NDArray[np.float64]] = []
        self._silent_windows = 0
        self._silent_run = 0
        self._longest_run = 0
        self._windows = 0
        self._unusable_windows = 0
        # The silent run this analysis starts with, and whether it is still open (a
        # part's leading run joins the previous part's trailing one in `merge`).
        self._leading_run = 0
        self._leading_open = True
        self._pending: list[Future[Any]] | None = None
        self._finished = False
        self._start_workers(kfilter is not None)

    def _channel_states(self, kfilter: filters.Biquad | None) -> list[_ChannelState]:
        true_peak = None
        if self.options.true_peak:
            phases = filters.true_peak_phases()
            true_peak = (
                filters.true_peak_matrix(phases, TRUE_PEAK_ROW),
                filters.true_peak_gain_bound(phases),
            )
        return [
            _ChannelState(
                self.samplerate,
                self.expected_frames,
                self.options,
                subblock=self.subblock,
                silence_window=self.silence_window,
                clip_level=self.clip_level,
                kfilter=kfilter,
                true_peak=true_peak,
                start_frame=self.start_frame,
            )
            for _ in range(self.channels)
        ]

    def _start_workers(self, filtering: bool) -> None:
        threads = self.options.threads or _usable_cpus()
        # even one channel gets a worker when there is a second core: the caller reads
        # the next block (see `submit`) while it works
        self._pool = (
            ThreadPoolExecutor(min(threads, self.channels), "analysis") if threads > 1 else None
        )
        self._split_helper: ThreadPoolExecutor | None = None
        if threads > 1 and self.channels == 1 and filtering:
            self._split_helper = ThreadPoolExecutor(1, "analysis-split")
            self._states[0].split_helper = self._split_helper
        self._blas_limit = (
            threadpool_limits(limits=1, user_api="blas")
            if threadpool_limits is not None and self.options.true_peak
            else None
        )

    @property
    def warm_up_frames(self) -> int:
        """Frames `warm_up` needs before a part's first frame: as many as the K-weighting
        filter takes to forget its start (to 1e-17), or the true-peak history."""
        kfilter = self._states[0].kfilter
        if kfilter is not None:
            return max(filters.settling_samples(kfilter), TRUE_PEAK_ROW)
        return filters.TAPS_PER_PHASE

    # --- saving and restoring ---------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything this analysis carries between blocks, as plain data (dicts, lists,
        numbers, strings, None and numpy arrays; `analysis.state.dumps` makes bytes of
        it). `restore` continues from it exactly: the same document as straight through.
        Waits for a block given to `submit` first."""
        self.collect()
        if self._finished:
            raise RuntimeError("the analyzer has finished")
        power = np.concatenate(self._subblock_power) if self._subblock_power else np.empty(0)
        return {
            "version": STATE_VERSION,
            "samplerate": self.samplerate,
            "channels": self.channels,
            "expected_frames": self.expected_frames,
            "clip_level": self.clip_level,
            "options": asdict(self.options),
            "layout": {
                "positions": list(self.layout.positions),
                "declared": self.layout.declared,
                "source": self.layout.source,
            },
            "frames": self.frames,
            "start_frame": self.start_frame,
            "leading_silence": [self._leading_run, self._leading_open],
            "subblock_power": power,
            "silence_runs": [
                self._silent_windows,
                self._silent_run,
                self._longest_run,
                self._windows,
                self._unusable_windows,
            ],
            "channel_states": [state.state() for state in self._states],
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> StreamingAnalyzer:
        """An analyzer that continues where the one that made `state` stopped."""
        if state.get("version") != STATE_VERSION:
            raise ValueError("the saved analysis state is from another version")
        layout = state["layout"]
        analyzer = cls(
            int(state["samplerate"]),
            int(state["channels"]),
            expected_frames=state["expected_frames"],
            options=AnalysisOptions(**state["options"]),
            clip_level=float(state["clip_level"]),
            layout=ChannelLayout(
                tuple(layout["positions"]), bool(layout["declared"]), str(layout["source"])
            ),
            start_frame=int(state.get("start_frame", 0)),
        )
        analyzer.frames = int(state["frames"])
        leading_run, leading_open = state.get("leading_silence", (0, False))
        analyzer._leading_run, analyzer._leading_open = int(leading_run), bool(leading_open)
        power = np.asarray(state["subblock_power"], dtype=np.float64)
        analyzer._subblock_power = [power.copy()] if len(power) else []
        (
            analyzer._silent_windows,
            analyzer._silent_run,
            analyzer._longest_run,
            analyzer._windows,
            analyzer._unusable_windows,
        ) = (int(value) for value in state["silence_runs"])
        for channel, saved in zip(analyzer._states, state["channel_states"], strict=True):
            channel.load(saved)
        return analyzer

    @classmethod
    def merge(cls, states: Sequence[dict[str, Any]]) -> StreamingAnalyzer:
        """One analyzer from the states of consecutive parts of a recording, each analysed
        on its own from its ``start_frame`` (after `warm_up`): its document is the one a
        single analysis straight through would give. See `merge.merge_states`."""
        from .merge import merge_states

        return cls.restore(merge_states(states))

    # --- feeding ----------------------------------------------------------------------

    def feed(self, block: NDArray[Any], *, scale: float | None = None) -> None:
        """Analyze one block of shape (frames, channels) (or (frames,) for mono)."""
        self.submit(block, scale=scale)
        self.collect()

    def warm_up(self, block: NDArray[Any], *, scale: float | None = None) -> None:
        """Prime the filters with the frames just before `start_frame` without analysing
        them: a part then measures what a straight-through analysis measures there."""
        array = self._checked(block, scale)
        self.collect()
        for index, state in _enum(self):
            state.prime(array[:, index], scale)

    def submit(self, block: NDArray[Any], *, scale: float | None = None) -> None:
        """Start analysing ``block`` on the worker threads and return at once; the caller
        may then read the next block, but must not touch this one until `collect`."""
        array = self._checked(block, scale)
        if self._pending is not None:
            self.collect()
        self.frames += array.shape[0]
        if self._pool is None:
            self._pending = [_done(state.process(array[:, i], scale)) for i, state in _enum(self)]
        else:
            pool = self._pool
            self._pending = [
                pool.submit(state.process, array[:, i], scale) for i, state in _enum(self)
            ]

    def _checked(self, block: NDArray[Any], scale: float | None) -> NDArray[Any]:
        if self._finished:
            raise RuntimeError("the analyzer has finished")
        array = np.asarray(block)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2 or array.shape[1] != self.channels:
            raise ValueError(f"expected a block of shape (frames, {self.channels})")
        if array.dtype.kind not in "fiu":
            raise ValueError(f"expected numeric samples, got {array.dtype}")
        if array.dtype.kind in "iu" and scale is None:
            raise ValueError("integer samples need a scale")
        return array

    def collect(self) -> None:
        """Wait for the block given to `submit` and fold its cross-channel results in."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        results = [future.result() for future in pending]
        self._combine_silence([r[0] for r in results], [r[1] for r in results])
        if self.loudness_enabled:
            power = sum(w * r[2] for w, r in zip(self.weights, results, strict=True) if w)
            if isinstance(power, np.ndarray) and len(power):
                self._subblock_power.append(power / self.subblock)

    def _combine_silence(
        self,
        energies: Sequence[NDArray[np.float64]],
        counts: Sequence[NDArray[np.float64] | None],
    ) -> None:
        """Silent windows: every channel quiet. A window where any channel holds an
        unusable sample is neither silent nor loud: it is counted on its own."""
        windows = len(energies[0])
        if not windows:
            return
        loudest = np.zeros(windows)
        unusable = np.zeros(windows, dtype=bool)
        for energy, count in zip(energies, counts, strict=True):
            if count is None:
                mean_square = energy / self.silence_window
            else:
                unusable |= count < self.silence_window
                with np.errstate(divide="ignore", invalid="ignore"):
                    mean_square = np.where(count > 0, energy / np.maximum(count, 1), 0.0)
            np.maximum(loudest, mean_square, out=loudest)
        silent = (loudest < self.silence_power) & ~unusable
        self._windows += windows
        self._unusable_windows += int(np.count_nonzero(unusable))
        self._add_silent_runs(silent)

    def _add_silent_runs(self, silent: NDArray[np.bool_]) -> None:
        count = int(np.count_nonzero(silent))
        if self._leading_open:
            if count == len(silent):
                self._leading_run += count
            else:
                self._leading_run += int(np.argmin(silent))  # up to the first loud window
                self._leading_open = False
        self._silent_windows += count
        if count == 0:
            self._silent_run = 0
            return
        if count == len(silent):
            self._silent_run += count
            self._longest_run = max(self._longest_run, self._silent_run)
            return
        # run lengths of True in `silent`, the first one continuing the open run
        padded = np.concatenate(([False], silent, [False])).astype(np.int8)
        edges = np.diff(padded)
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        runs = ends - starts
        if silent[0]:
            runs[0] += self._silent_run
        self._longest_run = max(self._longest_run, int(runs.max()))
        self._silent_run = int(runs[-1]) if silent[-1] else 0

    # --- the result -------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker threads (idempotent; `finish` calls it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._split_helper is not None:
            self._split_helper.shutdown(wait=True)
            self._split_helper = None
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None

    def finish(self) -> dict[str, Any]:
        """The analysis document (JSON-safe: no NaN or infinity anywhere)."""
        self.collect()
        self._finished = True
        self.close()
        duration = self.frames / self.samplerate
        return {
            "schema_version": SCHEMA_VERSION,
            "format": {
                "sample_rate": self.samplerate,
                "channels": self.channels,
                "frames": self.frames,
                "duration_seconds": duration,
                "channel_layout": self.layout.document(),
            },
            "peak_dbfs": db(max((_peak(s) for s in self._states), default=0.0)),
            "channels": [self._channel_document(i, s) for i, s in enumerate(self._states)],
            "loudness": self._loudness_document(),
            "silence": self._silence_document(),
            "waveform": self._waveform_document(),
        }

    def _channel_document(self, index: int, state: _ChannelState) -> dict[str, Any]:
        finite = state.samples - state.nan - state.inf - state.overflow
        rms = math.sqrt(state.silence.total / finite) if finite else 0.0
        document: dict[str, Any] = {
            "index": index,
            "peak_dbfs": db(_peak(state)),
            "rms_dbfs": db(rms),
            "dc_offset": _finite(state.sum / finite) if finite else None,
            "clipped_samples": state.clipped,
            "nan_samples": state.nan,
            "inf_samples": state.inf,
            "overflow_samples": state.overflow,
            "finite_samples": finite,
            "position": self.layout.positions[index],
        }
        if self.options.true_peak:
            document["true_peak_dbtp"] = db(state.true_peak) if finite else None
        return document

    def _loudness_document(self) -> dict[str, Any]:
        power = np.concatenate(self._subblock_power) if self._subblock_power else np.empty(0)
        result = gated_loudness(power)
        true_peak = max((s.true_peak for s in self._states), default=0.0)
        return {
            "integrated_lufs": result.integrated_lufs,
            "loudness_range_lu": result.loudness_range_lu,
            "lra_low_lufs": result.lra_low_lufs,
            "lra_high_lufs": result.lra_high_lufs,
            "momentary_max_lufs": result.momentary_max_lufs,
            "short_term_max_lufs": result.short_term_max_lufs,
            "true_peak_dbtp": db(true_peak) if self.options.true_peak else None,
            "gated_blocks": result.gated_blocks,
            "blocks": result.blocks,
            "channel_weights": list(self.weights),
            "method": "ITU-R BS.1770-4 / EBU R128, LRA per EBU Tech 3342"
            if self.loudness_enabled
            else f"not measured: BS.1770 needs >= {filters.MIN_LOUDNESS_RATE} Hz",
        }

    def _silence_document(self) -> dict[str, Any]:
        windows = float(self._windows)
        silent = float(self._silent_windows)
        unusable = float(self._unusable_windows)
        longest = float(self._longest_run)
        fill = self._states[0].silence.fill
        if fill:  # the last, partial window counts for its share
            fraction = fill / self.silence_window
            windows += fraction
            quiet, usable = self._last_window_is_quiet(fill)
            if not usable:
                unusable += fraction
            elif quiet:
                silent += fraction
                longest = max(longest, self._silent_run + fraction)
        window_seconds = self.silence_window / self.samplerate
        return {
            "threshold_dbfs": self.options.silence_threshold_dbfs,
            "window_seconds": window_seconds,
            "silent_seconds": silent * window_seconds,
            "ratio": silent / windows if windows else None,
            "longest_seconds": longest * window_seconds,
            "non_finite_seconds": unusable * window_seconds,
        }

    def _last_window_is_quiet(self, fill: int) -> tuple[bool, bool]:
        """(quiet, every sample usable) for the partial window at the end."""
        loudest, usable = 0.0, True
        for state in self._states:
            counted = state.silence_counts.partial if state.silence_counts is not None else fill
            usable = usable and counted == fill
            if counted:
                loudest = max(loudest, state.silence.partial / counted)
        return loudest < self.silence_power, usable

    def _waveform_document(self) -> dict[str, Any]:
        channels = []
        count = 0
        for state in self._states:
            mins, maxs = state.waveform.result()
            count = len(mins)
            channels.append({"min": _rounded(mins), "max": _rounded(maxs)})
        return {
            "buckets": count,
            "frames_per_bucket": self.frames / count if count else None,
            "channels": channels,
        }


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _enum(analyzer: StreamingAnalyzer) -> list[tuple[int, _ChannelState]]:
    return list(enumerate(analyzer._states))


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _peak(state: _ChannelState) -> float:
    return max(-state.low, state.high, 0.0) if math.isfinite(state.low) else 0.0


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _rounded(values: NDArray[np.float64]) -> list[float | None]:
    return [round(float(v), 5) if math.isfinite(v) else None for v in values]
