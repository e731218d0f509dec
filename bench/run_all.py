"""Run every benchmark in turn (``make bench``). Each prints its own figures and its
ratios against a peer measured in the same run; this only sequences them, one at a
time (two cores: benchmarks must not race each other).

    python bench/run_all.py            # the full sizes the goals are stated for
    python bench/run_all.py --quick    # small sizes, to check the benchmarks still run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    py = sys.executable
    if args.quick:
        runs = [
            [py, str(HERE / "bench_api.py"), "--runs", "3", "--requests", "50"],
            [py, str(HERE / "bench_analysis.py"), "64", "--repeat", "1"],
            [py, str(HERE / "bench_formats.py"), "--seconds", "30"],
            [py, str(HERE / "bench_continuation.py"), "--seconds", "60", "--pieces", "4"],
            [py, str(HERE / "bench_fanout.py"), "--size-gib", "0.25", "--range-mib", "64"],
            [py, str(HERE / "bench_reader.py"), "--size", "128MiB", "--rss-sizes", ""],
            [py, str(HERE / "bench_upload.py"), "--size-mib", "128", "--rounds", "1"],
            [py, str(HERE / "bench_browser.py"), "--size-mib", "64", "--rounds", "1"],
        ]
    else:
        runs = [
            [py, str(HERE / "bench_api.py")],
            [
                py,
                str(
                    HERE / "bench_analysis.py",
                ),
                "1024",
                "--both",
            ],
            [py, str(HERE / "bench_formats.py")],
            [py, str(HERE / "bench_continuation.py")],
            [py, str(HERE / "bench_fanout.py")],
            [py, str(HERE / "bench_reader.py")],
            [py, str(HERE / "bench_upload.py")],
            [py, str(HERE / "bench_browser.py")],
        ]
    if shutil.which("ffmpeg") is None:
        print("note: ffmpeg is not installed (apt-get install ffmpeg); bench_analysis needs it")
    # The functions run inside the benchmarks: Powertools' switch keeps their EMF metric
    # lines (one JSON blob per invocation) out of the figures.
    environment = {**os.environ, "POWERTOOLS_METRICS_DISABLED": "true"}
    failures = 0
    for command in runs:
        print(f"\n=== {' '.join(Path(c).name if c.endswith('.py') else c for c in command[1:])}")
        started = time.monotonic()
        code = subprocess.call(command, env=environment)
        print(f"=== exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
