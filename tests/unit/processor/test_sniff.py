"""Format detection from magic bytes: the shared table (audiolift_core.formats) and the
processor's use of it."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audiolift_core import formats
from audiolift_core.errors import UnsupportedFormat
from audiolift_processor.sniff import identify

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")


def encoded(format: str, subtype: str, *, rate: int = 48_000, channels: int = 2) -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(1).standard_normal((rate, channels)) * 0.1
    sf.write(buffer, noise, rate, format=format, subtype=subtype)
    return buffer.getvalue()


def ffmpeg_encoded(tmp_path: Path, suffix: str, *args: str) -> bytes:
    assert FFMPEG is not None
    target = tmp_path / f"out{suffix}"
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", *args,
         str(target)],
        check=True,
    )  # fmt: skip
    return target.read_bytes()


@pytest.mark.parametrize(
    ("format", "subtype", "rate", "channels", "expected"),
    [
        ("WAV", "PCM_16", 48_000, 2, "wav"),
        ("WAVEX", "PCM_24", 48_000, 6, "wav"),
        ("RF64", "PCM_16", 48_000, 2, "rf64"),
        ("W64", "FLOAT", 48_000, 2, "w64"),
        ("FLAC", "PCM_16", 96_000, 2, "flac"),
        ("OGG", "VORBIS", 44_100, 1, "ogg"),
        ("OGG", "OPUS", 48_000, 2, "ogg"),
        ("MP3", "MPEG_LAYER_III", 48_000, 2, "mp3"),
        ("MP3", "MPEG_LAYER_III", 22_050, 1, "mp3"),
        ("MP3", "MPEG_LAYER_III", 8_000, 1, "mp3"),
        ("AIFF", "PCM_16", 44_100, 2, "aiff"),
        ("AIFF", "ULAW", 8_000, 1, "aifc"),
        ("CAF", "ALAW", 8_000, 1, "caf"),
        ("AU", "PCM_16", 8_000, 1, "au"),
    ],
)
def test_real_files_are_recognised(format, subtype, rate, channels, expected):
    data = encoded(format, subtype, rate=rate, channels=channels)
    found = formats.sniff(data[: formats.SNIFF_BYTES])
    assert found is not None and found.name == expected
    assert identify(data[: formats.SNIFF_BYTES]).name == expected


@needs_ffmpeg
@pytest.mark.parametrize(
    ("suffix", "args"),
    [
        (".mp3", ["-c:a", "libmp3lame", "-b:a", "320k"]),  # ID3v2 tag + Xing/Info frame
        (".mp3", ["-c:a", "libmp3lame", "-q:a", "9", "-ar", "8000"]),  # VBR, MPEG-2.5
        (".mp3", ["-c:a", "libmp3lame", "-write_xing", "0", "-id3v2_version", "0"]),  # bare
        (".mp2", ["-c:a", "mp2", "-b:a", "384k", "-ar", "32000"]),  # the longest frames
        (".mp3", ["-c:a", "libmp3lame", "-ar", "32000", "-b:a", "320k", "-ac", "2"]),
        (".ogg", ["-c:a", "libopus"]),
    ],
)
def test_files_from_other_encoders_are_recognised(tmp_path, suffix, args):
    data = ffmpeg_encoded(tmp_path, suffix, *args)
    found = formats.sniff(data[: formats.SNIFF_BYTES])
    assert found is not None and found.name == ("ogg" if suffix == ".ogg" else "mp3")


def frame_header(*, bitrate_index: int = 9, padding: int = 0) -> bytes:
    """MPEG-1 layer III, 44.1 kHz, joint stereo."""
    return bytes([0xFF, 0xFB, (bitrate_index << 4) | (padding << 1), 0x64])


def frames(count: int) -> bytes:
    header = frame_header()  # 128 kbit/s at 44.1 kHz: 417 bytes a frame
    length = formats.mpeg_frame(header, 0).length  # type: ignore[union-attr]
    assert length == 417
    return (header + bytes(length - 4)) * count


def test_mpeg_needs_a_run_of_frames_not_one_header():
    assert formats.sniff(frames(3)).name == "mp3"  # type: ignore[union-attr]
    lone = frame_header() + np.random.default_rng(2).bytes(4092)
    assert formats.sniff(lone) is None
    assert formats.sniff(frames(2) + b"\x00" * 3000) is None
    # a file of only two frames: every byte is in whole frames
    assert formats.sniff(frames(2)).name == "mp3"  # type: ignore[union-attr]
    # an ID3 tag vouches for the stream, then two frames are enough
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x05" + bytes(5)
    assert formats.sniff(tag + frames(2) + bytes(3000)).name == "mp3"  # type: ignore[union-attr]
    assert formats.sniff(tag + b"not audio at all" * 200) is None


def test_id3_tags_look_past_the_tag():
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x05" + bytes(5)
    assert formats.sniff(tag + encoded("FLAC", "PCM_16")[:4000]).name == "flac"  # type: ignore[union-attr]
    # a tag longer than the bytes seen (cover art): its header is all there is to check
    assert formats.sniff(b"ID3\x03\x00\x00\x00\x01\x00\x00" + bytes(4086)).name == "mp3"  # type: ignore[union-attr]
    with pytest.raises(UnsupportedFormat, match="AAC"):
        identify(tag + b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(100))


@pytest.mark.parametrize("length", [formats.SNIFF_BYTES, 64, 1000])
def test_random_bytes_are_never_audio(length):
    rng = np.random.default_rng(12)
    for _ in range(3000):
        head = rng.bytes(length)
        assert formats.sniff(head) is None, head[:16].hex()
        with pytest.raises(UnsupportedFormat):
            identify(head)


def test_random_bytes_after_a_valid_frame_header_are_not_audio():
    """The hard case: the file starts like an MPEG frame, by chance or by design."""
    rng = np.random.default_rng(13)
    for _ in range(3000):
        header = frame_header(bitrate_index=int(rng.integers(1, 15)), padding=int(rng.integers(2)))
        assert formats.sniff(header + rng.bytes(formats.SNIFF_BYTES - 4)) is None


@pytest.mark.parametrize(
    ("head", "says"),
    [
        (b"", "empty"),
        (b"just some notes about the session\n" * 20, "text"),
        ('{"json": "is text too", "ünïcode": true}'.encode(), "text"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"PK\x03\x04\x14\x00\x00\x00", "ZIP"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "MP4"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "AAC"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "RIFF file that is not WAV"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81", "Matroska"),
        (b"\x7fELF\x02\x01\x01", "executable"),
        (bytes(range(256)) * 4, "not in an audio format we recognise"),
    ],
)
def test_non_audio_fails_with_a_clear_message(head, says):
    assert formats.sniff(head) is None
    with pytest.raises(UnsupportedFormat, match=says):
        identify(head)


def test_the_table_is_well_formed_data():
    table = json.loads(Path(formats.__file__).with_name("formats.json").read_text())
    names = [entry["name"] for entry in table["formats"]]
    assert len(names) == len(set(names)) == len(formats.FORMATS)
    for entry in [*table["formats"], *table["not_audio"]]:
        for signature in entry["signatures"]:
            for part in signature:
                assert part["offset"] >= 0 and bytes.fromhex(part["hex"])
                if "mask" in part:
                    assert len(part["mask"]) == len(part["hex"])
    for audio_format in formats.FORMATS:
        assert audio_format.extensions and audio_format.media_types and audio_format.label
        assert all(ext.startswith(".") and ext == ext.lower() for ext in audio_format.extensions)
    assert formats.for_extension("Take 3.FLAC") == formats.by_name("flac")
    assert formats.for_extension("notes.txt") is None
    assert "WAV" in formats.supported_labels()
