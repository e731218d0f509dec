"""Fan-out: the analysis of one multi-GiB WAV by one processor worker (straight through,
the peer) and by two at once (split into parts, then merged), in the same run, two ways:

    .venv/bin/python bench/bench_fanout.py [--size-gib 2.1] [--workers 2]
        [--range-mib 512] [--mode processes|stack|both] [--json]

``processes`` (the goal's measure): the processor's own code in real processes, each
pinned to one CPU (a 1,769 MB Lambda function's one vCPU), reading the file from the
local disk (page cache). The peer is one process doing what one invocation does: the
straight-through analysis and the SHA-256 of the whole file. The fan-out is a pool of
``--workers`` processes taking the parts as the queue hands them out (the hash part
first, then the ranges), then the merge in this process. On AWS the S3 server's work is
not on the function's CPUs; here it would be, so this mode leaves it out.

``stack`` (end to end): each run is a fresh local stack (SeaweedFS as S3, dynalite, the
processing queue on moto) whose processor workers are separate processes, each pinned to
one CPU: the peer has one such worker and the fan-out off; the other run has
``--workers`` of them and ``FANOUT_MIN_BYTES`` below the file's size, so the file is
split into ranges of about ``--range-mib`` plus the whole file's hash. The same file is
uploaded to each stack with the SDK (not timed); the wall time runs from the upload's
completion (S3's event starts the analysis) to the job's completion as the API reports
it (polled every 20 ms). The merge's cost: in ``processes``, joining the parts' states
into the document; on the stack, the merge step end to end, from the last part counted
(as the API shows it) to the job's completion: the merge message, the claim, reading the
parts' states, the merge, the result written. On this 2-core machine the S3 server
(SeaweedFS) runs on the same two cores as the workers, and the fan-out reads the file
twice (the ranges, and the hash part): its CPU for the second read competes with the
workers, while the single worker has the other core for it. The CPU seconds of each are
printed.

Goal: 2 workers <= 0.65x one worker's wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT / path)
    for path in (
        "layers/core",
        "functions/api",
        "functions/processor",
        "functions/sweeper",
        "devstack",
        "clients/python",
    )
]
# The functions run inside this process's stack and its workers: no EMF metric lines.
os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"

import psutil  # noqa: E402
from audiolift import Client  # noqa: E402
from audiolift_devstack.samples import write_long_recording  # noqa: E402
from audiolift_devstack.stack import Stack, StackConfig  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20
GOAL = 0.65


# --- processes: the processor's code in pinned processes, on a local file -------------


def _pin(counter: Any) -> None:
    """Pool initializer: worker n runs on CPU n (round robin)."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[index % len(cpus)]})


def _warm(_: int) -> None:
    """Import the processor's code in a pool worker (a warm sandbox), and hold it a
    moment so that every worker of the pool gets one."""
    import audiolift_processor.decode  # noqa: F401

    time.sleep(0.5)


def _whole(path: str) -> tuple[dict[str, Any], str]:
    """What one invocation does: the straight-through analysis, and the file's SHA-256."""
    from audiolift_processor.decode import analyze_stream

    size = os.path.getsize(path)
    with open(path, "rb") as file:
        document = analyze_stream(file, size=size)
    return document, _sha256(path)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(8 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _range(path: str, start: int, end: int) -> dict[str, Any]:
    from audiolift_processor.decode import analyze_range

    with open(path, "rb") as file:
        return analyze_range(file, start=start, end=end, size=os.path.getsize(path))


def run_processes(recording: Path, *, workers: int, range_bytes: int) -> dict[str, Any]:
    """Both runs, in pinned processes; the figures of each."""
    import multiprocessing

    from audiolift_processor.analysis import StreamingAnalyzer, part_alignment
    from audiolift_processor.decode import probe_stream
    from audiolift_processor.fanout_plan import plan_ranges

    path, size = str(recording), recording.stat().st_size
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, initializer=_pin, initargs=(context.Value("i", 0),)) as pool:
        pool.apply(_warm, (0,))
        started = time.monotonic()
        whole, _ = pool.apply(_whole, (path,))
        one = time.monotonic() - started
    with open(path, "rb") as file:
        stream = probe_stream(file, size=size)
    assert stream.expected is not None
    ranges = plan_ranges(
        stream.expected, size, part_alignment(stream.samplerate),
        range_bytes=range_bytes, max_ranges=64,
    )  # fmt: skip
    with context.Pool(workers, initializer=_pin, initargs=(context.Value("i", 0),)) as pool:
        pool.map(_warm, range(workers), chunksize=1)
        started = time.monotonic()
        hashed = pool.apply_async(_sha256, (path,))  # the hash part first, as the plan sends
        parts = pool.starmap(_range, [(path, start, end) for start, end in ranges], chunksize=1)
        hashed.get()
        merging = time.monotonic()
        document = StreamingAnalyzer.merge([part["analysis"] for part in parts]).finish()
        merged = time.monotonic()
    return {
        "one_seconds": one,
        "many_seconds": merged - started,
        "merge_seconds": merged - merging,
        "parts": len(ranges) + 1,
        "same": _same(whole["loudness"], document["loudness"]),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(
        a[key] == b[key] or abs((a[key] or 0.0) - (b[key] or 0.0)) < 1e-9
        for key in ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp", "blocks")
    )


# --- stack: the local stack, end to end -----------------------------------------------


def run(recording: Path, state_dir: Path, *, workers: int, range_bytes: int) -> dict[str, Any]:
    """One stack, one upload, one analysis: its figures."""
    size = recording.stat().st_size
    fan_out = workers > 1
    config = StackConfig(
        state_dir=state_dir,
        workers=workers,
        worker_cpus=1,
        extra_environment={
            "FANOUT_MIN_BYTES": str(range_bytes if fan_out else 0),
            "FANOUT_RANGE_BYTES": str(range_bytes),
            "FANOUT_MAX_RANGES": "64",
            "MAX_UPLOAD_BYTES": str(max(size, 5 * GiB)),
        },
        schedules=[],
    )
    with Stack(config) as stack:
        info = stack.info
        assert info is not None
        with Client(info.api_url, info.api_key) as client:
            uploaded = time.monotonic()
            job = client.upload(recording, concurrency=4)
            started = time.monotonic()
            cpu_before = cpu_seconds()
            parts_done_at: float | None = None
            while job.status not in ("completed", "failed", "cancelled"):
                time.sleep(0.02)
                job = client.get_job(job.job_id)
                raw = job.raw
                every_part = raw.get("parts_total") and raw.get("parts_done") == raw["parts_total"]
                if job.status == "processing" and every_part and parts_done_at is None:
                    parts_done_at = time.monotonic()
            finished = time.monotonic()
            cpu = {name: spent - cpu_before.get(name, 0.0) for name, spent in cpu_seconds().items()}
            if job.status != "completed":
                raise SystemExit(f"the analysis ended {job.status}: {job.error}")
            document = client.result(job.job_id)
    return {
        "workers": workers,
        "upload_seconds": started - uploaded,
        "wall_seconds": finished - started,
        "invocations": job.raw.get("invocations"),
        "parts": job.raw.get("parts_total"),
        # the merge step end to end: its message, the claim, reading the parts' states,
        # the merge, the result written (from the last part counted, as polled)
        "merge_step_seconds": (finished - parts_done_at) if parts_done_at else None,
        "cpu_seconds": cpu,
        "loudness": document["loudness"],
        "channels": document["channels"],
    }


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the processor's worker processes, the S3 server
    (SeaweedFS) and the rest of the stack (this process: moto, the API; dynalite)."""
    me = psutil.Process()
    spent = {"workers": 0.0, "s3": 0.0, "rest": _cpu(me)}
    for child in me.children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            kind = "workers" if "audiolift_devstack.workers" in command else "rest"
            spent["s3" if "weed" in command else kind] += _cpu(child)
        except psutil.Error:
            continue  # ended meanwhile
    return spent


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gib", type=float, default=2.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--range-mib", type=int, default=512)
    parser.add_argument("--mode", choices=("processes", "stack", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # A stop (SIGTERM) unwinds like Ctrl-C: the stacks stop and the scratch files go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as scratch:
        root = Path(scratch)
        made = time.monotonic()
        recording = write_long_recording(root / "long.wav", int(args.size_gib * GiB))
        size = recording.stat().st_size
        figures["size"] = size
        print(
            f"fan-out: {size / GiB:.2f} GiB stereo 16-bit WAV (written in "
            f"{time.monotonic() - made:.1f} s), 1 vs {args.workers} workers, each pinned to "
            f"one of the {os.cpu_count()} CPUs, ranges of ~{args.range_mib} MiB",
            flush=True,
        )
        same = True
        if args.mode in ("processes", "both"):
            result = run_processes(
                recording, workers=args.workers, range_bytes=args.range_mib * MiB
            )
            figures["processes"] = result
            same = same and result["same"]
            merge = f"merge {result['merge_seconds']:.3f} s (joining the states)"
            _print_ratio(
                "processes (local file)", result["one_seconds"], result["many_seconds"],
                f"{result['parts']} parts, {merge}", size, args.workers,
            )  # fmt: skip
        if args.mode in ("stack", "both"):
            runs = [
                run(recording, root / f"stack-{n}", workers=n, range_bytes=args.range_mib * MiB)
                for n in (1, args.workers)
            ]
            figures["stack"] = runs
            one, many = runs
            same = same and _same(one["loudness"], many["loudness"])
            for result in runs:
                _print_run(result, size)
            _print_ratio(
                "local stack (SeaweedFS)", one["wall_seconds"], many["wall_seconds"], "", size,
                args.workers,
            )  # fmt: skip
    print(f"same loudness, LRA and true peak (1e-9): {same}")
    if args.json:
        print(json.dumps(figures, default=str))
    return 0 if same else 1


def _print_ratio(what: str, one: float, many: float, detail: str, size: int, workers: int) -> None:
    ratio = many / one
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(
        f"{what}: 1 worker {one:.1f} s ({size / MiB / one:.0f} MiB/s), {workers} workers "
        f"{many:.1f} s ({size / MiB / many:.0f} MiB/s){'; ' + detail if detail else ''}\n"
        f"  ratio {many / one:.2f}x (goal <= {GOAL}x: {verdict})",
        flush=True,
    )


def _print_run(result: dict[str, Any], size: int) -> None:
    wall = result["wall_seconds"]
    line = (
        f"  {result['workers']} worker(s): {wall:6.1f} s wall ({size / MiB / wall:5.0f} MiB/s), "
        f"{result['invocations']} invocations, upload {result['upload_seconds']:.1f} s (not timed)"
    )
    if result["parts"]:
        step = result["merge_step_seconds"]
        line += f"; {result['parts']} parts"
        line += f", merge step {step:.2f} s (last part counted -> completed)" if step else ""
    cpu = result["cpu_seconds"]
    line += (
        f"\n      CPU: workers {cpu['workers']:.1f} s, S3 server {cpu['s3']:.1f} s, "
        f"the rest {cpu['rest']:.1f} s"
    )
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
