"""Benchmark: the browser page's upload throughput vs the SDK's, same file, same local
stack, same run.

    .venv/bin/python bench/bench_browser.py                     # 256 MiB, 3 rounds each
    .venv/bin/python bench/bench_browser.py --size-mib 64 --rounds 1

The local stack runs as in ``make dev`` but without the processor
(``python -m audiolift_devstack up --no-poller``): SeaweedFS as S3 (it checks the presigned
signatures and the bucket's CORS), moto's server for DynamoDB, the API under uvicorn, and
the page served by the stack itself. The page runs in headless Chromium (Debian's, driven
by Playwright); its own clock (from the pick to the completed upload, as it shows the
person) gives its time. The SDK uploads the same file from this process with its defaults.
Rounds alternate page, SDK, page, SDK, ... so drift in the machine's load hits both; the
figures are medians, the ratio is page MiB/s over SDK MiB/s (goal >= 0.8). Objects are
deleted after each round. Results also go to bench/out/bench_browser.json.

The file is a valid WAV header over random samples: the page and the SDK both look at a
file's first bytes before they upload it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import struct
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
CHROMIUM = os.environ.get("AUDIOLIFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
UPLOADED_TEXT = re.compile(r"Uploaded .* in ([0-9.]+) s")


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in PYTHONPATH)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def make_wav(path: Path, size: int) -> None:
    """A 48 kHz 16-bit stereo WAV of ``size`` bytes: a canonical header, random samples
    (incompressible: nothing on the way can shrink them)."""
    data_bytes = size - 44
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 48_000, 48_000 * 4, 4, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as out:
        out.write(header)
        left = data_bytes
        while left:
            count = min(16 * MiB, left)
            out.write(os.urandom(count))
            left -= count


def start_stack(state_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    stack_file = state_dir / "stack.json"
    with open(state_dir / "stack.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "audiolift_devstack", "up", "--state-dir", str(state_dir),
             "--no-poller"],
            cwd=ROOT, env=environment(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + STACK_START_TIMEOUT
    while True:
        if stack_file.exists():
            info: dict[str, Any] = json.loads(stack_file.read_text())
            if info.get("pid") == process.pid:
                return process, info
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = (state_dir / "stack.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the local stack did not start:\n{tail}")
        time.sleep(0.2)


def stop_stack(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def page_upload(browser: Any, stack: dict[str, Any], path: Path) -> dict[str, Any]:
    """One upload through the page in a fresh browser context; the page's own timing."""
    if not stack.get("web_url"):
        raise RuntimeError("the stack serves no page: build it (scripts/install_browser.sh)")
    context = browser.new_context()
    try:
        page = context.new_page()
        puts: list[int] = []
        page.on("request", lambda r: puts.append(1) if r.method == "PUT" else None)
        page.goto(stack["web_url"])
        page.wait_for_selector("body[data-ready=true]")
        started = time.perf_counter()
        page.set_input_files("#file-input", str(path))
        page.wait_for_selector('#upload[data-state="done"]', timeout=1_800_000)
        wall = time.perf_counter() - started
        text = page.inner_text("#upload-text")
        match = UPLOADED_TEXT.search(text)
        if match is None:
            raise RuntimeError(f"the page did not say how long it took: {text!r}")
        job_id = page.get_attribute("#upload", "data-job-id") or page.get_attribute(
            "#job", "data-job-id"
        )
        # The page's text rounds to 0.1 s; the wall clock from the pick is the fallback.
        seconds = float(match.group(1)) or wall
        return {"seconds": seconds, "wall_seconds": wall, "job_id": job_id, "puts": len(puts)}
    finally:
        context.close()


def sdk_upload(stack: dict[str, Any], path: Path) -> dict[str, Any]:
    from audiolift import Client

    with Client(stack["api_url"], stack["api_key"]) as client:
        started = time.perf_counter()
        job = client.upload(path)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "job_id": job.job_id, "part_count": job.part_count}


def summarize(runs: list[dict[str, Any]], size: int) -> dict[str, Any]:
    rates = [size / MiB / run["seconds"] for run in runs]
    return {
        "mib_per_s_median": round(statistics.median(rates), 1),
        "mib_per_s_each": [round(r, 1) for r in rates],
        "seconds_each": [round(run["seconds"], 2) for run in runs],
    }


def run_rounds(args: argparse.Namespace, path: Path, stack: dict[str, Any]) -> dict[str, Any]:
    from audiolift_devstack.stack import s3_client_for
    from playwright.sync_api import sync_playwright

    size = args.size_mib * MiB
    s3 = s3_client_for(stack)
    runs: dict[str, list[dict[str, Any]]] = {"page": [], "sdk": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            for round_number in range(1, args.rounds + 1):
                for kind in ("page", "sdk"):
                    if kind == "page":
                        result = page_upload(browser, stack, path)
                    else:
                        result = sdk_upload(stack, path)
                    key = f"uploads/{result['job_id']}"
                    head = s3.head_object(Bucket=stack["bucket"], Key=key)
                    assert head["ContentLength"] == size, head
                    s3.delete_object(Bucket=stack["bucket"], Key=key)
                    runs[kind].append(result)
                    print(
                        f"round {round_number} {kind:4}: {size / MiB / result['seconds']:7.1f} "
                        f"MiB/s  ({result['seconds']:.2f} s)",
                        flush=True,
                    )
        finally:
            browser.close()
    page = summarize(runs["page"], size)
    sdk = summarize(runs["sdk"], size)
    return {
        "file_mib": args.size_mib,
        "rounds": args.rounds,
        "server": "SeaweedFS (local stack, 127.0.0.1)",
        "page": {**page, "part_puts": runs["page"][0]["puts"]},
        "sdk": {**sdk, "part_count": runs["sdk"][0]["part_count"]},
        "ratio_page_over_sdk": round(page["mib_per_s_median"] / sdk["mib_per_s_median"], 3),
        "goal": ">= 0.8",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audiolift-bench-browser-") as temporary:
        work = Path(temporary)
        path = work / "bench.wav"
        print(f"writing a {args.size_mib} MiB WAV ...", flush=True)
        make_wav(path, args.size_mib * MiB)
        state_dir = work / "stack"
        state_dir.mkdir()
        print("starting the local stack (SeaweedFS, moto, API, page; no processor) ...")
        process, stack = start_stack(state_dir)
        try:
            report = run_rounds(args, path, stack)
        finally:
            stop_stack(process)
    print()
    print(f"file: {args.size_mib} MiB, {args.rounds} round(s) each, medians")
    print(f"  page (headless Chromium): {report['page']['mib_per_s_median']:.1f} MiB/s")
    print(f"  SDK (defaults):           {report['sdk']['mib_per_s_median']:.1f} MiB/s")
    print(f"  ratio page / SDK: {report['ratio_page_over_sdk']:.2f}x  (goal >= 0.8)")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_browser.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ratio_page_over_sdk"] >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
