"""Decode an audio file object block by block and analyze it.

The file object may be a local file or the S3 range reader. soundfile (libsndfile) calls
its ``readinto`` from a C callback and swallows any exception raised there: a failed read
then looks like the end of the file (WAV) or an error without a message (FLAC). So if the
file object has ``raise_if_failed()``, it is called after every block, at the end and
before any decoding error is reported -- a network failure surfaces as the reader's own
exception, never as a shorter recording or "corrupt audio".

Failure messages are written for the person who uploaded the file: what is wrong with
it, in their terms. libsndfile's own text (which names the file object, and describes
conditions in its own terms) goes to the log only.

Continuation: ``on_block`` sees every decoded block's position and can take a
``Resume`` snapshot there (the analysis state, the frame to continue at, and a
fingerprint of the frames that follow); ``analyze_stream(..., resume=...)`` restores the
analysis, seeks the decoder to that frame and checks the fingerprint on the first block
it decodes. libsndfile's seek is sample-exact for PCM, FLAC, Vorbis, Opus and MP3 (the
tests compare seek-and-continue with straight through for each); where a decoder lands
elsewhere all the same, the fingerprint differs and the decode restarts from the file's
start, skipping the frames the state covers, which is exact but costs their decoding.

Speed: blocks are read as int16/int32 whenever the subtype allows (libsndfile's own
int->float conversion is several times slower than numpy's), into two reused buffers,
and the analysis of one block runs on worker threads while the next one is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np
import soundfile as sf
from audiolift_core.errors import CorruptAudio, UnsupportedFormat
from audiolift_core.formats import by_name
from audiolift_core.observability import logger

from .analysis import AnalysisOptions, StreamingAnalyzer
from .analysis.analyzer import TRUE_PEAK_ROW
from .analysis.layout import ChannelLayout
from .containers import channel_layout, flac_declared_frames, mpeg_declared_frames, promised_frames
from .sniff import SNIFF_BYTES, identify

ProgressCallback = Callable[[int, int | None], None]
# Frames of the block after a checkpoint whose bytes identify the decoder's position.
FINGERPRINT_FRAMES = 4096

log = logger("audiolift-processor")

MAX_CHANNELS = 64
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
# Samples (frames x channels) per block, whatever the channel count: 1-2 MiB per read
# buffer, 4 MiB of float64 working copies. Measured: 2^16 costs ~40 % more CPU (per-call
# overhead), 2^19..2^20 about the same; memory stays a few MiB.
BLOCK_SAMPLES = 1 << 19


def frames_per_block(channels: int) -> int:
    """Frames per decoded block: blocks are cut at multiples of this from the file's
    start, also by a part analysed on its own (a multiple of the true-peak row, so the
    interpolator computes the same rows whoever reads the frames)."""
    return max(TRUE_PEAK_ROW, (BLOCK_SAMPLES // channels) // TRUE_PEAK_ROW * TRUE_PEAK_ROW)


# Containers whose header states the exact length: fewer decoded frames means damage.
_EXACT_LENGTH = frozenset({"wav", "rf64", "w64", "flac", "aiff", "aifc", "caf", "au"})
_MPEG_CODEC_SLACK = 3 * 1152

# The largest positive code of each integer subtype, as libsndfile decodes it to int16
# or int32: a sample there (or beyond, or at the most negative code) counts as clipped.
# Companded and low-resolution codecs never reach full scale: u-law's largest code
# decodes to 32124/32768, A-law's to 32256/32768, 8-bit PCM's to 127/128.
_INT16_LARGEST = {
    "PCM_16": 32767, "PCM_S8": 32512, "PCM_U8": 32512, "DPCM_8": 32512, "DPCM_16": 32767,
    "ULAW": 32124, "ALAW": 32256, "DWVW_12": 32752, "DWVW_16": 32767, "IMA_ADPCM": 32767,
    "MS_ADPCM": 32767, "GSM610": 32760, "VOX_ADPCM": 32752, "G721_32": 32764,
    "G723_24": 32764, "G723_40": 32764, "NMS_ADPCM_16": 32767, "NMS_ADPCM_24": 32767,
    "NMS_ADPCM_32": 32767, "ALAC_16": 32767,
}  # fmt: skip
_INT32_BITS = {
    "PCM_24": 24,
    "PCM_32": 32,
    "DWVW_24": 24,
    "ALAC_20": 20,
    "ALAC_24": 24,
    "ALAC_32": 32,
}


def read_plan(subtype: str) -> tuple[str, float | None, float]:
    """(dtype to read, scale to [-1, 1) or None for floats, clip level)."""
    if subtype in _INT16_LARGEST:
        return "int16", 1.0 / 32768.0, _INT16_LARGEST[subtype] / 32768.0
    if subtype in _INT32_BITS:
        largest = (2 ** (_INT32_BITS[subtype] - 1) - 1) << (32 - _INT32_BITS[subtype])
        return "int32", 1.0 / 2147483648.0, largest / 2147483648.0
    if subtype == "DOUBLE":
        return "float64", None, 1.0
    # FLOAT, and the lossy codecs (Vorbis, Opus, MP3), which decode to float and may
    # overshoot: full scale is their largest code
    return "float32", None, 1.0


@dataclass(frozen=True)
class Resume:
    """Where an analysis stopped: continue it with ``analyze_stream(..., resume=)``."""

    frames: int  # decoded and analysed; decoding continues at this frame
    analysis: dict[str, Any]  # StreamingAnalyzer.state()
    fingerprint: str  # of the FINGERPRINT_FRAMES frames from ``frames`` on, as read


class ResumeMismatch(Exception):
    """The decoder does not give the frames the saved state expects after it."""


class BlockDone:
    """Given to ``on_block`` after each analysed block: how far the decoding is, and
    ``snapshot()``, the state to continue from there."""

    def __init__(self, analyzer: StreamingAnalyzer, frames: int, following: Any):
        self.frames = frames
        self._analyzer = analyzer
        self._following = following

    @property
    def last(self) -> bool:
        """Nothing follows: only the document is left to make."""
        return not len(self._following)

    def snapshot(self) -> Resume:
        return Resume(self.frames, self._analyzer.state(), _fingerprint(self._following))


BlockCallback = Callable[[BlockDone], None]


def _fingerprint(block: Any) -> str:
    head = np.ascontiguousarray(block[:FINGERPRINT_FRAMES])
    return hashlib.sha256(head.tobytes()).hexdigest()


@dataclass(frozen=True)
class Stream:
    """What the header and the decoder say about the audio before it is decoded."""

    container: str
    samplerate: int
    channels: int
    subtype: str
    expected: int | None  # frames, for progress and the document
    decodable: int | None  # frames the decoder says the file holds (None: it cannot tell)
    required: int | None  # the header states the length: fewer frames means damage
    layout: ChannelLayout | None


def analyze_stream(
    fileobj: IO[bytes] | Any,
    *,
    size: int | None = None,
    on_progress: ProgressCallback | None = None,
    options: AnalysisOptions | None = None,
    resume: Resume | None = None,
    on_block: BlockCallback | None = None,
) -> dict[str, Any]:
    """Analyze the audio in ``fileobj`` (seekable, binary). Returns the analysis document.

    Raises UnsupportedFormat or CorruptAudio for files we cannot analyze, ResumeMismatch
    when ``resume`` does not fit this file; whatever ``on_progress``, ``on_block`` or the
    file object's ``raise_if_failed`` raise propagates untouched.
    """
    raise_if_failed = _failure_check(fileobj)
    with _opened(fileobj, size, raise_if_failed) as (sound, stream):
        dtype, scale, clip_level = read_plan(stream.subtype)
        analyzer = _analyzer(stream, options, clip_level, resume)
        hooks = _Hooks(raise_if_failed, on_progress, on_block)
        try:
            decoded = _decode(sound, analyzer, dtype, scale, stream, hooks, resume)
            document = analyzer.finish()
        finally:
            analyzer.close()

    raise_if_failed()
    _check_length(stream, decoded)
    document["format"].update(format_fields(stream, size))
    return document


def format_fields(stream: Stream, size: int | None) -> dict[str, Any]:
    """What `analyze_stream` adds to the document's "format" from the container."""
    return {
        "container": stream.container,
        "subtype": stream.subtype,
        "frames_expected": stream.expected,
        "file_bytes": size,
    }


def probe_stream(fileobj: IO[bytes] | Any, *, size: int | None = None) -> Stream:
    """What the header and the decoder say about the audio, without decoding any."""
    raise_if_failed = _failure_check(fileobj)
    with _opened(fileobj, size, raise_if_failed) as (_, stream):
        pass
    raise_if_failed()
    return stream


def analyze_range(
    fileobj: IO[bytes] | Any,
    *,
    start: int,
    end: int,
    size: int | None = None,
    on_progress: ProgressCallback | None = None,
    options: AnalysisOptions | None = None,
    resume: Resume | None = None,
    on_block: BlockCallback | None = None,
) -> dict[str, Any]:
    """Analyse the frames ``start`` to ``end`` of the audio on their own, for a merge
    (``StreamingAnalyzer.merge``) with the other parts: the filters are warmed up on the
    frames before ``start`` first (not counted), and blocks are cut where a straight
    run cuts them. ``start`` must be a multiple of ``analysis.part_alignment``.

    Returns ``{"analysis": <the analyzer's state>, "format": <format_fields>}``. Raises
    as `analyze_stream`; CorruptAudio when the file ends before ``end``."""
    raise_if_failed = _failure_check(fileobj)
    with _opened(fileobj, size, raise_if_failed) as (sound, stream):
        dtype, scale, clip_level = read_plan(stream.subtype)
        analyzer = _analyzer(stream, options, clip_level, resume, start_frame=start)
        hooks = _Hooks(raise_if_failed, on_progress, on_block)
        try:
            if resume is None and start:
                _warm_up(sound, analyzer, dtype, scale, stream, start, raise_if_failed)
            decoded = _decode(
                sound, analyzer, dtype, scale, stream, hooks, resume, start=start, end=end
            )
            state = analyzer.state()
        finally:
            analyzer.close()
    raise_if_failed()
    if decoded < end:
        _check_length(replace(stream, required=end), decoded)
    return {"analysis": state, "format": format_fields(stream, size)}


def _warm_up(
    sound: sf.SoundFile,
    analyzer: StreamingAnalyzer,
    dtype: str,
    scale: float | None,
    stream: Stream,
    start: int,
    raise_if_failed: Callable[[], None],
) -> None:
    frames = min(start, analyzer.warm_up_frames)
    sound.seek(start - frames)
    buffer = np.empty((frames, stream.channels), dtype=dtype)
    block = _read(sound, buffer, stream, start - frames, raise_if_failed)
    raise_if_failed()
    analyzer.warm_up(block, scale=scale)


def _failure_check(fileobj: Any) -> Callable[[], None]:
    check = getattr(fileobj, "raise_if_failed", None)
    return check if callable(check) else _nothing


@contextlib.contextmanager
def _opened(
    fileobj: Any, size: int | None, raise_if_failed: Callable[[], None]
) -> Iterator[tuple[sf.SoundFile, Stream]]:
    head = bytes(fileobj.read(SNIFF_BYTES))
    raise_if_failed()
    if not head and size:
        raise CorruptAudio("The file could not be read from the start.")
    container = identify(head).name
    fileobj.seek(0)
    with _open(_Unnamed(fileobj), container, raise_if_failed) as sound:
        raise_if_failed()
        yield sound, _describe(sound, container, head)


def _analyzer(
    stream: Stream,
    options: AnalysisOptions | None,
    clip_level: float,
    resume: Resume | None,
    *,
    start_frame: int = 0,
) -> StreamingAnalyzer:
    if resume is None:
        return StreamingAnalyzer(
            stream.samplerate,
            stream.channels,
            expected_frames=stream.expected,
            options=options,
            clip_level=clip_level,
            layout=stream.layout,
            start_frame=start_frame,
        )
    saved = resume.analysis
    if (saved.get("samplerate"), saved.get("channels")) != (stream.samplerate, stream.channels):
        raise ResumeMismatch("the saved state is of another stream")
    try:
        return StreamingAnalyzer.restore(saved)
    except (ValueError, KeyError, TypeError) as error:
        raise ResumeMismatch(f"the saved state cannot be restored: {error}") from error


@dataclass(frozen=True)
class _Hooks:
    raise_if_failed: Callable[[], None]
    on_progress: ProgressCallback | None
    on_block: BlockCallback | None


class _Unnamed(io.RawIOBase):
    """The file object as libsndfile sees it: the same bytes, under a neutral name, so
    no storage detail (bucket, key, version) can reach a message through its ``repr``."""

    def __init__(self, raw: Any):
        super().__init__()
        self._raw = raw

    def __repr__(self) -> str:
        return "<upload>"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            return int(readinto(buffer) or 0)
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self._raw.tell())


def _open(fileobj: Any, container: str, raise_if_failed: Callable[[], None]) -> sf.SoundFile:
    try:
        return sf.SoundFile(fileobj, mode="r")
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        raise_if_failed()
        raise _open_error(container, error) from error


def _describe(sound: sf.SoundFile, container: str, head: bytes) -> Stream:
    samplerate, channels = int(sound.samplerate), int(sound.channels)
    _check_limits(samplerate, channels)
    expected = int(sound.frames) if sound.frames > 0 else None
    for declared in (promised_frames(container, head), _flac_frames(container, head)):
        if declared is not None and (expected is None or declared > expected):
            expected = declared
    required = expected if container in _EXACT_LENGTH else None
    mpeg_total = mpeg_declared_frames(head) if container == "mp3" else None
    if mpeg_total is not None:
        # the frame count of a Xing/Info/VBRI header, less what the encoder's delay and
        # padding (at most about two frames) take off the decoded length
        required = max(0, mpeg_total - _MPEG_CODEC_SLACK)
    return Stream(
        container=container,
        samplerate=samplerate,
        channels=channels,
        subtype=str(sound.subtype),
        expected=expected,
        decodable=int(sound.frames) if sound.frames > 0 else None,
        required=required,
        layout=channel_layout(container, head, channels),
    )


def _flac_frames(container: str, head: bytes) -> int | None:
    return flac_declared_frames(head) if container == "flac" else None


def _check_length(stream: Stream, decoded: int) -> None:
    required = stream.required
    if required is None or decoded >= required:
        return
    declared = max(required, stream.expected or 0)
    rate = stream.samplerate
    raise CorruptAudio(
        f"The audio is truncated: the file declares {_duration(declared / rate)} of "
        f"audio but ends after {_duration(decoded / rate)} ({decoded} of {declared} "
        "frames). Upload the complete file."
    )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)} min {rest:04.1f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes):02d} min {rest:04.1f} s"


def _decode(
    sound: sf.SoundFile,
    analyzer: StreamingAnalyzer,
    dtype: str,
    scale: float | None,
    stream: Stream,
    hooks: _Hooks,
    resume: Resume | None,
    *,
    start: int = 0,
    end: int | None = None,
) -> int:
    """Decode and analyse from ``start`` (or the resume point) to ``end`` (None: the
    file's end); returns the frame it stopped at. Blocks end at multiples of
    `frames_per_block` (and at ``end``)."""
    block_frames = frames_per_block(sound.channels)
    buffers = [np.empty((block_frames, sound.channels), dtype=dtype) for _ in range(2)]

    def next_block(position: int, buffer: np.ndarray) -> Any:
        stop = (position // block_frames + 1) * block_frames
        stop = stop if end is None else min(stop, end)
        return buffer[: max(0, stop - position)]

    position = resume.frames if resume is not None else start
    current = 0
    if resume is not None:
        first = next_block(position, buffers[current])
        block = _resume(sound, first, stream, resume, hooks.raise_if_failed)
    else:
        if start:
            sound.seek(start)
        block = _read(sound, next_block(position, buffers[current]), stream, position, hooks)
    while len(block):
        analyzer.submit(block, scale=scale)  # analyzed on the workers ...
        current ^= 1
        after = position + len(block)
        following = _read(  # ... while the next block is read
            sound, next_block(after, buffers[current]), stream, after, hooks
        )
        analyzer.collect()
        position = after
        hooks.raise_if_failed()
        if hooks.on_progress is not None:
            hooks.on_progress(*_progress(position, start, end, stream.expected))
        if hooks.on_block is not None:
            hooks.on_block(BlockDone(analyzer, position, following))
        block = following
    return position


def _progress(
    position: int, start: int, end: int | None, expected: int | None
) -> tuple[int, int | None]:
    """(frames done, frames in all) of what this decode covers."""
    if end is not None:
        return position - start, end - start
    # a lossy file's length is an estimate: never report more than 100 %
    return position, max(expected, position) if expected is not None else None


def _resume(
    sound: sf.SoundFile,
    buffer: np.ndarray,
    stream: Stream,
    resume: Resume,
    raise_if_failed: Callable[[], None],
) -> Any:
    """The first block after the saved position: sought to, and if the decoder lands
    elsewhere (the fingerprint differs), decoded to from the file's start."""
    try:
        sound.seek(resume.frames)
    except (sf.LibsndfileError, RuntimeError, ValueError):
        raise_if_failed()
        log.warning("decoder could not seek", extra={"frame": resume.frames})
    else:
        block = _read(sound, buffer, stream, resume.frames, raise_if_failed)
        if _fingerprint(block) == resume.fingerprint:
            return block
        log.warning("seek was not sample-exact", extra={"container": stream.container})
    sound.seek(0)
    skipped = 0
    while skipped < resume.frames:
        part = _read(sound, buffer[: resume.frames - skipped], stream, skipped, raise_if_failed)
        if not len(part):
            raise ResumeMismatch("the file ends before the saved position")
        skipped += len(part)
    block = _read(sound, buffer, stream, resume.frames, raise_if_failed)
    if _fingerprint(block) != resume.fingerprint:
        raise ResumeMismatch("the frames after the saved position differ")
    return block


def _read(
    sound: sf.SoundFile,
    buffer: np.ndarray,
    stream: Stream,
    position: int,
    raise_if_failed: Callable[[], None] | _Hooks,
) -> Any:
    """The next block, as long as ``buffer``; ``position`` is the frame it starts at,
    for the message."""
    if isinstance(raise_if_failed, _Hooks):
        raise_if_failed = raise_if_failed.raise_if_failed
    if not len(buffer):
        return buffer
    try:
        return sound.read(len(buffer), dtype=str(buffer.dtype), always_2d=True, out=buffer)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise_if_failed()
        log.warning(
            "decoder error",
            extra={"container": stream.container, "frame": position, "detail": str(error)},
        )
        # The decoder reads ahead: the damage is somewhere in the block asked for, which
        # is all the message can say (for a short file, that is all of it).
        end = position + len(buffer)
        if stream.expected:
            end = min(end, max(stream.expected, position + 1))
        where = (
            f"between {_duration(position / stream.samplerate)} and "
            f"{_duration(end / stream.samplerate)} (frames {position}-{end})"
        )
        raise CorruptAudio(
            f"The {_label(stream.container)} audio is damaged or incomplete: it could not be "
            f"decoded {where}."
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


def _label(container: str) -> str:
    return by_name(container).label


_UNSUPPORTED_WORDS = ("unsupported", "not supported", "unimplemented", "unknown format")


def _open_error(container: str, error: Exception) -> Exception:
    """A message in the user's terms; libsndfile's text goes to the log."""
    detail = str(error)
    log.warning("decoder refused the file", extra={"container": container, "detail": detail})
    lowered = detail.lower()
    label = _label(container)
    if any(
        word in lowered
        for word in ("unsupported", "not supported", "unimplemented", "unknown format")
    ):
        return UnsupportedFormat(
            f"The file is {label}, but its audio is encoded in a way we cannot decode. "
            "Convert it to 16- or 24-bit PCM WAV or FLAC."
        )
    if "channel" in lowered:
        return UnsupportedFormat(f"The {label} file declares an invalid number of channels.")
    return CorruptAudio(
        f"The file starts like {label}, but its header is damaged or inconsistent, so "
        "the audio cannot be decoded."
    )


def _nothing() -> None:
    return None
