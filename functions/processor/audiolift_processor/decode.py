"""Decode an audio file object block by block and analyse it.

The file object may be a local file or the S3 range reader. soundfile (libsndfile) calls
its ``readinto`` from a C callback and swallows any exception raised there: a failed read
then looks like the end of the file (WAV) or an error without a message (FLAC). So if the
file object has ``raise_if_failed()``, it is called after every block, at the end and
before any decoding error is reported -- a network failure surfaces as the reader's own
exception, never as a shorter recording or "corrupt audio".

Speed: blocks are read as int16/int32 whenever the subtype allows (libsndfile's own
int->float conversion is several times slower than numpy's), into two reused buffers,
and the analysis of one block runs on worker threads while the next one is read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
import soundfile as sf
from audiolift_core.errors import CorruptAudio, UnsupportedFormat

from .analysis import AnalysisOptions, StreamingAnalyzer
from .sniff import SNIFF_BYTES, identify

ProgressCallback = Callable[[int, int | None], None]

MAX_CHANNELS = 64
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
# Samples (frames x channels) per block, whatever the channel count: 1-2 MiB per read
# buffer, 4 MiB of float64 working copies. Measured: 2^16 costs ~40 % more CPU (per-call
# overhead), 2^19..2^20 about the same; memory stays a few MiB.
BLOCK_SAMPLES = 1 << 19

# Containers whose header states the exact length: fewer decoded frames means damage.
_EXACT_LENGTH = frozenset({"wav", "rf64", "w64", "flac", "aiff", "aifc", "caf", "au"})

# How to read each subtype: (numpy dtype, bits of resolution for the clip level).
_INT16_SUBTYPES = {
    "PCM_16": 16,
    "PCM_S8": 8,
    "PCM_U8": 8,
    "ULAW": 14,
    "ALAW": 13,
    "DPCM_8": 8,
    "DPCM_16": 16,
    "DWVW_12": 12,
    "DWVW_16": 16,
    "IMA_ADPCM": 16,
    "MS_ADPCM": 16,
    "GSM610": 16,
    "VOX_ADPCM": 16,
    "G721_32": 16,
    "G723_24": 16,
    "G723_40": 16,
    "NMS_ADPCM_16": 16,
    "NMS_ADPCM_24": 16,
    "NMS_ADPCM_32": 16,
    "ALAC_16": 16,
}
_INT32_SUBTYPES = {
    "PCM_24": 24,
    "PCM_32": 32,
    "DWVW_24": 24,
    "ALAC_20": 20,
    "ALAC_24": 24,
    "ALAC_32": 32,
}


def read_plan(subtype: str) -> tuple[str, float | None, float]:
    """(dtype to read, scale to [-1, 1) or None for floats, clip level)."""
    if subtype in _INT16_SUBTYPES:
        bits = min(_INT16_SUBTYPES[subtype], 16)
        return "int16", 1.0 / 32768.0, _clip_level(bits)
    if subtype in _INT32_SUBTYPES:
        return "int32", 1.0 / 2147483648.0, _clip_level(_INT32_SUBTYPES[subtype])
    if subtype == "DOUBLE":
        return "float64", None, 1.0
    return "float32", None, 1.0  # FLOAT, and the lossy codecs decode to float


def _clip_level(bits: int) -> float:
    """A sample at the largest positive code of a ``bits``-bit format (or beyond, or at
    the most negative one) counts as clipped."""
    return 1.0 - 2.0 ** (1 - bits)


def analyze_stream(
    fileobj: IO[bytes] | Any,
    *,
    size: int | None = None,
    on_progress: ProgressCallback | None = None,
    options: AnalysisOptions | None = None,
) -> dict[str, Any]:
    """Analyse the audio in ``fileobj`` (seekable, binary). Returns the analysis document.

    Raises UnsupportedFormat or CorruptAudio for files we cannot analyse; whatever
    ``on_progress`` or the file object's ``raise_if_failed`` raise propagates untouched.
    """
    check = getattr(fileobj, "raise_if_failed", None)
    raise_if_failed: Callable[[], None] = check if callable(check) else _nothing

    head = fileobj.read(SNIFF_BYTES)
    raise_if_failed()
    if not head and size:
        raise CorruptAudio("The file could not be read from the start.")
    container = identify(bytes(head)).name
    fileobj.seek(0)
    promised_by_header = promised_frames(container, bytes(head))

    try:
        sound = sf.SoundFile(fileobj, mode="r")
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        raise_if_failed()
        raise _open_error(container, error) from error
    with sound:
        raise_if_failed()
        samplerate, channels = int(sound.samplerate), int(sound.channels)
        subtype = str(sound.subtype)
        _check_limits(samplerate, channels)
        expected = int(sound.frames) if sound.frames > 0 else None
        if promised_by_header is not None and (expected is None or promised_by_header > expected):
            expected = promised_by_header
        dtype, scale, clip_level = read_plan(subtype)

        analyzer = StreamingAnalyzer(
            samplerate,
            channels,
            expected_frames=expected,
            options=options,
            clip_level=clip_level,
        )
        try:
            decoded = _decode(sound, analyzer, dtype, scale, expected, raise_if_failed, on_progress)
            document = analyzer.finish()
        finally:
            analyzer.close()

    raise_if_failed()
    if expected is not None and decoded < expected and container in _EXACT_LENGTH:
        raise CorruptAudio(
            f"The audio is truncated: the header promises {expected} frames "
            f"({expected / samplerate:.1f} s) but only {decoded} "
            f"({decoded / samplerate:.1f} s) could be decoded."
        )
    document["format"].update(
        {
            "container": container,
            "subtype": subtype,
            "frames_expected": expected,
            "file_bytes": size,
        }
    )
    return document


def _decode(
    sound: sf.SoundFile,
    analyzer: StreamingAnalyzer,
    dtype: str,
    scale: float | None,
    expected: int | None,
    raise_if_failed: Callable[[], None],
    on_progress: ProgressCallback | None,
) -> int:
    frames_per_block = max(1, BLOCK_SAMPLES // sound.channels)
    buffers = [np.empty((frames_per_block, sound.channels), dtype=dtype) for _ in range(2)]
    decoded = 0
    current = 0
    block = _read(sound, buffers[current], raise_if_failed)
    while len(block):
        analyzer.submit(block, scale=scale)  # analysed on the workers ...
        current ^= 1
        following = _read(sound, buffers[current], raise_if_failed)  # ... while we read on
        analyzer.collect()
        decoded += len(block)
        raise_if_failed()
        if on_progress is not None:
            # a lossy file's length is an estimate: never report more than 100 %
            on_progress(decoded, max(expected, decoded) if expected is not None else None)
        block = following
    return decoded


def _read(sound: sf.SoundFile, buffer: np.ndarray, raise_if_failed: Callable[[], None]) -> Any:
    try:
        return sound.read(len(buffer), dtype=str(buffer.dtype), always_2d=True, out=buffer)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise_if_failed()
        raise CorruptAudio(
            f"The audio data is damaged and could not be decoded past frame {sound.tell()} "
            f"({_detail(error)})."
        ) from error


def _check_limits(samplerate: int, channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedFormat(
            f"The file declares {channels} channels; at most {MAX_CHANNELS} are supported."
        )
    if not MIN_SAMPLE_RATE <= samplerate <= MAX_SAMPLE_RATE:
        raise UnsupportedFormat(
            f"The file declares a sample rate of {samplerate} Hz; supported rates are "
            f"{MIN_SAMPLE_RATE} Hz to {MAX_SAMPLE_RATE} Hz."
        )


def _open_error(container: str, error: Exception) -> Exception:
    detail = _detail(error)
    lowered = detail.lower()
    if "unsupported" in lowered or "not supported" in lowered or "unknown format" in lowered:
        return UnsupportedFormat(
            f"The file looks like {container.upper()} but uses a variant that cannot be "
            f"decoded ({detail})."
        )
    if "channel" in lowered and ("too many" in lowered or "bad" in lowered):
        return UnsupportedFormat(f"The {container.upper()} file has an invalid channel count.")
    return CorruptAudio(
        f"The file looks like {container.upper()} but its header is damaged or "
        f"inconsistent ({detail})."
    )


def _detail(error: Exception) -> str:
    text = str(error).strip()
    if ":" in text and text.lower().startswith("error opening"):
        text = text.split(":", 1)[1].strip()
    return text or "no detail from the decoder"


def _nothing() -> None:
    return None


def promised_frames(container: str, head: bytes) -> int | None:
    """Frames the header itself promises, when the sniffed bytes hold the fields that say
    so. libsndfile quietly clamps an oversized data chunk to the file's length, which
    would make a truncated upload look complete; None when the header leaves the length
    open (a streamed file) or the fields lie beyond ``head``."""
    try:
        if container == "wav":
            return _riff_frames(head)
        if container == "rf64":
            return _rf64_frames(head)
        if container == "w64":
            return _w64_frames(head)
        if container in ("aiff", "aifc"):
            return _aiff_frames(head)
        if container == "au":
            return _au_frames(head)
    except struct.error:
        return None
    return None


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


def _w64_frames(head: bytes) -> int | None:
    block_align = 0
    position = 40  # after the riff GUID, the 64-bit size and the wave GUID
    while position + 24 <= len(head):
        guid = head[position : position + 16]
        (size,) = struct.unpack_from("<Q", head, position + 16)  # includes this header
        if guid == _W64_FMT:
            (block_align,) = struct.unpack_from("<H", head, position + 24 + 12)
        elif guid == _W64_DATA:
            return (size - 24) // block_align if block_align and size > 24 else None
        if size < 24:
            return None
        position += (size + 7) & ~7
    return None


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


def _chunks(
    head: bytes, position: int, size_format: str, header: int, *, align: int
) -> Iterator[tuple[bytes, int, int]]:
    """(id, size, body offset) of the chunks that start within ``head``."""
    while position + header <= len(head):
        chunk_id = head[position : position + 4]
        (size,) = struct.unpack_from(size_format, head, position + 4)
        body = position + header
        yield chunk_id, size, body
        position = body + size + (size % align)
