"""``python -m audiolift_devstack.demo``: the README's main command.

Starts the local stack, writes a music-like sample recording, uploads it with the
``audiolift`` CLI (progress bars on a terminal), waits for the analysis, prints it as a
table, and stops everything — on success, failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from audiolift import cli

from .samples import write_sample_recording
from .stack import Stack, StackConfig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiolift_devstack.demo")
    parser.add_argument("--state-dir", type=Path, default=Path(".state"))
    parser.add_argument("--s3", choices=("seaweedfs", "moto"), default="seaweedfs")
    parser.add_argument("--seconds", type=float, default=180.0, help="the sample's length")
    parser.add_argument("--json", action="store_true", help="print the result document")
    args = parser.parse_args(argv)

    args.state_dir.mkdir(parents=True, exist_ok=True)
    sample = write_sample_recording(args.state_dir / "sample-recording.wav", args.seconds)
    size_mib = sample.stat().st_size / 2**20
    print(f"sample recording: {sample} ({args.seconds:.0f} s, {size_mib:.1f} MiB)", flush=True)

    started = time.monotonic()
    print(f"starting the local stack (S3: {args.s3}) ...", flush=True)
    # 8 MiB parts: the 30 MiB sample goes up as four parallel parts, as a big file would.
    config = StackConfig(state_dir=args.state_dir, s3_backend=args.s3, part_size_bytes=8 * 2**20)
    with Stack(config) as stack:
        info = stack.info
        assert info is not None
        print(f"stack up in {info.startup_seconds:.1f} s: API {info.api_url}", flush=True)
        command = ["--stack-file", str(stack.stack_file), "upload", str(sample), "--wait"]
        if args.json:
            command.append("--json")
        code = cli.main(command)
    print(f"done in {time.monotonic() - started:.1f} s; the stack is stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
