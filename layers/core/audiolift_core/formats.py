"""The audio formats audiolift accepts, and how to tell them from their first bytes.

The table is data (``formats.json`` beside this module) so that the processor, the API,
the Python SDK and the browser page all refuse the same files for the same reasons. This
module is pure Python with no imports from the rest of ``audiolift_core``: the SDK uses it
through a symlink.

Sniffing does not guess: a container is recognised by its whole signature, and MPEG audio
(which has no magic number) by a run of consecutive, consistent frame headers, as decoders
themselves synchronise. Random bytes are not audio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TABLE: dict[str, Any] = json.loads(
    Path(__file__).with_name("formats.json").read_text(encoding="utf-8")
)

# How many leading bytes `sniff` wants to see (the whole file when it is shorter).
SNIFF_BYTES: int = int(_TABLE["sniff_bytes"])


@dataclass(frozen=True)
class AudioFormat:
    name: str  # short and stable: "wav", "flac", "mp3", ...
    label: str  # for people: "WAV", "Ogg (Vorbis, Opus, FLAC)", ...
    extensions: tuple[str, ...]
    media_types: tuple[str, ...]


@dataclass(frozen=True)
class MpegFrame:
    """One MPEG-1/2/2.5 audio frame header."""

    version: str  # "1", "2" or "2.5"
    layer: int  # 1, 2 or 3
    sample_rate: int
    bitrate: int  # bit/s
    samples: int  # per channel in this frame
    length: int  # bytes, header included
    channels: int

    def same_stream(self, other: MpegFrame) -> bool:
        return (self.version, self.layer, self.sample_rate) == (
            other.version,
            other.layer,
            other.sample_rate,
        )


_Signature = tuple[tuple[int, bytes, bytes | None], ...]


def _signatures(entry: dict[str, Any]) -> tuple[_Signature, ...]:
    return tuple(
        tuple(
            (
                int(part["offset"]),
                bytes.fromhex(part["hex"]),
                bytes.fromhex(part["mask"]) if "mask" in part else None,
            )
            for part in signature
        )
        for signature in entry["signatures"]
    )


FORMATS: tuple[AudioFormat, ...] = tuple(
    AudioFormat(
        name=entry["name"],
        label=entry["label"],
        extensions=tuple(entry["extensions"]),
        media_types=tuple(entry["media_types"]),
    )
    for entry in _TABLE["formats"]
)
_BY_NAME = {audio_format.name: audio_format for audio_format in FORMATS}
_AUDIO_SIGNATURES = tuple(
    (_BY_NAME[entry["name"]], _signatures(entry)) for entry in _TABLE["formats"]
)
_OTHER_SIGNATURES = tuple((entry["what"], _signatures(entry)) for entry in _TABLE["not_audio"])

_MPEG = _TABLE["mpeg_audio"]
_MIN_FRAMES = int(_MPEG["min_frames"])
_MIN_FRAMES_AFTER_TAG = int(_MPEG["min_frames_after_tag"])
_VERSIONS = {0: "2.5", 2: "2", 3: "1"}
_LAYERS = {1: 3, 2: 2, 3: 1}
_ROMAN = {1: "I", 2: "II", 3: "III"}


def by_name(name: str) -> AudioFormat:
    return _BY_NAME[name]


def for_extension(filename: str) -> AudioFormat | None:
    """The first format that lists this file's extension (case-insensitive)."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return next((f for f in FORMATS if suffix in f.extensions), None)


def supported_labels() -> str:
    """``"WAV, RF64/BW64, ..."`` for messages."""
    return ", ".join(f.label for f in FORMATS)


def sniff(head: bytes) -> AudioFormat | None:
    """The audio format these leading bytes begin, or None when they are not one we accept.

    ``head`` should be the first `SNIFF_BYTES` bytes of the file (all of it if shorter).
    """
    head = bytes(head)
    for audio_format, signatures in _AUDIO_SIGNATURES:
        if any(_matches(head, signature) for signature in signatures):
            return audio_format
    tag_end = id3v2_end(head)
    if tag_end is not None:
        return _after_id3(head, tag_end)
    if _mpeg_run_ok(head, 0, after_tag=False):
        return _BY_NAME["mp3"]
    return None


def describe(head: bytes) -> str:
    """A sentence for the user saying what a file that `sniff` refused is instead."""
    head = bytes(head)
    if not head:
        return "The file is empty (0 bytes): there is no audio to analyse."
    tag_end = id3v2_end(head)
    behind_tag = head[tag_end:] if tag_end is not None and tag_end < len(head) else head
    for what, signatures in _OTHER_SIGNATURES:
        if any(_matches(behind_tag, signature) for signature in signatures):
            return f"The file is {what}, not an audio recording we can analyse."
    if _looks_like_text(head):
        return (
            "The file contains text, not audio (it may have been renamed to look like a "
            "sound file)."
        )
    return f"The file is not in an audio format we recognise (supported: {supported_labels()})."


def _matches(head: bytes, signature: _Signature) -> bool:
    for offset, expected, mask in signature:
        found = head[offset : offset + len(expected)]
        if len(found) < len(expected):
            return False
        if mask is not None:
            found = bytes(a & m for a, m in zip(found, mask, strict=True))
        if found != expected:
            return False
    return True


def id3v2_end(head: bytes) -> int | None:
    """Where the ID3v2 tag at the start of ``head`` ends, or None when there is none."""
    if len(head) < 10 or head[:3] != b"ID3" or head[3] not in (2, 3, 4) or head[4] == 0xFF:
        return None
    if head[5] & 0x0F or any(byte & 0x80 for byte in head[6:10]):
        return None  # undefined flags, or a size that is not "syncsafe"
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | byte
    return 10 + size + (10 if head[5] & 0x10 else 0)  # the footer flag


def _after_id3(head: bytes, tag_end: int) -> AudioFormat | None:
    if tag_end + 4 > len(head):
        return _BY_NAME["mp3"]  # the tag (cover art, say) outlasts the bytes we have
    start = tag_end
    while start < len(head) and head[start] == 0:
        start += 1  # padding some taggers leave after the tag
    following = head[start:]
    for audio_format, signatures in _AUDIO_SIGNATURES:
        if any(_matches(following, signature) for signature in signatures):
            return audio_format  # FLAC with an ID3 tag, for instance
    if start + 4 > len(head) or _mpeg_run_ok(head, start, after_tag=True):
        return _BY_NAME["mp3"]
    return None


def mpeg_frame(head: bytes, at: int) -> MpegFrame | None:
    """The MPEG audio frame header at ``at``, or None when those 4 bytes are not one."""
    if at < 0 or len(head) < at + 4 or head[at] != 0xFF or head[at + 1] & 0xE0 != 0xE0:
        return None
    b1, b2, b3 = head[at + 1], head[at + 2], head[at + 3]
    version = _VERSIONS.get((b1 >> 3) & 0x3)
    layer = _LAYERS.get((b1 >> 1) & 0x3)
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 0x3, (b2 >> 1) & 0x1
    if version is None or layer is None or rate_index == 3 or b3 & 0x3 == 0b10:
        return None
    if bitrate_index in (0, 15):
        return None  # "free format" has no length to follow; 15 is reserved
    row = f"{'1' if version == '1' else '2'}-{_ROMAN[layer]}"
    bitrate = int(_MPEG["bitrates_kbps"][row][bitrate_index]) * 1000
    sample_rate = int(_MPEG["sample_rates"][version][rate_index])
    samples = int(_MPEG["samples_per_frame"][row])
    if layer == 1:
        length = (12 * bitrate // sample_rate + padding) * 4
    else:
        length = samples // 8 * bitrate // sample_rate + padding
    channels = 1 if (b3 >> 6) == 0b11 else 2
    return MpegFrame(version, layer, sample_rate, bitrate, samples, length, channels)


def mpeg_vbr_tag_offset(frame: MpegFrame) -> int:
    """Where a Xing/Info header sits inside a layer III frame: after the side info."""
    if frame.version == "1":
        return 4 + (17 if frame.channels == 1 else 32)
    return 4 + (9 if frame.channels == 1 else 17)


def _has_vbr_tag(head: bytes, at: int, frame: MpegFrame) -> bool:
    xing = at + mpeg_vbr_tag_offset(frame)
    return head[xing : xing + 4] in (b"Xing", b"Info") or head[at + 36 : at + 40] == b"VBRI"


def _mpeg_run_ok(head: bytes, start: int, *, after_tag: bool) -> bool:
    """A run of consecutive frames of one stream, as long as the file or the rules ask."""
    first = mpeg_frame(head, start)
    if first is None:
        return False
    introduced = after_tag or _has_vbr_tag(head, start, first)
    count, position = 0, start
    while position + 4 <= len(head):
        frame = mpeg_frame(head, position)
        if frame is None or not frame.same_stream(first):
            break
        count += 1
        position += frame.length
    if count >= _MIN_FRAMES or (introduced and count >= _MIN_FRAMES_AFTER_TAG):
        return True
    whole_file = len(head) < SNIFF_BYTES
    if whole_file and position == len(head):
        return True  # a very short file: every byte of it is in whole frames
    # a header we could not see because the bytes end first, after a tag that vouches
    return introduced and position + 4 > len(head) and position > start


def _looks_like_text(head: bytes) -> bool:
    sample = head[:SNIFF_BYTES]
    if sample.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True  # a Unicode byte-order mark
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 3:  # not just a character cut at the end
            return False
        text = sample[: error.start].decode("utf-8")
    if not text:
        return False
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\r\n\t\f")
    return printable / len(text) > 0.95
