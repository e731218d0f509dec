"""Channel layouts and the BS.1770 weight of each loudspeaker position.

BS.1770-4 weights channels by where they play: front and centre 1.0, the surrounds
beside and behind the listener +1.5 dB (x1.41), the LFE not at all. Positions use the
WAVE_FORMAT_EXTENSIBLE speaker names (the bits of its channel mask, in that order); a
file that declares no layout gets the WAVE default for its channel count, and the
document says it was assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The channel-mask bits of WAVE_FORMAT_EXTENSIBLE, bit 0 first.
WAVE_POSITIONS = (
    "FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR",
    "TC", "TFL", "TFC", "TFR", "TBL", "TBC", "TBR",
)  # fmt: skip
SURROUND_WEIGHT = 1.41  # +1.5 dB, as BS.1770-4 and libebur128/ffmpeg round it
# At ear level beside or behind the listener. Elevated channels keep 1.0 (BS.1770-4
# weights by azimuth only below 30 degrees of elevation).
SURROUND_POSITIONS = frozenset({"BL", "BR", "BC", "SL", "SR", "Rls", "Rrs"})
LFE_POSITIONS = frozenset({"LFE", "LFE2"})

# What a file without a layout is taken to be: Microsoft's defaults for WAVE.
DEFAULT_MASKS = {1: 0x4, 2: 0x3, 3: 0x7, 4: 0x33, 5: 0x37, 6: 0x3F, 7: 0x70F, 8: 0x63F}
_NAMES = {
    ("FC",): "mono",
    ("FL", "FR"): "stereo",
    ("FL", "FR", "FC"): "3.0",
    ("FL", "FR", "BL", "BR"): "quad",
    ("FL", "FR", "FC", "BC"): "4.0",
    ("FL", "FR", "FC", "BL", "BR"): "5.0",
    ("FL", "FR", "FC", "SL", "SR"): "5.0(side)",
    ("FL", "FR", "FC", "LFE", "BL", "BR"): "5.1",
    ("FL", "FR", "FC", "LFE", "SL", "SR"): "5.1(side)",
    ("FL", "FR", "FC", "BC", "SL", "SR"): "6.0",
    ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"): "6.1",
    ("FL", "FR", "FC", "LFE", "BL", "BR", "BC"): "6.1(back)",
    ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"): "7.1",
    ("FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC"): "7.1(wide)",
}

_NAMES_BY_SET = {frozenset(positions): name for positions, name in _NAMES.items()}

# The order Vorbis I (section 4.3.9) fixes for 1-8 channels; Opus mapping family 0 and 1
# use it too. libsndfile passes channels on in this order.
VORBIS_ORDER = {
    1: ("FC",),
    2: ("FL", "FR"),
    3: ("FL", "FC", "FR"),
    4: ("FL", "FR", "BL", "BR"),
    5: ("FL", "FC", "FR", "BL", "BR"),
    6: ("FL", "FC", "FR", "BL", "BR", "LFE"),
    7: ("FL", "FC", "FR", "SL", "SR", "BC", "LFE"),
    8: ("FL", "FC", "FR", "SL", "SR", "BL", "BR", "LFE"),
}


def weight(position: str | None) -> float:
    """The BS.1770 weight of one position (an unknown position counts as a front)."""
    if position in LFE_POSITIONS:
        return 0.0
    return SURROUND_WEIGHT if position in SURROUND_POSITIONS else 1.0


def mask_positions(mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in enumerate(WAVE_POSITIONS) if mask >> bit & 1)


@dataclass(frozen=True)
class ChannelLayout:
    """One position per channel (None where the file does not say), and where it came
    from: ``declared`` is False when the layout was assumed from the channel count."""

    positions: tuple[str | None, ...]
    declared: bool
    source: str

    @property
    def name(self) -> str:
        """The usual name of this set of positions, in whatever order."""
        known = {position for position in self.positions if position is not None}
        if len(known) != len(self.positions):  # unknown or repeated positions
            return f"{len(self.positions)} channels"
        return _NAMES_BY_SET.get(frozenset(known), f"{len(self.positions)} channels")

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(weight(position) for position in self.positions)

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "positions": list(self.positions),
            "declared": self.declared,
            "source": self.source,
        }


def declared_layout(positions: tuple[str, ...], channels: int, source: str) -> ChannelLayout:
    """A layout the file states; channels beyond the positions it names stay unknown."""
    padded = (*positions[:channels], *(None,) * (channels - len(positions)))
    return ChannelLayout(padded, True, source)


def assumed_layout(channels: int) -> ChannelLayout:
    """The layout taken when the file declares none."""
    mask = DEFAULT_MASKS.get(channels)
    if mask is None:
        return ChannelLayout(
            (None,) * channels,
            False,
            f"none declared; {channels} channels of unknown position, all weighted 1.0",
        )
    positions = mask_positions(mask)
    name = _NAMES[positions]
    return ChannelLayout(
        positions, False, f"none declared; assumed {name} in WAVE order ({' '.join(positions)})"
    )
