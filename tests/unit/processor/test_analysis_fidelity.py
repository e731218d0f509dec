"""Every figure right for every encoding and layout, and failures that explain themselves.

All files are generated here. Levels are checked exactly against a float64 read-back of
the same file; loudness against BS.1770's formula (the K-filter coefficients published
for 48 kHz, steady sines) and, where ffmpeg is installed, against its ebur128 filter,
which reads WAVE_FORMAT_EXTENSIBLE channel masks.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audiolift_core.errors import CorruptAudio, ProcessingFailure, UnsupportedFormat
from audiolift_core.formats import mpeg_frame
from audiolift_processor.analysis import StreamingAnalyzer
from audiolift_processor.containers import (
    channel_layout,
    flac_declared_frames,
    mpeg_declared_frames,
)
from audiolift_processor.decode import analyze_stream
from file_objects import StorageLikeReader
from scipy.signal import lfilter

pytestmark = pytest.mark.timeout(60)

SR = 48_000
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")

# BS.1770-4's K-weighting at 48 kHz, as published (pre-filter, then RLB high-pass).
_PRE = (
    [1.53512485958697, -2.69169618940638, 1.19839281085285],
    [1.0, -1.69065929318241, 0.73248077421585],
)
_RLB = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])


def k_gain_squared(frequency: float) -> float:
    """|H(f)|^2 of the published K-weighting filter at 48 kHz."""
    z = np.exp(-1j * 2 * np.pi * frequency / SR * np.arange(3))
    gain = 1.0
    for b, a in (_PRE, _RLB):
        gain *= abs(np.dot(b, z) / np.dot(a, z)) ** 2
    return float(gain)


def k_impulse_l1() -> float:
    """Sum of |h| of the K-filter's impulse response: the most it can amplify a peak."""
    impulse = np.zeros(SR)
    impulse[0] = 1.0
    for b, a in (_PRE, _RLB):
        impulse = lfilter(b, a, impulse)
    return float(np.abs(impulse).sum())


def bs1770_sines(amplitudes: list[float], frequencies: list[float], weights: list[float]) -> float:
    """The integrated loudness of steady sines, one per channel, by BS.1770's formula."""
    power = sum(
        w * a * a / 2 * k_gain_squared(f)
        for a, f, w in zip(amplitudes, frequencies, weights, strict=True)
    )
    return -0.691 + 10 * math.log10(power)


def sines(seconds: float, amplitudes: list[float], frequencies: list[float]) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.stack(
        [a * np.sin(2 * np.pi * f * t) for a, f in zip(amplitudes, frequencies, strict=True)],
        axis=1,
    )


def encode(signal: np.ndarray, format: str, subtype: str, samplerate: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, samplerate, format=format, subtype=subtype)
    return buffer.getvalue()


def analyze_bytes(data: bytes) -> dict:
    document = analyze_stream(io.BytesIO(data), size=len(data))
    return json.loads(json.dumps(document, allow_nan=False))


def with_channel_mask(wavex: bytes, mask: int) -> bytes:
    """A WAVE_FORMAT_EXTENSIBLE file with its channel mask replaced."""
    assert wavex[12:16] == b"fmt " and struct.unpack_from("<H", wavex, 20)[0] == 0xFFFE
    return wavex[:40] + struct.pack("<I", mask) + wavex[44:]


def ffmpeg_integrated(data: bytes, tmp_path: Path, suffix: str = ".wav") -> float:
    assert FFMPEG is not None
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    done = subprocess.run(
        [FFMPEG, "-nostats", "-hide_banner", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    summary = done.stderr[done.stderr.rfind("Summary:") :]
    match = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    assert match, summary
    return float(match.group(1))


# --- 1. clipping: the largest code of every encoding ------------------------------------

SQUARE = np.where((np.arange(SR) // 48) % 2 == 0, 1.0, -1.0)

LOSSLESS_ENCODINGS = [
    ("WAV", "PCM_U8"),
    ("WAV", "PCM_16"),
    ("WAV", "PCM_24"),
    ("WAV", "PCM_32"),
    ("WAV", "FLOAT"),
    ("WAV", "DOUBLE"),
    ("WAV", "ULAW"),
    ("WAV", "ALAW"),
    ("AIFF", "PCM_S8"),
    ("AU", "ULAW"),
    ("AU", "ALAW"),
    ("FLAC", "PCM_S8"),
    ("FLAC", "PCM_16"),
    ("FLAC", "PCM_24"),
    ("CAF", "ALAC_16"),
    ("CAF", "ALAC_20"),
    ("CAF", "ALAC_24"),
    ("CAF", "ALAC_32"),
]


@pytest.mark.parametrize(("format", "subtype"), LOSSLESS_ENCODINGS)
def test_a_full_scale_square_is_clipped_in_every_lossless_encoding(format, subtype):
    data = encode(np.stack([SQUARE, -SQUARE], axis=1), format, subtype)
    document = analyze_bytes(data)
    readback, _ = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    for index, channel in enumerate(document["channels"]):
        assert channel["clipped_samples"] == SR  # every sample is at the largest code
        peak = float(np.abs(readback[:, index]).max())
        assert channel["peak_dbfs"] == pytest.approx(20 * math.log10(peak), abs=1e-12)
    # a hair below the largest code is not clipped
    quieter = encode(np.stack([SQUARE, -SQUARE], axis=1) * 0.5, format, subtype)
    assert all(c["clipped_samples"] == 0 for c in analyze_bytes(quieter)["channels"])


@pytest.mark.parametrize(
    ("format", "subtype"), [("OGG", "VORBIS"), ("OGG", "OPUS"), ("MP3", "MPEG_LAYER_III")]
)
def test_lossy_encodings_count_decoded_samples_at_or_beyond_full_scale(format, subtype):
    data = encode(np.stack([SQUARE, SQUARE * 0.25], axis=1) * 0.999, format, subtype)
    document = analyze_bytes(data)
    readback, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    expected = np.count_nonzero(np.abs(readback.astype(np.float64)) >= 1.0, axis=0)
    assert expected[0] > 0  # the codec overshoots a full-scale square: that is clipping
    assert [c["clipped_samples"] for c in document["channels"]] == list(expected)
    peak = float(np.abs(readback[:, 0].astype(np.float64)).max())
    assert document["channels"][0]["peak_dbfs"] == pytest.approx(20 * math.log10(peak))


# --- 2. channel layout from the file ---------------------------------------------------

AMPLITUDES_6 = [0.1, 0.05, 0.08, 0.12, 0.03, 0.07]
FREQUENCIES_6 = [1000.0, 500.0, 2000.0, 997.0, 3000.0, 250.0]


def test_a_6_0_mask_weights_its_surrounds_and_reports_the_layout():
    signal = sines(10, AMPLITUDES_6, FREQUENCIES_6)
    data = with_channel_mask(encode(signal, "WAVEX", "DOUBLE"), 0x707)
    document = analyze_bytes(data)
    layout = document["format"]["channel_layout"]
    assert layout["name"] == "6.0" and layout["declared"] is True
    assert layout["positions"] == ["FL", "FR", "FC", "BC", "SL", "SR"]
    assert "0x707" in layout["source"]
    weights = [1.0, 1.0, 1.0, 1.41, 1.41, 1.41]
    assert document["loudness"]["channel_weights"] == weights
    assert [c["position"] for c in document["channels"]] == layout["positions"]
    expected = bs1770_sines(AMPLITUDES_6, FREQUENCIES_6, weights)
    assert document["loudness"]["integrated_lufs"] == pytest.approx(expected, abs=0.01)
    # by channel count in WAVE order it would have been read as 5.1: LFE dropped
    as_5_1 = bs1770_sines(AMPLITUDES_6, FREQUENCIES_6, [1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    assert abs(expected - as_5_1) > 0.3


@needs_ffmpeg
@pytest.mark.parametrize(
    ("mask", "channels"), [(0x707, 6), (0x33, 4), (0x3F, 6), (0x63F, 8), (0x607, 5)]
)
def test_loudness_by_the_mask_agrees_with_ffmpeg(tmp_path, mask, channels):
    amplitudes = ([0.1, 0.05, 0.08, 0.12, 0.03, 0.07, 0.09, 0.02])[:channels]
    frequencies = ([1000.0, 500.0, 2000.0, 997.0, 3000.0, 250.0, 700.0, 1500.0])[:channels]
    data = with_channel_mask(encode(sines(10, amplitudes, frequencies), "WAVEX", "PCM_24"), mask)
    ours = analyze_bytes(data)["loudness"]
    assert ours["integrated_lufs"] == pytest.approx(ffmpeg_integrated(data, tmp_path), abs=0.1)
    expected = bs1770_sines(amplitudes, frequencies, ours["channel_weights"])
    assert ours["integrated_lufs"] == pytest.approx(expected, abs=0.01)


def test_quad_by_mask_and_the_assumed_default_say_where_they_came_from():
    amplitudes, frequencies = [0.1, 0.05, 0.2, 0.02], [1000.0, 500.0, 2000.0, 997.0]
    signal = sines(5, amplitudes, frequencies)
    declared = analyze_bytes(with_channel_mask(encode(signal, "WAVEX", "PCM_24"), 0x33))
    assert declared["format"]["channel_layout"]["name"] == "quad"
    assert declared["loudness"]["channel_weights"] == [1.0, 1.0, 1.41, 1.41]
    expected = bs1770_sines(amplitudes, frequencies, [1.0, 1.0, 1.41, 1.41])
    assert declared["loudness"]["integrated_lufs"] == pytest.approx(expected, abs=0.01)

    plain = analyze_bytes(encode(signal, "WAV", "PCM_24"))  # no mask in a plain WAV
    layout = plain["format"]["channel_layout"]
    assert layout["declared"] is False and layout["name"] == "quad"
    assert layout["source"].startswith("none declared; assumed quad")


def test_files_without_a_layout_assume_the_wave_default_and_say_so():
    plain = analyze_bytes(encode(np.zeros((SR, 6)), "WAV", "PCM_16"))
    layout = plain["format"]["channel_layout"]
    assert (layout["name"], layout["declared"]) == ("5.1", False)
    assert plain["loudness"]["channel_weights"] == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]
    many = analyze_bytes(encode(np.zeros((100, 12)), "WAV", "PCM_16"))["format"]
    assert many["channel_layout"]["positions"] == [None] * 12
    assert "unknown position" in many["channel_layout"]["source"]
    stereo = analyze_bytes(encode(np.zeros((100, 2)), "FLAC", "PCM_16"))["format"]
    assert stereo["channel_layout"]["name"] == "stereo"


def test_a_mask_naming_fewer_channels_than_the_file_leaves_the_rest_unknown():
    data = with_channel_mask(encode(np.zeros((100, 4)), "WAVEX", "PCM_16"), 0x3)
    layout = analyze_bytes(data)["format"]["channel_layout"]
    assert layout["positions"] == ["FL", "FR", None, None] and layout["declared"] is True


def test_multichannel_ogg_follows_the_vorbis_channel_order():
    """Vorbis (and Opus families 0/1) fix the order by the count: 5.1 is L C R Ls Rs LFE."""
    amplitudes, frequencies = AMPLITUDES_6, FREQUENCIES_6
    data = encode(sines(5, amplitudes, frequencies), "OGG", "VORBIS")
    document = analyze_bytes(data)
    layout = document["format"]["channel_layout"]
    assert layout["positions"] == ["FL", "FC", "FR", "BL", "BR", "LFE"]
    assert (layout["name"], layout["declared"]) == ("5.1", True)
    weights = [1.0, 1.0, 1.0, 1.41, 1.41, 0.0]
    assert document["loudness"]["channel_weights"] == weights
    expected = bs1770_sines(amplitudes, frequencies, weights)
    assert document["loudness"]["integrated_lufs"] == pytest.approx(expected, abs=0.1)


@needs_ffmpeg
@pytest.mark.parametrize("codec", [["libvorbis"], ["libopus", "-mapping_family", "1"]])
def test_a_5_1_ogg_made_by_ffmpeg_reads_as_its_wave_source(tmp_path, codec):
    assert FFMPEG is not None
    amplitudes, frequencies = AMPLITUDES_6, FREQUENCIES_6
    source = tmp_path / "source.wav"
    source.write_bytes(encode(sines(5, amplitudes, frequencies), "WAVEX", "PCM_24"))  # 5.1
    target = tmp_path / "out.ogg"
    subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(source), "-c:a", *codec, str(target)], check=True
    )
    ours = analyze_bytes(target.read_bytes())["loudness"]["integrated_lufs"]
    assert ours == pytest.approx(ffmpeg_integrated(target.read_bytes(), tmp_path, ".ogg"), abs=0.1)
    expected = bs1770_sines(amplitudes, frequencies, [1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    assert ours == pytest.approx(expected, abs=0.1)


def caf_with_layout(data: bytes, chan_body: bytes) -> bytes:
    """Insert a 'chan' chunk after the CAF 'desc' chunk libsndfile wrote."""
    assert data[8:12] == b"desc"
    end_of_desc = 8 + 12 + 32
    chunk = b"chan" + struct.pack(">q", len(chan_body)) + chan_body
    return data[:end_of_desc] + chunk + data[end_of_desc:]


def aiff_with_layout(data: bytes, chan_body: bytes) -> bytes:
    """Insert an Apple 'CHAN' chunk after the AIFF 'COMM' chunk, fixing the FORM size."""
    assert data[12:16] == b"COMM"
    end_of_comm = 12 + 8 + struct.unpack_from(">I", data, 16)[0]
    chunk = b"CHAN" + struct.pack(">I", len(chan_body)) + chan_body
    body = data[8:end_of_comm] + chunk + data[end_of_comm:]
    return b"FORM" + struct.pack(">I", len(body)) + body


def descriptions(*labels: int) -> bytes:
    return struct.pack(">III", 0, 0, len(labels)) + b"".join(
        struct.pack(">IIfff", label, 0, 0.0, 0.0, 0.0) for label in labels
    )


@pytest.mark.parametrize(("wrap", "format"), [(caf_with_layout, "CAF"), (aiff_with_layout, "AIFF")])
def test_core_audio_layouts_in_caf_and_aiff(wrap, format):
    amplitudes, frequencies = [0.1, 0.05, 0.08, 0.12], [1000.0, 500.0, 2000.0, 997.0]
    signal = sines(5, amplitudes, frequencies)
    # L R LFE Cs: the LFE does not count, the centre surround does, at +1.5 dB
    data = wrap(encode(signal, format, "PCM_24"), descriptions(1, 2, 4, 9))
    document = analyze_bytes(data)
    layout = document["format"]["channel_layout"]
    assert layout["positions"] == ["FL", "FR", "LFE", "BC"] and layout["declared"] is True
    weights = [1.0, 1.0, 0.0, 1.41]
    assert document["loudness"]["channel_weights"] == weights
    expected = bs1770_sines(amplitudes, frequencies, weights)
    assert document["loudness"]["integrated_lufs"] == pytest.approx(expected, abs=0.01)
    # a predefined tag (MPEG 5.1 A) and a bitmap (quad) are read too
    mpeg_5_1_a = struct.pack(">III", 121 << 16 | 6, 0, 0)
    five_one = wrap(encode(np.zeros((100, 6)), format, "PCM_16"), mpeg_5_1_a)
    assert channel_layout(format.lower(), five_one[:4096], 6).name == "5.1"  # type: ignore[union-attr]
    quad_bitmap = struct.pack(">III", 1 << 16, 0x33, 0)
    bitmap = wrap(encode(np.zeros((100, 4)), format, "PCM_16"), quad_bitmap)
    assert analyze_bytes(bitmap)["format"]["channel_layout"]["name"] == "quad"


# --- 3. failures in the user's terms -----------------------------------------------------

BUCKET, KEY, ETAG = (
    "secret-bucket-7f3a",
    "uploads/job-0c1d2e3f/take.wav",
    "9b2cf535f27731c974343645a3985328",
)


def failing_files() -> dict[str, bytes]:
    rng = np.random.default_rng(31)
    noise = rng.standard_normal((SR, 2)) * 0.1
    mp3 = encode(noise, "MP3", "MPEG_LAYER_III")
    frame = mp3[: 417 * 3]
    flac = encode(noise, "FLAC", "PCM_16")
    wav = encode(noise, "WAV", "PCM_16")
    return {
        "random bytes": rng.bytes(20_000),
        "mp3 frames then garbage": bytes(frame) + rng.bytes(20_000),
        "mp3 cut at 60 %": mp3[: len(mp3) * 6 // 10],
        "flac cut at 60 %": flac[: len(flac) * 6 // 10],
        "flac with a damaged middle": flac[:5000] + rng.bytes(3000) + flac[8000:],
        "wav cut at 60 %": wav[: len(wav) * 6 // 10],
        "wav with a broken fmt chunk": wav[:20] + b"\x99\x99" + wav[22:],
        "wav with 0 channels": wav[:22] + b"\x00\x00" + wav[24:],
        "text": b"meeting notes\n" * 400,
        "empty": b"",
    }


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_no_failure_message_names_the_bucket_the_key_the_etag_or_the_library():
    seen = {}
    for name, data in failing_files().items():
        with pytest.raises(ProcessingFailure) as caught:
            analyze_stream(
                StorageLikeReader(data, bucket=BUCKET, key=KEY, etag=ETAG), size=len(data)
            )
        message = str(caught.value)
        seen[name] = message
        for secret in (BUCKET, KEY, ETAG, "s3://", "etag", "S3RangeReader", "<upload>"):
            assert secret not in message, (name, message)
        for library_text in ("Error opening", "libsndfile", "sf_", "psf_", "(possibly a pipe"):
            assert library_text not in message, (name, message)
        assert message.endswith("."), (name, message)
    assert "truncated" in seen["mp3 cut at 60 %"]
    # The decoder reads ahead: a cut or damaged FLAC names the stretch it could not decode,
    # not its start.
    for name in ("flac cut at 60 %", "flac with a damaged middle"):
        assert "damaged or incomplete" in seen[name], seen[name]
        assert "between 0.0 s and 1.0 s" in seen[name], seen[name]
    assert isinstance(_failure(failing_files()["random bytes"]), UnsupportedFormat)


def _failure(data: bytes) -> ProcessingFailure:
    with pytest.raises(ProcessingFailure) as caught:
        analyze_bytes(data)
    return caught.value


# --- 4. random data is unsupported, not corrupt -----------------------------------------


def test_random_files_are_unsupported_format_never_corrupt_audio():
    rng = np.random.default_rng(4)
    for _ in range(300):
        data = rng.bytes(int(rng.integers(1, 50_000)))
        assert isinstance(_failure(data), UnsupportedFormat)


# --- 5. truncated compressed files -------------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize(
    "args",
    [
        ["-c:a", "libmp3lame", "-q:a", "4"],  # VBR with a Xing header
        ["-c:a", "libmp3lame", "-b:a", "128k"],  # CBR with an Info header
    ],
)
def test_an_mp3_that_declares_its_length_and_is_cut_short_is_corrupt(tmp_path, args):
    assert FFMPEG is not None
    path = tmp_path / "take.mp3"
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=20", *args,
         str(path)],
        check=True,
    )  # fmt: skip
    data = path.read_bytes()
    whole = analyze_bytes(data)
    assert whole["format"]["frames"] == pytest.approx(20 * 44_100, abs=1152)
    for share in (0.6, 0.95):
        with pytest.raises(CorruptAudio, match="truncated"):
            analyze_bytes(data[: int(len(data) * share)])


def test_libsndfile_mp3s_and_flac_cut_short_are_corrupt():
    signal = np.random.default_rng(5).standard_normal((5 * SR, 2)) * 0.1
    mp3 = encode(signal, "MP3", "MPEG_LAYER_III")
    assert analyze_bytes(mp3)["format"]["frames"] == 5 * SR
    with pytest.raises(CorruptAudio, match="truncated"):
        analyze_bytes(mp3[: len(mp3) * 6 // 10])
    flac = encode(signal, "FLAC", "PCM_16")
    for share in (0.3, 0.6, 0.9, 0.99):
        with pytest.raises(CorruptAudio):
            analyze_bytes(flac[: int(len(flac) * share)])


def test_declared_lengths_are_read_from_xing_vbri_and_streaminfo():
    signal = np.zeros((3 * SR + 5, 1))
    mp3 = encode(signal, "MP3", "MPEG_LAYER_III")
    declared = mpeg_declared_frames(mp3[:4096])
    assert declared is not None and 0 <= declared - (3 * SR + 5) <= 3 * 1152
    # a VBRI header (Fraunhofer encoders) sits 32 bytes after the frame header
    header = bytes([0xFF, 0xFB, 0x94, 0x64])  # MPEG-1 layer III, 48 kHz, 128 kbit/s
    frame = bytearray(header + bytes(mpeg_frame(header, 0).length - 4))  # type: ignore[union-attr]
    frame[36:40] = b"VBRI"
    frame[50:54] = struct.pack(">I", 1234)
    assert mpeg_declared_frames(bytes(frame) + header * 2) == 1234 * 1152
    assert mpeg_declared_frames(header + bytes(1000)) is None  # bare frames declare nothing
    flac = encode(signal, "FLAC", "PCM_16")
    assert flac_declared_frames(flac[:4096]) == 3 * SR + 5


def test_an_mp3_without_a_declared_length_cannot_be_checked_and_completes(tmp_path):
    """Bare CBR frames carry no total: a cut file is indistinguishable from a short one."""
    signal = np.random.default_rng(6).standard_normal((2 * SR, 1)) * 0.1
    mp3 = encode(signal, "MP3", "MPEG_LAYER_III")
    # strip the Info frame libsndfile writes first: what is left is bare frames
    first = mpeg_frame(mp3, 0)
    assert first is not None
    bare = mp3[first.length :]
    document = analyze_bytes(bare[: len(bare) // 2])
    assert document["format"]["frames"] > 0


# --- 6. non-finite and absurd values -----------------------------------------------------


def float_wav(signal: np.ndarray, subtype: str = "DOUBLE") -> bytes:
    return encode(signal, "WAV", subtype)


def test_a_nan_burst_is_not_silence_but_non_finite_time():
    rng = np.random.default_rng(7)
    signal = rng.standard_normal((4 * SR, 2)) * 0.1
    signal[SR : 2 * SR, :] = np.nan  # one second of NaN in both channels
    document = analyze_bytes(float_wav(signal))
    silence = document["silence"]
    assert silence["silent_seconds"] == 0.0
    assert silence["non_finite_seconds"] == pytest.approx(1.0)
    assert document["channels"][0]["nan_samples"] == SR
    # quiet audio around a NaN burst in one channel: only the quiet time is silence
    quiet = np.zeros((4 * SR, 2))
    quiet[SR : SR + SR // 2, 1] = np.inf
    silence = analyze_bytes(float_wav(quiet))["silence"]
    assert silence["non_finite_seconds"] == pytest.approx(0.5)
    assert silence["silent_seconds"] == pytest.approx(3.5)
    assert silence["longest_seconds"] == pytest.approx(2.5)
    assert silence["ratio"] == pytest.approx(3.5 / 4)


def test_a_file_ending_in_nan_counts_its_last_partial_window_as_non_finite():
    signal = np.zeros((SR + 1000, 1))
    signal[-500:] = np.nan
    silence = analyze_bytes(float_wav(signal))["silence"]
    window = silence["window_seconds"]
    assert silence["non_finite_seconds"] == pytest.approx(1000 / SR + 0 * window, abs=window)
    assert silence["silent_seconds"] + silence["non_finite_seconds"] == pytest.approx(
        (SR + 1000) / SR
    )


def test_samples_whose_square_overflows_are_excluded_not_measured():
    rng = np.random.default_rng(8)
    signal = rng.standard_normal((3 * SR, 2)) * 0.1
    spoiled = signal.copy()
    spoiled[[1000, 50_000], 0] = 1e300
    spoiled[70_000, 1] = -1e200
    document = analyze_bytes(float_wav(spoiled))
    assert [c["overflow_samples"] for c in document["channels"]] == [2, 1]
    cleaned = signal.copy()
    cleaned[[1000, 50_000], 0] = 0.0
    cleaned[70_000, 1] = 0.0
    reference = analyze_bytes(float_wav(cleaned))
    for key in ("integrated_lufs", "loudness_range_lu", "momentary_max_lufs"):
        assert document["loudness"][key] == pytest.approx(reference["loudness"][key], abs=1e-9)
    assert document["peak_dbfs"] == pytest.approx(20 * math.log10(np.abs(cleaned).max()), abs=1e-12)
    assert document["loudness"]["integrated_lufs"] < 0


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: np.full((4 * SR, 2), 1e99),
        lambda rng: np.tile([1e50, -1e50], (2 * SR, 2)).reshape(-1, 2),  # Nyquist, huge
        lambda rng: np.where(rng.random((4 * SR, 2)) < 0.5, 1.0, -1.0),
        lambda rng: rng.standard_normal((4 * SR, 2)) * 3e10,
        lambda rng: np.tile(np.array([1.0, 1.0, -1.0, -1.0]), (SR, 2)).reshape(-1, 2),
    ],
)
def test_no_finite_file_is_louder_than_its_peak_allows(make):
    rng = np.random.default_rng(9)
    signal = make(rng)
    analyzer = StreamingAnalyzer(SR, signal.shape[1])
    analyzer.feed(signal)
    document = json.loads(json.dumps(analyzer.finish(), allow_nan=False))
    peak = float(np.abs(signal).max())
    # |K-weighted sample| <= peak * sum|h|, in every channel, weights 1.0 for stereo
    bound = -0.691 + 10 * math.log10(2 * (peak * k_impulse_l1()) ** 2)
    loudness = document["loudness"]
    for key in ("integrated_lufs", "momentary_max_lufs", "short_term_max_lufs"):
        assert loudness[key] is not None and loudness[key] <= bound + 1e-9, key
    assert document["channels"][0]["overflow_samples"] == 0
