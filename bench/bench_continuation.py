"""What continuing an analysis across invocations costs, per format: the same file
analysed straight through (the peer, in the same run) and in ``--pieces`` pieces, each
piece restoring the previous one's checkpoint (state through bytes, decoder re-opened
and sought, fingerprint checked) as a new invocation would.

    .venv/bin/python bench/bench_continuation.py [--seconds 300] [--pieces 10]
        [--formats wav,flac,mp3,vorbis] [--json]

Both runs read a local file (S3's part is the reader's, measured by bench_reader.py) and
use the analysis's default threads. Prints, per format, the CPU seconds of each run, the
ratio, the extra per resume, and the checkpoint's size; and checks the two documents are
equal (to 1e-9; counts exactly).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions" / "processor"), str(ROOT / "layers" / "core")]

from audiolift_processor.analysis.state import dumps, loads  # noqa: E402
from audiolift_processor.decode import BlockDone, Resume, analyze_stream  # noqa: E402

RATE = 48_000
FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "vorbis": ("OGG", "VORBIS"),
}


class Stop(Exception):
    def __init__(self, resume: Resume):
        super().__init__("piece done")
        self.resume = resume


def recording(container: str, seconds: float) -> bytes:
    rng = np.random.default_rng(1)
    frames = int(seconds * RATE)
    envelope = 0.03 + 0.25 * np.sin(np.arange(frames) / (5.0 * RATE)) ** 2
    signal = np.clip(rng.standard_normal((frames, 2)) * envelope[:, None] * 0.5, -1, 1)
    out = io.BytesIO()
    kind, subtype = FORMATS[container]
    # in one-second pieces: libsndfile's Vorbis encoder crashes on one very large write
    with sf.SoundFile(out, "w", RATE, 2, format=kind, subtype=subtype) as sound:
        for start in range(0, frames, RATE):
            sound.write(signal[start : start + RATE].astype(np.float32))
    return out.getvalue()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_pieces(body: bytes, pieces: int, total_frames: int) -> tuple[dict[str, Any], int, int]:
    """The document, the resumes made, and the largest checkpoint state in bytes."""
    resume: Resume | None = None
    resumes, largest = 0, 0
    step = total_frames / pieces
    while True:
        goal = (resume.frames if resume else 0) + step

        def on_block(block: BlockDone, goal: float = goal) -> None:
            if block.frames >= goal and not block.last:
                raise Stop(block.snapshot())

        try:
            return (
                analyze_stream(io.BytesIO(body), size=len(body), resume=resume, on_block=on_block),
                resumes,
                largest,
            )
        except Stop as stop:
            saved = dumps(stop.resume.analysis)  # as the checkpoint stores it
            largest = max(largest, len(saved))
            resume = Resume(stop.resume.frames, loads(saved), stop.resume.fingerprint)
            resumes += 1


def same(a: Any, b: Any) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(b, float) and isinstance(a, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return bool(a == b)


def measure(container: str, seconds: float, pieces: int) -> dict[str, Any]:
    body = recording(container, seconds)
    start = cpu_seconds()
    straight = analyze_stream(io.BytesIO(body), size=len(body))
    straight_cpu = cpu_seconds() - start
    start = cpu_seconds()
    pieced, resumes, largest = in_pieces(body, pieces, int(seconds * RATE))
    pieced_cpu = cpu_seconds() - start
    return {
        "format": container,
        "file_mib": round(len(body) / 2**20, 1),
        "straight_cpu_s": round(straight_cpu, 3),
        "pieces_cpu_s": round(pieced_cpu, 3),
        "ratio": round(pieced_cpu / straight_cpu, 3),
        "resumes": resumes,
        "extra_per_resume_s": round((pieced_cpu - straight_cpu) / max(1, resumes), 4),
        "state_kib": round(largest / 1024, 1),
        "same_document": same(pieced, straight),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--pieces", type=int, default=10)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(name, args.seconds, args.pieces) for name in args.formats.split(",")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.seconds:.0f} s stereo 48 kHz, straight through vs {args.pieces} pieces")
    for row in rows:
        print(
            f"{row['format']:>7}: {row['file_mib']:7.1f} MiB  "
            f"straight {row['straight_cpu_s']:6.2f} s  "
            f"in pieces {row['pieces_cpu_s']:6.2f} s  ({row['ratio']:.3f}x, "
            f"{row['extra_per_resume_s'] * 1000:+.1f} ms per resume over {row['resumes']})"
            f"  state {row['state_kib']} KiB  same document: {row['same_document']}"
        )


if __name__ == "__main__":
    main()
