"""What a container's header declares, read from the bytes `sniff` saw.

libsndfile decodes the audio; these parsers read the few header fields it does not pass
on, or passes on after "fixing" them: the length the header promises (libsndfile quietly
clamps an oversized data chunk to the file's size, which would make a truncated upload
look complete), the length a compressed file declares (Xing/Info/VBRI frame counts) and
the channel layout (WAVE_FORMAT_EXTENSIBLE's channel mask, CAF/AIFF channel layouts).

Every parser looks only at ``head`` and returns None when the fields are not there (or
lie beyond it): None means "not declared", never "wrong".
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from audiolift_core.formats import id3v2_end, mpeg_frame, mpeg_vbr_tag_offset

from .analysis.layout import VORBIS_ORDER, ChannelLayout, declared_layout, mask_positions

_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def promised_frames(container: str, head: bytes) -> int | None:
    """Frames the header itself promises, when the sniffed bytes hold the fields that say
    so; None when the header leaves the length open (a streamed file) or the fields lie
    beyond ``head``."""
    parsers = {
        "wav": _riff_frames,
        "rf64": _rf64_frames,
        "w64": _w64_frames,
        "aiff": _aiff_frames,
        "aifc": _aiff_frames,
        "au": _au_frames,
    }
    parser = parsers.get(container)
    try:
        return parser(head) if parser is not None else None
    except struct.error:
        return None


def mpeg_declared_frames(head: bytes) -> int | None:
    """Audio frames (samples per channel, before the encoder's delay and padding are
    removed) that an MP3's Xing/Info or VBRI header declares; None without one."""
    start = id3v2_end(head) or 0
    while start < len(head) and head[start] == 0:
        start += 1
    frame = mpeg_frame(head, start)
    if frame is None:
        return None
    xing = start + mpeg_vbr_tag_offset(frame)
    try:
        if head[xing : xing + 4] in (b"Xing", b"Info"):
            (flags,) = struct.unpack_from(">I", head, xing + 4)
            if not flags & 0x1:
                return None  # the frame count is optional
            (count,) = struct.unpack_from(">I", head, xing + 8)
            return int(count) * frame.samples
        vbri = start + 36
        if head[vbri : vbri + 4] == b"VBRI":
            (count,) = struct.unpack_from(">I", head, vbri + 14)
            return int(count) * frame.samples
    except struct.error:
        return None
    return None


def flac_declared_frames(head: bytes) -> int | None:
    """STREAMINFO's total samples (per channel); None when 0 (unknown) or not in head."""
    start = id3v2_end(head) or 0
    if head[start : start + 4] != b"fLaC" or len(head) < start + 26:
        return None
    (packed,) = struct.unpack_from(">Q", head, start + 18)
    total = packed & ((1 << 36) - 1)
    return int(total) or None


def channel_layout(container: str, head: bytes, channels: int) -> ChannelLayout | None:
    """The layout the file declares, or None when it declares none."""
    try:
        if container in ("wav", "rf64"):
            return _wave_layout(_riff_fmt(head), head, channels)
        if container == "w64":
            return _wave_layout(_w64_fmt(head), head, channels)
        if container == "caf":
            return _caf_layout(head, channels)
        if container in ("aiff", "aifc"):
            return _aiff_layout(head, channels)
        if container == "ogg":
            return _ogg_layout(head, channels)
    except struct.error:
        return None
    return None


# --- WAVE family ------------------------------------------------------------------------


def _riff_fmt(head: bytes) -> tuple[int, int] | None:
    """(body offset, size) of the ``fmt `` chunk of a little-endian RIFF/RF64 file."""
    if head[:4] not in (b"RIFF", b"RF64", b"BW64"):
        return None  # RIFX (big-endian) is rare: trust libsndfile
    for chunk_id, size, body in _chunks(head, 12, "<I", 8, align=2):
        if chunk_id == b"fmt ":
            return body, size
    return None


def _w64_fmt(head: bytes) -> tuple[int, int] | None:
    for guid, size, position in _w64_chunks(head):
        if guid == _W64_FMT:
            return position + 24, size - 24
    return None


def _wave_layout(fmt: tuple[int, int] | None, head: bytes, channels: int) -> ChannelLayout | None:
    if fmt is None:
        return None
    body, size = fmt
    (format_tag,) = struct.unpack_from("<H", head, body)
    if format_tag != _WAVE_FORMAT_EXTENSIBLE or size < 40:
        return None
    (mask,) = struct.unpack_from("<I", head, body + 20)
    if not mask & ((1 << 18) - 1):
        return None  # 0: the channels have no speaker positions
    return declared_layout(
        mask_positions(mask), channels, f"WAVE_FORMAT_EXTENSIBLE channel mask 0x{mask:X}"
    )


def _riff_frames(head: bytes) -> int | None:
    if head[:4] != b"RIFF":
        return None  # RIFX (big-endian) is rare: trust libsndfile
    block_align = 0
    for chunk_id, size, body in _chunks(head, 12, "<I", 8, align=2):
        if chunk_id == b"fmt ":
            (block_align,) = struct.unpack_from("<H", head, body + 12)
        elif chunk_id == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):
                return None  # a streamed WAV: its length is unknown, not wrong
            return size // block_align
    return None


def _rf64_frames(head: bytes) -> int | None:
    data_size = None
    for chunk_id, _size, body in _chunks(head, 12, "<I", 8, align=2):
        if chunk_id == b"ds64":
            (data_size,) = struct.unpack_from("<Q", head, body + 8)
        elif chunk_id == b"fmt ":
            (block_align,) = struct.unpack_from("<H", head, body + 12)
            return data_size // block_align if data_size and block_align else None
    return None


_W64_FMT = b"fmt " + bytes.fromhex("f3acd3118cd100c04f8edb8a")
_W64_DATA = b"data" + bytes.fromhex("f3acd3118cd100c04f8edb8a")


def _w64_chunks(head: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(GUID, size including the 24-byte chunk header, chunk offset)."""
    position = 40  # after the riff GUID, the 64-bit size and the wave GUID
    while position + 24 <= len(head):
        guid = head[position : position + 16]
        (size,) = struct.unpack_from("<Q", head, position + 16)
        yield guid, size, position
        if size < 24:
            return
        position += (size + 7) & ~7


def _w64_frames(head: bytes) -> int | None:
    block_align = 0
    for guid, size, position in _w64_chunks(head):
        if guid == _W64_FMT:
            (block_align,) = struct.unpack_from("<H", head, position + 24 + 12)
        elif guid == _W64_DATA:
            return (size - 24) // block_align if block_align and size > 24 else None
    return None


# --- AIFF, AU, CAF --------------------------------------------------------------------


def _aiff_frames(head: bytes) -> int | None:
    for chunk_id, _size, body in _chunks(head, 12, ">I", 8, align=2):
        if chunk_id == b"COMM":
            (frames,) = struct.unpack_from(">I", head, body + 2)
            return int(frames)
    return None


_AU_BYTES_PER_SAMPLE = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}


def _au_frames(head: bytes) -> int | None:
    _offset, size, encoding, _rate, channels = struct.unpack_from(">IIIII", head, 4)
    width = _AU_BYTES_PER_SAMPLE.get(encoding)
    if size == 0xFFFFFFFF or not width or not channels:
        return None
    return size // (width * channels)


def _caf_layout(head: bytes, channels: int) -> ChannelLayout | None:
    for chunk_id, _size, body in _chunks(head, 8, ">q", 12, align=1):
        if chunk_id == b"chan":
            return _core_audio_layout(head, body, channels, "CAF channel layout")
        if chunk_id == b"data":
            return None
    return None


def _aiff_layout(head: bytes, channels: int) -> ChannelLayout | None:
    for chunk_id, _size, body in _chunks(head, 12, ">I", 8, align=2):
        if chunk_id == b"CHAN":
            return _core_audio_layout(head, body, channels, "AIFF channel layout (CHAN)")
    return None


# Core Audio channel labels (CAF "chan", AIFF "CHAN") as positions.
_CORE_AUDIO_LABELS = {
    1: "FL", 2: "FR", 3: "FC", 4: "LFE", 5: "BL", 6: "BR", 7: "FLC", 8: "FRC", 9: "BC",
    10: "SL", 11: "SR", 12: "TC", 13: "TFL", 14: "TFC", 15: "TFR", 16: "TBL", 17: "TBC",
    18: "TBR", 33: "Rls", 34: "Rrs", 37: "LFE2", 42: "FC",
}  # fmt: skip
_USE_DESCRIPTIONS = 0
_USE_BITMAP = 1 << 16
# The common predefined layout tags (the tag's high 16 bits; the low 16 are the count).
_CORE_AUDIO_TAGS = {
    100: ("FC",),
    101: ("FL", "FR"),
    102: ("FL", "FR"),
    108: ("FL", "FR", "BL", "BR"),
    113: ("FL", "FR", "FC"),
    115: ("FL", "FR", "FC", "BC"),
    117: ("FL", "FR", "FC", "BL", "BR"),
    121: ("FL", "FR", "FC", "LFE", "BL", "BR"),
    125: ("FL", "FR", "FC", "LFE", "BL", "BR", "BC"),
    128: ("FL", "FR", "FC", "LFE", "BL", "BR", "Rls", "Rrs"),
}


def _core_audio_layout(head: bytes, body: int, channels: int, source: str) -> ChannelLayout | None:
    tag, bitmap, count = struct.unpack_from(">III", head, body)
    if tag == _USE_BITMAP:
        positions = mask_positions(bitmap)
    elif tag == _USE_DESCRIPTIONS:
        labels = [
            struct.unpack_from(">I", head, body + 12 + 20 * i)[0] for i in range(min(count, 64))
        ]
        found = [_CORE_AUDIO_LABELS.get(label) for label in labels]
        if not found or None in found:
            return None  # unknown labels: say nothing rather than guess
        positions = tuple(p for p in found if p is not None)
    elif tag >> 16 in _CORE_AUDIO_TAGS:
        positions = _CORE_AUDIO_TAGS[tag >> 16]
    else:
        return None
    return declared_layout(positions, channels, source) if positions else None


# --- Ogg ------------------------------------------------------------------------------


def _ogg_layout(head: bytes, channels: int) -> ChannelLayout | None:
    """Vorbis and Opus (mapping families 0 and 1) fix the channel order by the count;
    Ogg FLAC keeps FLAC's, which is WAVE's default order."""
    packet = 27 + head[26]  # after the page header and its segment table
    if head[packet : packet + 7] == b"\x01vorbis":
        codec = "Ogg Vorbis"
    elif head[packet : packet + 8] == b"OpusHead" and head[packet + 18] in (0, 1):
        codec = f"Opus channel mapping family {head[packet + 18]}"
    else:
        return None
    order = VORBIS_ORDER.get(channels)
    if order is None:
        return None
    return declared_layout(
        order, channels, f"Vorbis channel order for {channels} channels ({codec})"
    )


def _chunks(
    head: bytes, position: int, size_format: str, header: int, *, align: int
) -> Iterator[tuple[bytes, int, int]]:
    """(id, size, body offset) of the chunks that start within ``head``."""
    while position + header <= len(head):
        chunk_id = head[position : position + 4]
        (size,) = struct.unpack_from(size_format, head, position + 4)
        if size < 0:
            return
        body = position + header
        yield chunk_id, size, body
        position = body + size + (size % align)
