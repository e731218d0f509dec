"""Decoding real files, good and bad, all generated here: each ends with a valid strict-JSON
document or the right exception, quickly. Plus the reader-failure contract: an error the
file object recorded surfaces as itself, never as a short or corrupt recording."""

from __future__ import annotations

import io
import json
import math
import struct

import numpy as np
import pytest
import soundfile as sf
from audiolift_core.errors import (
    CorruptAudio,
    JobCancelled,
    ObjectChanged,
    TransientError,
    UnsupportedFormat,
)
from audiolift_processor import decode
from audiolift_processor.decode import analyze_stream
from file_objects import FailingReader

pytestmark = pytest.mark.timeout(30)

SR = 48_000


def encode(signal: np.ndarray, format: str, subtype: str, samplerate: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, samplerate, format=format, subtype=subtype)
    return buffer.getvalue()


def make_signal(seconds: float = 1.5, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(channels)
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.4 * np.sin(2 * np.pi * 440 * t)[:, None]
    return tone + rng.standard_normal((len(t), channels)) * 0.05


def analyze_bytes(data: bytes, **kwargs) -> dict:
    document = analyze_stream(io.BytesIO(data), size=len(data), **kwargs)
    return json.loads(json.dumps(document, allow_nan=False))


def wav_header(
    *,
    channels: int = 2,
    samplerate: int = SR,
    bits: int = 16,
    data_bytes: int = 0,
    format_tag: int = 1,
) -> bytes:
    block_align = (channels * bits // 8) & 0xFFFF
    byte_rate = (samplerate * block_align) & 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", format_tag, channels, samplerate, byte_rate, block_align, bits)
    riff_size = 4 + (8 + len(fmt)) + 8 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


# --- good files -----------------------------------------------------------------------

LOSSLESS = [
    ("WAV", "PCM_16", "wav"),
    ("WAV", "PCM_24", "wav"),
    ("WAV", "PCM_32", "wav"),
    ("WAV", "FLOAT", "wav"),
    ("WAV", "DOUBLE", "wav"),
    ("WAV", "PCM_U8", "wav"),
    ("FLAC", "PCM_16", "flac"),
    ("FLAC", "PCM_24", "flac"),
    ("AIFF", "PCM_16", "aiff"),
    ("CAF", "PCM_24", "caf"),
    ("W64", "PCM_16", "w64"),
    ("RF64", "PCM_16", "rf64"),
    ("AU", "PCM_16", "au"),
]


@pytest.mark.parametrize(("format", "subtype", "container"), LOSSLESS)
def test_lossless_formats_decode_to_the_same_levels(format, subtype, container):
    signal = make_signal()
    data = encode(signal, format, subtype)
    document = analyze_bytes(data)
    fmt = document["format"]
    assert fmt["container"] == container
    assert fmt["subtype"] == subtype
    assert fmt["frames"] == fmt["frames_expected"] == len(signal)
    assert fmt["sample_rate"] == SR
    assert fmt["channels"] == 2
    assert fmt["duration_seconds"] == pytest.approx(1.5)
    decoded, _ = sf.read(io.BytesIO(data), dtype="float64")
    tolerance = 0.05 if subtype == "PCM_U8" else 0.01
    for index, channel in enumerate(document["channels"]):
        peak = 20 * math.log10(np.abs(decoded[:, index]).max())
        rms = 10 * math.log10(np.mean(decoded[:, index] ** 2))
        assert channel["peak_dbfs"] == pytest.approx(peak, abs=tolerance)
        assert channel["rms_dbfs"] == pytest.approx(rms, abs=tolerance)
    assert document["loudness"]["integrated_lufs"] is not None


@pytest.mark.parametrize(
    ("format", "subtype", "container"),
    [("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")],
)
def test_lossy_formats_decode(format, subtype, container):
    signal = make_signal(seconds=3)
    document = analyze_bytes(encode(signal, format, subtype))
    assert document["format"]["container"] == container
    # lossy codecs add delay/padding: about the right length and level
    assert document["format"]["duration_seconds"] == pytest.approx(3, abs=0.2)
    original = 20 * math.log10(np.sqrt(np.mean(signal[:, 0] ** 2)))
    assert document["channels"][0]["rms_dbfs"] == pytest.approx(original, abs=1.0)


def test_integer_fast_path_equals_libsndfile_float_conversion():
    data = encode(make_signal(), "WAV", "PCM_24")
    fast = analyze_bytes(data)
    decoded, _ = sf.read(io.BytesIO(data), dtype="float64")
    slow = analyze_bytes(encode(decoded, "WAV", "DOUBLE"))
    assert fast["loudness"]["integrated_lufs"] == pytest.approx(
        slow["loudness"]["integrated_lufs"], abs=1e-6
    )
    assert fast["channels"][0]["rms_dbfs"] == pytest.approx(slow["channels"][0]["rms_dbfs"])


@pytest.mark.parametrize("channels", [1, 8])
def test_mono_and_eight_channels(channels):
    document = analyze_bytes(encode(make_signal(channels=channels), "WAV", "PCM_16"))
    assert document["format"]["channels"] == channels
    assert len(document["channels"]) == channels


def test_float_wav_with_nan_and_inf_completes_and_counts_them():
    signal = make_signal().astype(np.float32)
    signal[[10, 20, 30], 0] = np.nan
    signal[[40, 50], 1] = np.inf
    signal[60, 1] = -np.inf
    document = analyze_bytes(encode(signal, "WAV", "FLOAT"))
    assert document["channels"][0]["nan_samples"] == 3
    assert document["channels"][1]["inf_samples"] == 3
    assert document["loudness"]["integrated_lufs"] is not None
    assert document["channels"][1]["peak_dbfs"] < 0


def test_all_silent_file():
    document = analyze_bytes(encode(np.zeros((SR, 2)), "WAV", "PCM_16"))
    assert document["peak_dbfs"] is None
    assert document["silence"]["ratio"] == 1.0
    assert document["loudness"]["integrated_lufs"] is None


def test_zero_frame_wav_is_a_valid_empty_document():
    document = analyze_bytes(wav_header(data_bytes=0))
    assert document["format"]["frames"] == 0
    assert document["format"]["duration_seconds"] == 0.0
    assert document["silence"]["ratio"] is None


def test_one_sample():
    document = analyze_bytes(encode(np.array([[0.25]]), "WAV", "PCM_16"))
    assert document["format"]["frames"] == 1
    assert document["channels"][0]["peak_dbfs"] == pytest.approx(-12.04, abs=0.01)


def test_clipping_counts_full_scale_codes():
    samples = np.array([0, 32767, -32768, 5, 32767, -32767], dtype=np.int16)[:, None]
    document = analyze_bytes(encode(samples, "WAV", "PCM_16"))
    assert document["channels"][0]["clipped_samples"] == 4


def test_progress_is_reported_up_to_the_total():
    calls: list[tuple[int, int | None]] = []
    signal = make_signal(seconds=8)  # several blocks
    analyze_bytes(encode(signal, "WAV", "PCM_16"), on_progress=lambda d, t: calls.append((d, t)))
    assert len(calls) >= 2
    assert calls[-1] == (len(signal), len(signal))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_progress_callback_exceptions_propagate_untouched():
    data = encode(make_signal(seconds=8), "WAV", "PCM_16")

    def cancel(done: int, total: int | None) -> None:
        raise JobCancelled()

    with pytest.raises(JobCancelled):
        analyze_bytes(data, on_progress=cancel)


# --- bad files ------------------------------------------------------------------------


def test_zero_bytes():
    with pytest.raises(UnsupportedFormat, match="empty"):
        analyze_bytes(b"")


def test_text_named_wav():
    with pytest.raises(UnsupportedFormat, match="text"):
        analyze_bytes(b"Hello, this is not a recording.\n" * 100)


@pytest.mark.parametrize(
    ("format", "subtype"),
    [
        ("WAV", "PCM_16"),
        ("WAVEX", "PCM_24"),
        ("RF64", "PCM_16"),
        ("W64", "PCM_16"),
        ("AIFF", "PCM_16"),
        ("AU", "PCM_16"),
    ],
)
def test_truncated_uncompressed_files(format, subtype):
    # libsndfile quietly clamps these to the bytes present; the header tells the truth
    data = encode(make_signal(), format, subtype)
    with pytest.raises(CorruptAudio, match="truncated"):
        analyze_bytes(data[: len(data) * 2 // 3])


def test_header_lying_about_its_length():
    payload = (np.sin(np.arange(SR) / 5) * 10_000).astype("<i2").tobytes()
    data = wav_header(channels=1, data_bytes=len(payload) * 10) + payload
    with pytest.raises(CorruptAudio, match="truncated"):
        analyze_bytes(data)


def test_header_understating_its_length_reads_what_it_declares():
    payload = np.zeros(2 * SR, dtype="<i2").tobytes()
    data = wav_header(channels=1, data_bytes=SR) + payload  # declares 0.5 s, has 2 s
    document = analyze_bytes(data)
    assert document["format"]["frames"] == SR // 2


def test_truncated_flac():
    data = encode(make_signal(seconds=4), "FLAC", "PCM_16")
    with pytest.raises(CorruptAudio):
        analyze_bytes(data[: len(data) // 2])


def test_flac_with_garbage_in_the_middle_fails_or_completes_cleanly():
    data = bytearray(encode(make_signal(seconds=4), "FLAC", "PCM_16"))
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    data[middle : middle + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    try:
        document = analyze_bytes(bytes(data))
    except CorruptAudio:
        return
    assert document["format"]["frames"] > 0  # libsndfile may resynchronise


@pytest.mark.parametrize("channels", [0, 300, 65535])
def test_absurd_channel_count(channels):
    data = wav_header(channels=channels, data_bytes=4096) + bytes(4096)
    with pytest.raises((UnsupportedFormat, CorruptAudio)) as raised:
        analyze_bytes(data)
    assert "channel" in raised.value.message.lower() or "header" in raised.value.message.lower()


@pytest.mark.parametrize("samplerate", [0, 1, 3_000_000, 0xFFFFFFFF])
def test_absurd_sample_rate(samplerate):
    data = wav_header(samplerate=samplerate, data_bytes=4096) + bytes(4096)
    with pytest.raises((UnsupportedFormat, CorruptAudio)) as raised:
        analyze_bytes(data)
    assert raised.value.message


def test_riff_that_is_not_wave():
    with pytest.raises(UnsupportedFormat, match="AVI"):
        analyze_bytes(b"RIFF\x00\x01\x00\x00AVI LIST" + bytes(100))


def test_wav_with_a_broken_fmt_chunk():
    data = b"RIFF\x24\x10\x00\x00WAVEfmt \x02\x00\x00\x00\x01\x00data\x00\x10\x00\x00" + bytes(4096)
    with pytest.raises((CorruptAudio, UnsupportedFormat)):
        analyze_bytes(data)


def test_unsupported_encoding_inside_wav():
    data = wav_header(format_tag=0x1234, data_bytes=4096) + bytes(4096)
    with pytest.raises((UnsupportedFormat, CorruptAudio)):
        analyze_bytes(data)


# --- reader failures ------------------------------------------------------------------


# soundfile reports the exception the callback raised as "unraisable": that is the point
swallowed_by_soundfile = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)


@swallowed_by_soundfile
@pytest.mark.parametrize("format", ["WAV", "FLAC"])
@pytest.mark.parametrize("error", [TransientError("connection reset"), ObjectChanged()])
def test_a_reader_failure_surfaces_as_itself(format, error):
    data = encode(make_signal(seconds=6), format, "PCM_16")
    reader = FailingReader(data, fail_after=len(data) * 2 // 3, error=error)
    with pytest.raises(type(error)):
        analyze_stream(reader, size=len(data))
    assert reader.checked >= 1


@swallowed_by_soundfile
def test_a_reader_failure_at_the_header_surfaces_as_itself():
    data = encode(make_signal(), "WAV", "PCM_16")
    reader = FailingReader(data, fail_after=10, error=TransientError("throttled"))
    with pytest.raises(TransientError):
        analyze_stream(reader, size=len(data))


def test_a_healthy_reader_is_checked_after_every_block():
    data = encode(make_signal(seconds=8), "WAV", "PCM_16")
    reader = FailingReader(data, fail_after=len(data) + 1, error=TransientError())
    document = analyze_stream(reader, size=len(data))
    blocks = math.ceil(8 * SR / (decode.BLOCK_SAMPLES // 2))
    assert reader.checked >= blocks
    assert document["format"]["frames"] == 8 * SR


def test_five_nan_samples_in_a_float_wav_do_not_lower_its_loudness():
    """The file-level version of the NaN-poisoning case: a loud float WAV (about -8 LUFS)
    with five NaN samples early on still measures about -8, not the quieter value an IIR
    filter left in a NaN state would give."""
    rng = np.random.default_rng(12)
    signal = (rng.standard_normal((20 * SR, 2)) * 0.2).astype(np.float32)
    clean = analyze_bytes(encode(signal, "WAV", "FLOAT"))["loudness"]["integrated_lufs"]
    signal[[SR, SR + 7, SR + 300, 2 * SR, 3 * SR], 1] = np.nan
    document = analyze_bytes(encode(signal, "WAV", "FLOAT"))
    assert document["channels"][1]["nan_samples"] == 5
    assert clean == pytest.approx(-8, abs=1.0)
    assert document["loudness"]["integrated_lufs"] == pytest.approx(clean, abs=0.01)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("format", "subtype"),
    [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")],
)
def test_damaged_files_end_in_a_document_or_a_processing_failure(format, subtype):
    """Cut and scribbled-over files: every one ends with strict JSON or with
    UnsupportedFormat / CorruptAudio -- never another exception, never a hang."""
    original = encode(make_signal(seconds=1), format, subtype)
    rng = np.random.default_rng(len(original))
    for case in range(12):
        data = bytearray(original)
        if case % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        elif case % 3 == 1:
            at = int(rng.integers(0, 200))
            data[at : at + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        else:
            at = int(rng.integers(0, len(data)))
            data[at : at + 500] = rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
        try:
            analyze_bytes(bytes(data))
        except (UnsupportedFormat, CorruptAudio) as failure:
            assert failure.message
