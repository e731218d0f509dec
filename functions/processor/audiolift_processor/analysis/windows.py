"""Streaming building blocks: sums over fixed-length windows, and the waveform overview.

Both carry a partial window/bucket across blocks, so the result does not depend on how
the signal was cut into blocks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

_EMPTY = np.empty(0)


class WindowEnergy:
    """Sums of squares over consecutive windows of ``width`` samples of one channel.

    ``push`` returns the sums of the windows completed by this block; the running total
    of every sample pushed so far is kept in ``total`` (float64 throughout).
    """

    def __init__(self, width: int):
        self.width = max(1, int(width))
        self.partial = 0.0
        self.fill = 0
        self.total = 0.0

    def state(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "partial": self.partial,
            "fill": self.fill,
            "total": self.total,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WindowEnergy:
        restored = cls(int(state["width"]))
        restored.partial = float(state["partial"])
        restored.fill = int(state["fill"])
        restored.total = float(state["total"])
        return restored

    def push(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        width, n = self.width, len(x)
        start = 0
        head: float | None = None
        if self.fill:
            start = min(width - self.fill, n)
            piece = x[:start]
            energy = float(np.dot(piece, piece))
            self.total += energy
            self.partial += energy
            self.fill += start
            if self.fill < width:
                return _EMPTY
            head = self.partial
            self.partial, self.fill = 0.0, 0
        whole = (n - start) // width
        end = start + whole * width
        if whole:
            body = x[start:end].reshape(whole, width)
            sums = np.einsum("ij,ij->i", body, body)
            self.total += float(sums.sum())
        else:
            sums = _EMPTY
        if end < n:
            tail = x[end:]
            self.partial = float(np.dot(tail, tail))
            self.fill = n - end
            self.total += self.partial
        return np.concatenate(([head], sums)) if head is not None else sums


class WindowCount:
    """Counts of finite samples per window, aligned with a `WindowEnergy` of the same
    width. Only created once a channel has shown a non-finite sample."""

    def __init__(self, width: int, fill: int):
        self.width = width
        self.fill = fill  # samples already in the open window, all finite so far
        self.partial = fill

    def state(self) -> dict[str, Any]:
        return {"width": self.width, "fill": self.fill, "partial": self.partial}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WindowCount:
        restored = cls(int(state["width"]), int(state["fill"]))
        restored.partial = int(state["partial"])
        return restored

    def push(self, finite: NDArray[np.bool_] | None, n: int) -> NDArray[np.float64]:
        width = self.width
        counts: list[float] = []
        start = 0
        if self.fill:
            start = min(width - self.fill, n)
            self.partial += start if finite is None else int(np.count_nonzero(finite[:start]))
            self.fill += start
            if self.fill < width:
                return np.asarray(counts, dtype=np.float64)
            counts.append(self.partial)
            self.partial, self.fill = 0, 0
        whole = (n - start) // width
        if finite is None:
            body = np.full(whole, float(width))
        else:
            body = np.count_nonzero(
                finite[start : start + whole * width].reshape(whole, width), axis=1
            ).astype(np.float64)
        rest = n - start - whole * width
        if rest:
            tail = finite[n - rest :] if finite is not None else None
            self.partial = rest if tail is None else int(np.count_nonzero(tail))
            self.fill = rest
        return np.concatenate((np.asarray(counts, dtype=np.float64), body))


class WaveformBuckets:
    """Min/max of consecutive runs of ``span`` frames of one channel, for drawing.

    Starts with 8x the requested number of buckets for the announced length and keeps at
    most 32x; when a block would overflow that, adjacent buckets merge pairwise and the
    span doubles. `result` then folds them into the requested count, so an unknown or
    understated length costs nothing but a few merges, and one overstated up to 8x
    still gives the full count.
    """

    def __init__(self, buckets: int, expected_frames: int | None, start_frame: int = 0):
        """``start_frame``: the frame of the recording the first pushed sample is (a part
        of a recording analysed on its own): buckets stay on the whole recording's grid,
        and one that starts before ``start_frame`` holds only the part's samples."""
        self.target = max(1, buckets)
        self.capacity = 32 * self.target
        fine = 8 * self.target
        self.span = max(1, math.ceil(expected_frames / fine)) if expected_frames else 1
        self.mins = np.full(self.capacity, np.inf)
        self.maxs = np.full(self.capacity, -np.inf)
        self.count = 0
        self.frames = start_frame

    def state(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "span": self.span,
            "count": self.count,
            "frames": self.frames,
            "mins": self.mins[: self.count].copy(),
            "maxs": self.maxs[: self.count].copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WaveformBuckets:
        restored = cls(int(state["target"]), None)
        restored.span = int(state["span"])
        restored.count = count = int(state["count"])
        restored.frames = int(state["frames"])
        restored.mins[:count] = state["mins"]
        restored.maxs[:count] = state["maxs"]
        return restored

    def push(self, low: NDArray[np.float64], high: NDArray[np.float64]) -> tuple[float, float]:
        """Add a block (``low`` for minima, ``high`` for maxima: the same samples, with
        non-finite ones replaced by +inf and -inf respectively). Returns the block's
        (min, max)."""
        n = len(low)
        if n == 0:
            return math.inf, -math.inf
        while math.ceil((self.frames + n) / self.span) > self.capacity:
            self._merge()
        span = self.span
        start = 0
        block_min, block_max = math.inf, -math.inf
        offset = self.frames % span
        if offset and not self.count:
            self.count = 1  # a part starting inside a bucket: its share of that bucket
        if offset:
            start = min(span - offset, n)
            lo, hi = float(low[:start].min()), float(high[:start].max())
            last = self.count - 1
            self.mins[last] = min(self.mins[last], lo)
            self.maxs[last] = max(self.maxs[last], hi)
            block_min, block_max = lo, hi
        whole = (n - start) // span
        if whole:
            end = start + whole * span
            mins = low[start:end].reshape(whole, span).min(axis=1)
            maxs = high[start:end].reshape(whole, span).max(axis=1)
            self.mins[self.count : self.count + whole] = mins
            self.maxs[self.count : self.count + whole] = maxs
            self.count += whole
            block_min = min(block_min, float(mins.min()))
            block_max = max(block_max, float(maxs.max()))
            start = end
        if start < n:
            lo, hi = float(low[start:].min()), float(high[start:].max())
            self.mins[self.count], self.maxs[self.count] = lo, hi
            self.count += 1
            block_min, block_max = min(block_min, lo), max(block_max, hi)
        self.frames += n
        return block_min, block_max

    def _merge(self) -> None:
        count = self.count
        half = (count + 1) // 2
        mins, maxs = self.mins, self.maxs
        if count:
            if count % 2:
                mins[count] = np.inf
                maxs[count] = -np.inf
            merged_min = np.minimum(mins[0 : 2 * half : 2], mins[1 : 2 * half : 2])
            merged_max = np.maximum(maxs[0 : 2 * half : 2], maxs[1 : 2 * half : 2])
            mins[:half], maxs[:half] = merged_min, merged_max
            mins[half:count] = np.inf
            maxs[half:count] = -np.inf
        self.count = half
        self.span *= 2

    def result(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(mins, maxs) with at most the requested number of buckets; empty buckets (no
        finite sample) hold +inf / -inf."""
        count = self.count
        mins, maxs = self.mins[:count], self.maxs[:count]
        if count <= self.target:
            return mins.copy(), maxs.copy()
        edges = np.floor(np.arange(self.target) * (count / self.target)).astype(np.intp)
        return np.minimum.reduceat(mins, edges), np.maximum.reduceat(maxs, edges)
