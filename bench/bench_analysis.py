"""Full analysis throughput from a local file vs ``ffmpeg -af ebur128 -f null -``.

    .venv/bin/python bench/bench_analysis.py [SIZE_MIB] [--both | --no-true-peak]
        [--signal music|limited] [--channels N] [--repeat R]

Generates a 16-bit stereo (or N-channel) 48 kHz WAV of SIZE_MIB (default 1024) under
/tmp, times our analysis (in a subprocess, which also reports its peak RSS) and ffmpeg's
ebur128 filter on the same file, prints both throughputs and the ratio (goal >= 1.5x),
then deletes the file. CPU seconds are printed too: on a shared machine they vary less
than wall time (ffmpeg's filter runs on one core; we use a thread per channel).

Signals: "music" (noise through a level envelope: quiet and loud passages, the odd
near-full-scale peak) or "limited" (loud, clipped noise everywhere: the worst case for
the true-peak pruning and the clip counter).
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
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SAMPLERATE = 48_000

_CHILD = """
import json, resource, sys, time
sys.path[:0] = {paths!r}
from audiolift_processor.analysis import AnalysisOptions
from audiolift_processor.decode import analyze_stream
options = AnalysisOptions(true_peak={true_peak!r})
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, cpu_started = time.perf_counter(), cpu()
with open({path!r}, "rb") as handle:
    document = analyze_stream(handle, size={size!r}, options=options)
elapsed, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({{"seconds": elapsed, "cpu": cpu_seconds, "rss_kib": rss, "summary": {{
    "integrated_lufs": document["loudness"]["integrated_lufs"],
    "loudness_range_lu": document["loudness"]["loudness_range_lu"],
    "true_peak_dbtp": document["loudness"]["true_peak_dbtp"],
    "peak_dbfs": document["peak_dbfs"]}}}}, allow_nan=False))
"""


def generate(path: Path, size_bytes: int, kind: str, channels: int = 2) -> None:
    """Write the test WAV in 10 s pieces, so generating it needs little memory."""
    frames_total = size_bytes // (2 * channels)
    rng = np.random.default_rng(20240611)
    piece = 10 * SAMPLERATE
    written = 0
    with sf.SoundFile(
        path, "w", samplerate=SAMPLERATE, channels=channels, subtype="PCM_16", format="WAV"
    ) as out:
        while written < frames_total:
            n = min(piece, frames_total - written)
            noise = rng.standard_normal((n, channels))
            if kind == "limited":
                level = np.full(n, 0.3)
            else:
                seconds = (written + np.arange(n)) / SAMPLERATE
                # a slow swell between about -40 and -10 dBFS RMS, with a 4 s beat
                level = 0.003 + 0.1 * (0.5 + 0.5 * np.sin(2 * np.pi * seconds / 47.0)) ** 2
                level *= 1.0 + 0.5 * (seconds % 4.0 < 0.25)
            block = np.clip(noise * level[:, None], -1.0, 32767 / 32768)
            out.write((block * 32768).astype(np.int16))
            written += n


def run_ours(path: Path, true_peak: bool) -> dict[str, float]:
    paths = [str(ROOT / "functions" / "processor"), str(ROOT / "layers" / "core")]
    code = _CHILD.format(paths=paths, path=str(path), size=path.stat().st_size, true_peak=true_peak)
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ffmpeg(path: Path) -> tuple[float, float, str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is not installed (apt-get install -y ffmpeg)")
    started, cpu_started = time.perf_counter(), children_cpu()
    done = subprocess.run(
        [ffmpeg, "-nostats", "-hide_banner", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    elapsed, cpu = time.perf_counter() - started, children_cpu() - cpu_started
    summary = done.stderr[done.stderr.rfind("Summary:") :].split()
    return elapsed, cpu, " ".join(summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size_mib", nargs="?", type=int, default=1024)
    parser.add_argument("--no-true-peak", action="store_true")
    parser.add_argument("--signal", choices=("music", "limited"), default="music")
    parser.add_argument("--channels", type=int, default=2, help="channels of the test file")
    parser.add_argument("--both", action="store_true", help="time with and without true peak")
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each, interleaved; the fastest counts (other load on the machine "
        "only ever slows a run down)",
    )
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="audiolift-bench-", dir="/tmp"))
    path = directory / "bench.wav"
    try:
        generate(path, args.size_mib * 1024 * 1024, args.signal, args.channels)
        size = path.stat().st_size
        mb = size / 1e6
        print(
            f"file: {size / 2**20:.0f} MiB, 16-bit, {args.channels} channel(s), 48 kHz, "
            f"signal={args.signal}"
        )
        variants = [True, False] if args.both else [not args.no_true_peak]
        ffmpeg_times: list[float] = []
        ffmpeg_cpu: list[float] = []
        ours_runs: dict[bool, list[dict[str, float]]] = {v: [] for v in variants}
        ffmpeg_summary = ""
        for _ in range(max(1, args.repeat)):
            seconds, cpu, ffmpeg_summary = run_ffmpeg(path)
            ffmpeg_times.append(seconds)
            ffmpeg_cpu.append(cpu)
            for true_peak in variants:
                ours_runs[true_peak].append(run_ours(path, true_peak))
        ffmpeg_seconds = min(ffmpeg_times)
        print(
            f"ffmpeg ebur128: {ffmpeg_seconds:.2f} s = {mb / ffmpeg_seconds:.0f} MB/s "
            f"(runs: {', '.join(f'{t:.2f}' for t in ffmpeg_times)} s), "
            f"CPU {min(ffmpeg_cpu):.2f} s = {mb / min(ffmpeg_cpu):.0f} MB per CPU-second"
        )
        print(f"  ffmpeg says: {ffmpeg_summary}")
        for true_peak in variants:
            runs = ours_runs[true_peak]
            best = min(runs, key=lambda run: run["seconds"])
            seconds = best["seconds"]
            label = "with true peak" if true_peak else "without true peak"
            times = ", ".join(f"{run['seconds']:.2f}" for run in runs)
            print(
                f"audiolift ({label}): {seconds:.2f} s = {mb / seconds:.0f} MB/s, "
                f"ratio vs ffmpeg {ffmpeg_seconds / seconds:.2f}x, "
                f"peak RSS {max(run['rss_kib'] for run in runs) / 1024:.0f} MiB "
                f"(runs: {times} s)"
            )
            cpu = min(run["cpu"] for run in runs)
            print(
                f"  CPU {cpu:.2f} s = {mb / cpu:.0f} MB per CPU-second, "
                f"{min(ffmpeg_cpu) / cpu:.2f}x ffmpeg's efficiency"
            )
            print(f"  we say: {best['summary']}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    main()
