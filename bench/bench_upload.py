"""Benchmark: upload throughput through presigned part URLs with the audiolift SDK vs
boto3's ``upload_file`` (s3transfer, default TransferConfig), to the same local S3 server
with the same file, and each one's peak RSS.

    .venv/bin/python bench/bench_upload.py                 # 1 GiB file, 5 rounds each
    .venv/bin/python bench/bench_upload.py --size-mib 256 --rounds 1

The local stack runs as in ``make dev`` but without the processor
(``python -m audiolift_devstack up --no-poller``): SeaweedFS as S3 (which checks the
presigned signatures and the checksums), dynalite for the jobs table, the real API under
uvicorn. So the SDK side is the whole path a user takes: POST /v1/uploads, parallel PUTs
to presigned URLs (16 MiB parts, the API's default plan; concurrency 8, the SDK's default),
POST /complete, with the SDK's integrity checks: each part's CRC32C signed into its URL
and checked by S3, the whole file's CRC32C (combined from the parts') checked by S3 at
completion, and the file's SHA-256 declared for the processor. boto3 uploads the same file
to the same bucket with its dev credentials (8 MiB parts, 10 threads, a CRC32 per part:
s3transfer's defaults).

Each upload runs in a fresh subprocess (imports excluded from the timing) that reports its
wall time, CPU time and peak RSS (VmHWM, which includes the interpreter and imports); the
CPU time each SeaweedFS process spent meanwhile is printed beside it (on a small machine
the server's share of the cores sets the pace of both clients).
A first, uncounted round of each warms the server up. Each round runs both, the SDK first
in odd rounds and boto3 first in even ones, so drift in the machine's load hits both;
the figures are the median of the rounds, the ratio is SDK MiB/s over boto3 MiB/s (goal
>= 1.0); each round's own ratio is printed too. The API caches its keys for as long as
deployed (template.yaml's API_KEYS_CACHE_SECONDS; the local stack's default is 2 s).
On a small machine SeaweedFS is the bottleneck (the clients' own CPU time is printed
too), so single rounds swing by +-15 %: hence 5 rounds by default. Objects are
deleted after each round. Results also go to bench/out/bench_upload.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = [
    ROOT / "clients" / "python",
    ROOT / "layers" / "core",
    ROOT / "functions" / "api",
    ROOT / "functions" / "processor",
    ROOT / "devstack",
]
MiB = 1024 * 1024
STACK_START_TIMEOUT = 120.0


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in PYTHONPATH)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_stack_process(state_dir: Path, *args: str, timeout: float) -> Any:
    """The devstack's launcher (``python -m audiolift_devstack up`` in a child process),
    with the API's keys cached as deployed."""
    sys.path[:0] = [str(p) for p in PYTHONPATH if str(p) not in sys.path]
    from audiolift_devstack.launcher import start_stack_process as launch
    from audiolift_devstack.stack import keys_cached_as_deployed

    return launch(state_dir, *args, *keys_cached_as_deployed(), timeout=timeout)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds(state_dir: Path) -> dict[str, float]:
    """CPU seconds so far of each SeaweedFS process of this stack (master, volume, filer,
    s3), by the component named in its command line."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ours = argv[0].endswith(b"weed") and str(state_dir).encode() in b" ".join(argv)
        if not ours:
            continue
        component = next((a.decode() for a in argv[1:] if a and not a.startswith(b"-")), "?")
        fields = stat.rsplit(")", 1)[1].split()
        found[component] = found.get(component, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return found


def peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM, the high-water mark of its own memory map.
    (``ru_maxrss`` would not do: Linux carries it over exec from the forking parent, so
    every child would start at the parent's size.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- children: one upload each ---------------------------------------------------------


def child_sdk(stack: dict[str, Any], path: Path, concurrency: int) -> dict[str, Any]:
    from audiolift import Client

    with Client(stack["api_url"], stack["api_key"]) as client:
        rss_before = peak_rss_mib()
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        job = client.upload(path, concurrency=concurrency)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "key": f"uploads/{job.job_id}",
        "job_id": job.job_id,
        "status": job.status,
        "part_size": job.part_size,
        "part_count": job.part_count,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "cpu_seconds": cpu_seconds() - cpu_before,
    }


def child_boto3(stack: dict[str, Any], path: Path, key: str) -> dict[str, Any]:
    from audiolift_devstack.clients import s3_client_for
    from boto3.s3.transfer import TransferConfig

    s3 = s3_client_for(stack)
    config = TransferConfig()  # the defaults: 8 MiB parts, 10 threads
    rss_before = peak_rss_mib()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    s3.upload_file(str(path), stack["bucket"], key, Config=config)
    seconds = time.perf_counter() - started
    head = s3.head_object(Bucket=stack["bucket"], Key=key)
    return {
        "seconds": seconds,
        "key": key,
        "size": head["ContentLength"],
        "part_size": config.multipart_chunksize,
        "threads": config.max_request_concurrency,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "cpu_seconds": cpu_seconds() - cpu_before,
    }


def run_child(kind: str, stack_file: Path, path: Path, extra: list[str]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--stack-file", str(stack_file),
               "--file", str(path), *extra]  # fmt: skip
    done = subprocess.run(
        command, env=environment(), capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} upload failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the parent: file, stack, rounds ---------------------------------------------------


def make_file(path: Path, size: int) -> None:
    """A WAV header (the SDK refuses a file that is not audio before uploading it), then
    incompressible bytes (nothing on the way can shrink them)."""
    chunk = 16 * MiB
    header = (
        b"RIFF" + (size - 8).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + bytes.fromhex("01000200" "80bb0000" "00ee0200" "04001000")  # PCM 48 kHz 16-bit 2 ch
        + b"data" + (size - 44).to_bytes(4, "little")
    )  # fmt: skip
    with open(path, "wb") as out:
        out.write(header)
        left = size - len(header)
        while left:
            count = min(chunk, left)
            out.write(os.urandom(count))
            left -= count


def summarize(runs: list[dict[str, Any]], size: int) -> dict[str, Any]:
    rates = [size / MiB / run["seconds"] for run in runs]
    return {
        "mib_per_s_median": statistics.median(rates),
        "mib_per_s_each": [round(r, 1) for r in rates],
        "seconds_each": [round(run["seconds"], 2) for run in runs],
        "cpu_seconds_each": [round(run["cpu_seconds"], 2) for run in runs],
        "peak_rss_mib_max": max(run["peak_rss_mib"] for run in runs),
        "peak_rss_mib_each": [round(run["peak_rss_mib"], 1) for run in runs],
        "rss_before_upload_mib": round(runs[0]["rss_before_mib"], 1),
    }


def parent(args: argparse.Namespace) -> int:
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="audiolift-bench-upload-") as temporary:
        work = Path(temporary)
        path = work / "bench.wav"  # a WAV header, then random bytes
        print(f"writing a {args.size_mib} MiB file ...", flush=True)
        make_file(path, size)
        state_dir = work / "stack"
        state_dir.mkdir()
        print("starting the local stack (SeaweedFS, moto, API; no processor) ...", flush=True)
        stack_args = ["--no-poller"]
        if args.part_size_mib:
            stack_args += ["--part-size-bytes", str(args.part_size_mib * MiB)]
        handle = start_stack_process(state_dir, *stack_args, timeout=STACK_START_TIMEOUT)
        stack, stack_file = handle.info.as_dict(), handle.stack_file
        try:
            s3 = handle.clients.s3
            sdk_runs: list[dict[str, Any]] = []
            boto_runs: list[dict[str, Any]] = []
            # Round 0 warms the server up (its first upload allocates its volumes) and
            # is not counted: whichever client went first would pay for it.
            for round_number in range(0, args.rounds + 1):
                order = (
                    ("boto3", "sdk") if round_number and round_number % 2 == 0 else ("sdk", "boto3")
                )
                for kind in order:
                    extra = (
                        ["--concurrency", str(args.concurrency)]
                        if kind == "sdk"
                        else ["--key", f"bench/boto3-{round_number}"]
                    )
                    server_before = server_cpu_seconds(state_dir)
                    result = run_child(kind, stack_file, path, extra)
                    server_after = server_cpu_seconds(state_dir)
                    result["server_cpu_seconds"] = {
                        name: round(server_after[name] - server_before.get(name, 0.0), 2)
                        for name in server_after
                    }
                    head = s3.head_object(Bucket=stack["bucket"], Key=result["key"])
                    assert head["ContentLength"] == size, head
                    s3.delete_object(Bucket=stack["bucket"], Key=result["key"])
                    if round_number == 0:
                        continue
                    (sdk_runs if kind == "sdk" else boto_runs).append(result)
                    print(
                        f"round {round_number} {kind:5}: {size / MiB / result['seconds']:7.1f} "
                        f"MiB/s  ({result['seconds']:.2f} s)  peak RSS "
                        f"{result['peak_rss_mib']:.0f} MiB, CPU {result['cpu_seconds']:.1f} s, "
                        f"S3 server CPU {sum(result['server_cpu_seconds'].values()):.1f} s "
                        f"{result['server_cpu_seconds']}",
                        flush=True,
                    )
        finally:
            handle.stop()
    sdk = summarize(sdk_runs, size)
    boto = summarize(boto_runs, size)
    ratio = sdk["mib_per_s_median"] / boto["mib_per_s_median"]
    round_ratios = [b["seconds"] / a["seconds"] for a, b in zip(sdk_runs, boto_runs, strict=True)]
    report = {
        "file_mib": args.size_mib,
        "rounds": args.rounds,
        "server": "SeaweedFS (local stack, 127.0.0.1)",
        "sdk": {**sdk, "concurrency": args.concurrency, "part_size": sdk_runs[0]["part_size"],
                "part_count": sdk_runs[0]["part_count"]},
        "boto3_upload_file": {**boto, "part_size": boto_runs[0]["part_size"],
                              "threads": boto_runs[0]["threads"]},
        "ratio_sdk_over_boto3": round(ratio, 3),
        "ratio_each_round": [round(r, 3) for r in round_ratios],
        "goal": ">= 1.0",
    }  # fmt: skip
    print()
    print(f"file: {args.size_mib} MiB, {args.rounds} round(s) each, medians")
    print(
        f"  SDK (presigned, c={args.concurrency}, {sdk_runs[0]['part_size'] // MiB} MiB parts): "
        f"{sdk['mib_per_s_median']:.1f} MiB/s, peak RSS {sdk['peak_rss_mib_max']:.0f} MiB"
    )
    print(
        f"  boto3 upload_file (defaults): {boto['mib_per_s_median']:.1f} MiB/s, "
        f"peak RSS {boto['peak_rss_mib_max']:.0f} MiB"
    )
    print(f"  ratio SDK / boto3: {ratio:.2f}x  (goal >= 1.0)")
    print(f"  each round's ratio: {', '.join(f'{r:.2f}' for r in round_ratios)}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_upload.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ratio >= 1.0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--part-size-mib", type=int, default=None, help="the API's part size (default: its own)"
    )
    parser.add_argument("--child", choices=("sdk", "boto3"), help=argparse.SUPPRESS)
    parser.add_argument("--stack-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stack = json.loads(args.stack_file.read_text())
        if args.child == "sdk":
            result = child_sdk(stack, args.file, args.concurrency)
        else:
            result = child_boto3(stack, args.file, args.key)
        print(json.dumps(result))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
