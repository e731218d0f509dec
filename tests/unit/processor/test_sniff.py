"""Container detection from magic bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from audiolift_core.errors import UnsupportedFormat
from audiolift_processor.sniff import sniff


def head_of(format: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((4800, 2)), 48_000, format=format, subtype=subtype)
    return buffer.getvalue()[:4096]


@pytest.mark.parametrize(
    ("format", "subtype", "expected"),
    [
        ("WAV", "PCM_16", "wav"),
        ("WAVEX", "PCM_24", "wav"),
        ("RF64", "PCM_16", "rf64"),
        ("W64", "PCM_16", "w64"),
        ("FLAC", "PCM_16", "flac"),
        ("OGG", "VORBIS", "ogg"),
        ("MP3", "MPEG_LAYER_III", "mp3"),
        ("AIFF", "PCM_16", "aiff"),
        ("CAF", "PCM_16", "caf"),
        ("AU", "PCM_16", "au"),
    ],
)
def test_real_headers(format, subtype, expected):
    assert sniff(head_of(format, subtype)) == expected


def test_aifc_and_id3_tagged_files():
    assert sniff(b"FORM\x00\x00\x10\x00AIFCFVER") == "aifc"
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x05" + bytes(5)
    assert sniff(tag + b"\xff\xfb\x90\x64" + bytes(100)) == "mp3"
    assert sniff(tag + b"fLaC" + bytes(100)) == "flac"
    assert sniff(b"ID3\x04\x00\x00\x00\x01\x00\x00") == "mp3"  # tag longer than the head


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
        (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81", "Matroska"),
        (b"\x7fELF\x02\x01\x01", "executable"),
        (bytes(range(256)) * 4, "not in an audio format"),
    ],
)
def test_non_audio_fails_with_a_clear_message(head, says):
    with pytest.raises(UnsupportedFormat, match=says):
        sniff(head)


def test_random_bytes_are_not_mistaken_for_mp3():
    rng = np.random.default_rng(0)
    for _ in range(50):
        head = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        if head[0] == 0xFF:
            continue  # could legitimately be a frame header
        with pytest.raises(UnsupportedFormat):
            sniff(head)
