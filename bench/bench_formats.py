"""Analysis speed per format on ONE vCPU, vs ffmpeg's ebur128 filter on the same file,
and what it means for the service's limits and costs.

    .venv/bin/python bench/bench_formats.py [--seconds 300] [--formats wav,flac,mp3,vorbis]
        [--timeout 900] [--memory-mb 1769] [--json]

Writes the same music-like stereo 48 kHz recording (noise through a level envelope) in
each format with libsndfile (WAV PCM-16, FLAC 16-bit, MP3, Ogg Vorbis), then analyses each
file with the processor's own ``analyze_stream`` in a child process pinned to one CPU
(Lambda at 1769 MB has one vCPU), and runs ``ffmpeg -threads 1 -af ebur128=peak=true`` on
the same CPU as the peer. Speeds are file bytes per CPU second of the child: on a
shared machine CPU time varies less than wall time, and on one vCPU the two are equal.

From those speeds it prints, per format, the largest file the processor can analyse
within its timeout (less the margin it keeps to record a failure), and the Lambda cost
per GiB analysed at the template's memory size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SAMPLERATE = 48_000
MiB = 1024 * 1024
GiB = 1024 * MiB

# us-east-1, first tier, on-demand; unchanged since arm64 support (September 2021).
PRICE_PER_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_DATE = "2026-11-30"

# libsndfile writes all four: (format, subtype, extension).
FORMATS = {
    "wav": ("WAV", "PCM_16", "wav"),
    "flac": ("FLAC", "PCM_16", "flac"),
    "mp3": ("MP3", "MPEG_LAYER_III", "mp3"),
    "vorbis": ("OGG", "VORBIS", "ogg"),
}

_CHILD = """
import json, os, resource, sys, time
os.sched_setaffinity(0, {{{cpu}}})
sys.path[:0] = {paths!r}
from audiolift_processor.decode import analyze_stream
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, cpu_started = time.perf_counter(), cpu()
with open({path!r}, "rb") as handle:
    document = analyze_stream(handle, size={size!r})
print(json.dumps({{"seconds": time.perf_counter() - started, "cpu": cpu() - cpu_started,
    "lufs": document["loudness"]["integrated_lufs"]}}))
"""


def write_recording(path: Path, seconds: int, fmt: str, subtype: str) -> None:
    """The same signal every time (fixed seed), written in 10 s pieces."""
    rng = np.random.default_rng(20261130)
    piece = 10 * SAMPLERATE
    total = seconds * SAMPLERATE
    with sf.SoundFile(
        path, "w", samplerate=SAMPLERATE, channels=2, format=fmt, subtype=subtype
    ) as out:
        for start in range(0, total, piece):
            n = min(piece, total - start)
            moments = (start + np.arange(n)) / SAMPLERATE
            level = 0.003 + 0.1 * (0.5 + 0.5 * np.sin(2 * np.pi * moments / 47.0)) ** 2
            block = rng.standard_normal((n, 2)) * level[:, None]
            out.write(np.clip(block, -1.0, 32767 / 32768).astype(np.float32))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_cpu() -> int:
    return min(os.sched_getaffinity(0))


def run_ours(path: Path) -> dict[str, float]:
    paths = [str(ROOT / "functions" / "processor"), str(ROOT / "layers" / "core")]
    code = _CHILD.format(cpu=one_cpu(), paths=paths, path=str(path), size=path.stat().st_size)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def run_ffmpeg(path: Path) -> float:
    """CPU seconds of ffmpeg's EBU R128 filter (with true peak), on one CPU."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is not installed (apt-get install -y ffmpeg)")
    command = [ffmpeg, "-nostats", "-hide_banner", "-threads", "1", "-i", str(path)]
    command += ["-af", "ebur128=peak=true", "-f", "null", "-"]
    cpu_started = children_cpu()
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {one_cpu()}),
    )
    return children_cpu() - cpu_started


def measure(name: str, directory: Path, seconds: int) -> dict[str, Any]:
    fmt, subtype, extension = FORMATS[name]
    path = directory / f"recording.{extension}"
    write_recording(path, seconds, fmt, subtype)
    size = path.stat().st_size
    ours = run_ours(path)
    peer_cpu = run_ffmpeg(path)
    path.unlink()
    return {
        "format": name,
        "file_mib": size / MiB,
        "audio_seconds": seconds,
        "bytes_per_audio_second": size / seconds,
        "our_cpu_seconds": ours["cpu"],
        "ffmpeg_cpu_seconds": peer_cpu,
        "mib_per_cpu_second": size / MiB / ours["cpu"],
        "ratio_vs_ffmpeg": peer_cpu / ours["cpu"],
    }


def limits(row: dict[str, Any], *, budget: float, max_upload: int, memory_mb: int) -> None:
    """Adds the largest analysable file and the cost per GiB to a measured row."""
    speed = row["mib_per_cpu_second"] * MiB  # bytes per second on one vCPU
    within_timeout = int(speed * budget)
    row["bytes_within_timeout"] = within_timeout
    row["hours_within_timeout"] = within_timeout / row["bytes_per_audio_second"] / 3600
    # What the service takes of that format: the upload limit may be the smaller one.
    row["max_analysable_bytes"] = min(within_timeout, max_upload)
    gib_seconds = GiB / speed
    for architecture, price in PRICE_PER_GB_SECOND.items():
        row[f"usd_per_gib_{architecture}"] = memory_mb / 1024 * gib_seconds * price


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=300, help="audio per test file")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--timeout", type=int, default=900, help="processor timeout (s)")
    parser.add_argument("--margin", type=float, default=20.0, help="kept to record a failure")
    parser.add_argument("--max-upload", type=int, default=5 * GiB)
    parser.add_argument("--memory-mb", type=int, default=1769)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="audiolift-formats-") as directory:
        for name in args.formats.split(","):
            row = measure(name, Path(directory), args.seconds)
            limits(
                row,
                budget=args.timeout - args.margin,
                max_upload=args.max_upload,
                memory_mb=args.memory_mb,
            )
            rows.append(row)
            print(
                f"{name:>6}: {row['file_mib']:7.1f} MiB, {row['mib_per_cpu_second']:7.1f} MiB/s "
                f"per vCPU ({row['audio_seconds'] / row['our_cpu_seconds']:6.0f}x real time), "
                f"ffmpeg ebur128 {row['ratio_vs_ffmpeg']:.2f}x slower than us | "
                f"largest in {args.timeout} s: {row['bytes_within_timeout'] / GiB:6.1f} GiB "
                f"({row['hours_within_timeout']:.0f} h of audio) | "
                f"${row['usd_per_gib_x86_64']:.5f}/GiB x86_64, "
                f"${row['usd_per_gib_arm64']:.5f}/GiB arm64 at the same speed",
                flush=True,
            )
    print(
        f"prices: ${PRICE_PER_GB_SECOND['x86_64']}/GB-s x86_64, "
        f"${PRICE_PER_GB_SECOND['arm64']}/GB-s arm64 (us-east-1, {PRICE_DATE}); "
        f"memory {args.memory_mb} MB"
    )
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
