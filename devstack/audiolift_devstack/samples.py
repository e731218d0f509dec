"""A music-like sample recording for the demo and the tests: chords with envelopes, a beat,
a quiet passage and some digital silence, so that every part of the analysis (loudness and
its range, peaks, silence, the waveform) has something to show.

One pass of the progression is computed once and repeated; the file is written a few
seconds at a time, so minutes of audio never sit in memory.
Deterministic for given arguments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

# A I-V-vi-IV progression in C major (Hz), one chord per bar.
_CHORDS = (
    (261.63, 329.63, 392.00),  # C
    (196.00, 246.94, 293.66),  # G
    (220.00, 261.63, 329.63),  # Am
    (174.61, 220.00, 261.63),  # F
)
_BEAT_SECONDS = 0.5  # 120 bpm
_BAR_SECONDS = 4 * _BEAT_SECONDS


def _sections(seconds: float) -> dict[str, tuple[float, float]]:
    """Where the silences and the quiet passage are, in seconds."""
    return {
        "lead_in": (0.0, min(0.5, seconds * 0.02)),
        "gap": (seconds * 0.5, seconds * 0.5 + min(1.0, seconds * 0.02)),
        "quiet": (seconds * 0.6, seconds * 0.75),
        "tail": (seconds - min(2.0, seconds * 0.04), seconds),
    }


def _loop(samplerate: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One pass of the four-bar progression: (chords, drums), each (frames, 2) float32.
    The recording repeats it, with its dynamics, quiet passage and silences on top."""
    frames = round(len(_CHORDS) * _BAR_SECONDS * samplerate)
    t = np.arange(frames) / samplerate
    bar_index = (t // _BAR_SECONDS).astype(np.int64)
    in_bar = t - bar_index * _BAR_SECONDS

    # Chords: three voices with a second harmonic, an attack/decay/release envelope per bar.
    envelope = np.minimum(in_bar / 0.05, 1.0) * (0.6 + 0.4 * np.exp(-in_bar / 0.4))
    envelope *= np.clip((_BAR_SECONDS - in_bar) / 0.1, 0.0, 1.0)
    chord_table = np.array(_CHORDS)[bar_index % len(_CHORDS)]  # (frames, 3)
    phase = 2 * np.pi * chord_table * in_bar[:, None]
    voices = np.sin(phase) + 0.3 * np.sin(2 * phase)
    chords = np.stack(
        [
            (voices * np.array([0.5, 0.35, 0.25])).sum(axis=1) * envelope,
            (voices * np.array([0.25, 0.35, 0.5])).sum(axis=1) * envelope,
        ],
        axis=1,
    )

    # The beat: a kick on beats 1 and 3, a hi-hat on every eighth note (panned right).
    beat_position = t % (2 * _BEAT_SECONDS)
    kick = np.sin(2 * np.pi * 55.0 * beat_position) * np.exp(-beat_position / 0.12)
    eighth_position = t % (_BEAT_SECONDS / 2)
    hat = np.random.default_rng(seed).standard_normal(frames) * np.exp(-eighth_position / 0.02)
    drums = np.stack([0.9 * kick + 0.09 * hat, 0.9 * kick + 0.15 * hat], axis=1)
    return chords.astype(np.float32), drums.astype(np.float32)


def _block(
    start: int,
    frames: int,
    samplerate: int,
    channels: int,
    seconds: float,
    loop: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    chords, drums = loop
    index = (start + np.arange(frames)) % len(chords)
    t = (start + np.arange(frames)) / samplerate
    sections = _sections(seconds)
    quiet_start, quiet_end = sections["quiet"]
    in_quiet = ((t >= quiet_start) & (t < quiet_end))[:, None]
    # Dynamics: a slow swell over 32 s, so the loudness range is not flat.
    swell = (0.75 + 0.25 * np.sin(2 * np.pi * t / 32.0))[:, None]
    gain = np.where(in_quiet, 10 ** (-24 / 20), 1.0) * 0.28 * swell
    stereo = (chords[index] + np.where(in_quiet, 0.0, 1.0) * drums[index]) * gain

    silent = np.zeros(frames, dtype=bool)
    for name in ("lead_in", "gap", "tail"):
        begin, end = sections[name]
        silent |= (t >= begin) & (t < end)
    stereo[silent] = 0.0

    out = np.empty((frames, channels), dtype=np.float32)
    for channel in range(channels):
        out[:, channel] = stereo[:, channel % 2]
    return out


def write_sample_recording(
    path: Path | str,
    seconds: float = 180,
    samplerate: int = 48000,
    channels: int = 2,
    *,
    subtype: str | None = None,
    seed: int = 7,
) -> Path:
    """Write the recording to ``path``: WAV (PCM 16-bit) or, for a ``.flac`` name, FLAC.
    Returns the path."""
    path = Path(path)
    if seconds <= 0 or samplerate <= 0 or channels <= 0:
        raise ValueError("seconds, samplerate and channels must be positive.")
    file_format = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    total = round(seconds * samplerate)
    with sf.SoundFile(
        path,
        "w",
        samplerate=samplerate,
        channels=channels,
        format=file_format,
        subtype=subtype or "PCM_16",
    ) as out:
        loop = _loop(samplerate, seed)
        block = 4 * samplerate
        for start in range(0, total, block):
            frames = min(block, total - start)
            out.write(_block(start, frames, samplerate, channels, seconds, loop))
    return path


def write_long_recording(path: Path, size: int, *, samplerate: int = 48_000) -> Path:
    """A stereo 16-bit WAV of about ``size`` bytes (up to 4 GiB), written in seconds: one
    minute of shaped noise (a slow envelope, a digital silence) repeated at a different
    gain each time, with one long silence and one clipped second of their own. For the
    fan-out's test and benchmark, which need gigabytes of audio that is not one loop."""
    rng = np.random.default_rng(11)
    minute = 60 * samplerate
    envelope = 0.05 + 0.25 * np.sin(np.arange(minute) / (7.0 * samplerate)) ** 2
    pattern = rng.standard_normal((minute, 2)) * envelope[:, None]
    pattern[10 * samplerate : 12 * samplerate] = 0.0
    base = np.clip(pattern * 32767 * 0.5, -32768, 32767).astype(np.int16)
    repeats = -(-size // base.nbytes)
    with sf.SoundFile(path, "w", samplerate, 2, "PCM_16", format="WAV") as out:
        for index in range(repeats):
            block = (base * (0.3 + 0.7 * ((index * 7) % 11) / 10)).astype(np.int16)
            if index == repeats // 3:
                block[: 5 * samplerate] = 0  # a silence longer than the pattern's
            if index == repeats // 2:
                block[samplerate : 2 * samplerate] = np.int16(32767)  # clipped
            out.write(block)
    return path
