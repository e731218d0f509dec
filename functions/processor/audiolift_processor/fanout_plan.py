"""Which files are analysed in parallel parts, and where the parts start: pure code.

Only uncompressed PCM in containers that hold its frames at fixed byte offsets (WAV,
RF64, W64, AIFF/AIFC, AU, CAF) is split: seeking there is free and exact, so a part's
reader goes straight to its first frame (minus the warm-up) with ranged GETs. Parts
start on multiples of ``analysis.part_alignment`` (the gating sub-block, the silence
window, the true-peak row): no window straddles two parts, and the merge is exact.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .decode import Stream

SPLITTABLE_CONTAINERS = frozenset({"wav", "rf64", "w64", "aiff", "aifc", "au", "caf"})
# One frame, a fixed number of bytes (libsndfile's names).
SPLITTABLE_SUBTYPES = frozenset(
    {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"}
)


@dataclass(frozen=True)
class FanOutPlan:
    """The frame ranges of one object version's analysis; part ``len(ranges)`` is the
    whole file's SHA-256, which cannot be split."""

    etag: str
    size: int
    frames: int
    ranges: tuple[tuple[int, int], ...]

    @property
    def parts(self) -> int:
        return len(self.ranges) + 1

    @property
    def hash_part(self) -> int:
        return len(self.ranges)

    def as_record(self) -> dict[str, Any]:
        return {
            "etag": self.etag,
            "size": self.size,
            "frames": self.frames,
            "ranges": [list(frame_range) for frame_range in self.ranges],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FanOutPlan:
        return cls(
            etag=str(record["etag"]),
            size=int(record["size"]),
            frames=int(record["frames"]),
            ranges=tuple((int(start), int(end)) for start, end in record["ranges"]),
        )


def splittable(stream: Stream) -> bool:
    """Frames at fixed offsets, and a length the header states and the file holds."""
    return (
        stream.container in SPLITTABLE_CONTAINERS
        and stream.subtype in SPLITTABLE_SUBTYPES
        and stream.expected is not None
        and stream.required == stream.expected == stream.decodable
    )


def plan_ranges(
    frames: int, size: int, alignment: int, *, range_bytes: int, max_ranges: int
) -> tuple[tuple[int, int], ...]:
    """Frame ranges covering ``frames`` (of a file of ``size`` bytes), each about
    ``range_bytes`` long and at most ``max_ranges`` of them, every start a multiple of
    ``alignment``. One range means: not worth splitting."""
    if frames <= 0:
        return ()
    if alignment < 1 or range_bytes < 1 or max_ranges < 1:
        raise ValueError("alignment, range_bytes and max_ranges must be positive")
    count = max(1, min(max_ranges, math.ceil(size / range_bytes), frames // alignment))
    starts = sorted({(index * frames // count) // alignment * alignment for index in range(count)})
    return tuple(itertools.pairwise([*starts, frames]))
