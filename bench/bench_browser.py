"""Benchmark: the browser page's upload throughput vs the SDK's, same file, same local
stack, same run.

    .venv/bin/python bench/bench_browser.py                     # 256 MiB, 3 rounds each
    .venv/bin/python bench/bench_browser.py --size-mib 64 --rounds 1

The local stack runs as in ``make dev`` but without the processor
(``python -m audiolift_devstack up --no-poller``): SeaweedFS as S3 (it checks the presigned
signatures, the part and whole-file CRC32Cs and the bucket's CORS), moto's server for
DynamoDB, the API under uvicorn, and the page served by the stack itself. The page runs in
headless Chromium (Debian's), driven over a DevTools pipe that observes no request
(chromium_pipe.py: Playwright's network instrumentation cost Chromium ~2 ms of CPU per MiB
uploaded, which a person's browser does not pay; ``--driver playwright`` shows it); the
page's own clock (from the pick to the completed upload, as it shows the person) gives
its time. The SDK uploads the same file
from this process with its defaults. Both check integrity the same way: each part's CRC32C
signed into its URL, the whole file's CRC32C (combined from the parts') at completion.
Rounds alternate page, page without checksums, SDK, ... so drift in the machine's load
hits all; the figures are medians (one upload of each, first, is not counted: it warms up a fresh
SeaweedFS), the ratio is page MiB/s (with its checksums, as it ships) over SDK MiB/s (goal
>= 0.8); the page without checksums gives their cost.

Where the time goes: for every upload, the CPU seconds of each process taking part (the
Chromium processes by type, each SeaweedFS component, the stack's process with the API,
this process, which runs the SDK or Playwright's side of the page) are read before and
after (psutil), and printed per MiB uploaded (medians), with the whole machine's busy
time: on a small machine the clients and S3 share the cores, so a client's CPU per MiB
decides its throughput as much as its design does. "others" is CPU used by processes
that are not part of the run (another job on the machine): a large figure there means a
noisy round. Objects are deleted after each round. Results also go to
bench/out/bench_browser.json.

The file is a valid WAV header over random samples: the page and the SDK both look at a
file's first bytes before they upload it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
from audiolift_devstack.launcher import start_stack_process
from audiolift_devstack.stack import keys_cached_as_deployed
from chromium_pipe import ChromiumPipe

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
CHROMIUM = os.environ.get("AUDIOLIFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
UPLOADED_TEXT = re.compile(r"Uploaded .* in ([0-9.]+) s")


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


def process_role(process: psutil.Process) -> str:
    """What a process of the run is: a Chromium process by its type, a SeaweedFS
    component, the stack's process (API, moto) or its jobs table (dynalite, on node),
    Playwright's driver, or other."""
    command = process.cmdline()
    if not command:
        return "other"
    program = Path(command[0]).name
    if "chrom" in program:
        kind = next((a.split("=", 1)[1] for a in command if a.startswith("--type=")), "browser")
        if kind == "utility":
            sub = next((a for a in command if a.startswith("--utility-sub-type=")), "")
            kind = "network" if "NetworkService" in sub else "utility"
        return f"chromium {kind}"
    if program == "weed":
        component = next((a for a in command[1:] if not a.startswith("-")), "")
        return f"seaweedfs {component}"
    if "audiolift_devstack" in command:
        return "stack (API, moto)"
    if any("dynalite" in a for a in command):
        return "stack (dynalite)"
    if program == "node" or any("playwright" in a for a in command):
        return "playwright driver"
    return "other"


CpuSnapshot = tuple[dict[int, tuple[str, float]], float]


def cpu_snapshot() -> CpuSnapshot:
    """CPU seconds so far of this process and each of its descendants (with its role),
    and the machine's busy seconds."""
    me = psutil.Process()
    seconds: dict[int, tuple[str, float]] = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            role = "this process" if process.pid == me.pid else process_role(process)
        except psutil.Error:
            continue  # gone meanwhile
        seconds[process.pid] = (role, times.user + times.system)
    machine = psutil.cpu_times()
    return seconds, sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds per role between two snapshots; "others": the rest of the machine."""
    used: dict[str, float] = {}
    for pid, (role, seconds) in after[0].items():
        used[role] = used.get(role, 0.0) + seconds - before[0].get(pid, (role, 0.0))[1]
    used["others"] = max(0.0, after[1] - before[1] - sum(used.values()))
    return used


def pin_cores(server_pid: int) -> str:
    """Server and clients on separate cores, as when S3 is not on the client's machine:
    the stack's processes (SeaweedFS, the API) on the last core, this process (the SDK,
    Playwright) and Chromium (its processes inherit it) on the others."""
    cores = sorted(psutil.Process().cpu_affinity() or [])
    if len(cores) < 2:
        raise SystemExit("--pin-cores needs at least two cores")
    server_cores, client_cores = cores[-1:], cores[:-1]
    server = psutil.Process(server_pid)
    # Every thread: an affinity set for a process id binds its main thread only (Go and
    # uvicorn already run others); threads started later inherit their creator's.
    for process in [server, *server.children(recursive=True)]:
        for thread in process.threads():
            os.sched_setaffinity(thread.id, server_cores)
    for thread in psutil.Process().threads():
        os.sched_setaffinity(thread.id, client_cores)
    return f"server (SeaweedFS, API) on CPU {server_cores}, clients on CPU {client_cores}"


class PlaywrightPage:
    """A Playwright page with the few calls the benchmark makes of ``chromium_pipe.Page``."""

    def __init__(self, browser: Any, url: str):
        self._context = browser.new_context()
        self._page = self._context.new_page()
        self._page.goto(url)

    def evaluate(self, expression: str) -> Any:
        return self._page.evaluate(expression)

    def wait_for(self, expression: str, *, timeout: float = 60.0, interval: float = 0.5) -> None:
        # Polled twice a second: on every animation frame, Playwright's work would be
        # charged to the page's renderer.
        self._page.wait_for_function(
            expression, polling=int(interval * 1000), timeout=int(timeout * 1000)
        )

    def set_input_files(self, selector: str, path: Path) -> None:
        self._page.set_input_files(selector, str(path))

    def close(self) -> None:
        self._context.close()


# The part PUTs the page made, from its resource timing (XHRs to URLs with a part number).
COUNT_PART_PUTS = (
    "performance.getEntriesByType('resource')"
    ".filter(e => e.initiatorType === 'xmlhttprequest' && e.name.includes('partNumber=')).length"
)


def page_upload(
    new_page: Callable[[str], Any],
    stack: dict[str, Any],
    path: Path,
    *,
    checksums: bool = True,
    parallel: int | None = None,
) -> dict[str, Any]:
    """One upload through the page in a fresh page; the page's own timing, and the CPU
    each process used from the pick to the end."""
    if not stack.get("web_url"):
        raise RuntimeError("the stack serves no page: build it (scripts/install_browser.sh)")
    query = f"&checksums={'on' if checksums else 'off'}"
    if parallel:
        query += f"&parallel={parallel}"
    page = new_page(stack["web_url"] + query)
    try:
        page.wait_for(
            "document.body?.dataset.ready === 'true'"
            " && document.querySelector('#connection')?.dataset.state === 'ok'",
            interval=0.05,
        )
        before = cpu_snapshot()
        started = time.perf_counter()
        page.set_input_files("#file-input", path)
        page.wait_for(
            "['done', 'failed'].includes(document.querySelector('#upload').dataset.state)",
            timeout=1800,
        )
        wall = time.perf_counter() - started
        cpu = cpu_used(before, cpu_snapshot())
        upload = page.evaluate(
            "(() => { const u = document.querySelector('#upload').dataset;"
            " return {state: u.state, seconds: u.seconds, jobId: u.jobId,"
            " text: document.querySelector('#upload-text').innerText,"
            " error: document.querySelector('#error-message')?.innerText} })()"
        )
        if upload["state"] != "done":
            raise RuntimeError(f"the page's upload failed: {upload['error']}")
        match = UPLOADED_TEXT.search(upload["text"])
        if match is None:
            raise RuntimeError(f"the page did not say how long it took: {upload['text']!r}")
        job_id = upload["jobId"] or page.evaluate("document.querySelector('#job')?.dataset.jobId")
        # data-seconds (ms precision) where the page sets it; else its text (0.1 s).
        seconds = float(upload["seconds"]) if upload["seconds"] else float(match.group(1))
        return {
            "seconds": seconds or wall,
            "wall_seconds": wall,
            "job_id": job_id,
            "puts": page.evaluate(COUNT_PART_PUTS),
            "cpu": cpu,
        }
    finally:
        page.close()


def sdk_upload(stack: dict[str, Any], path: Path) -> dict[str, Any]:
    from audiolift import Client

    with Client(stack["api_url"], stack["api_key"]) as client:
        before = cpu_snapshot()
        started = time.perf_counter()
        job = client.upload(path)
        seconds = time.perf_counter() - started
        cpu = cpu_used(before, cpu_snapshot())
    return {"seconds": seconds, "job_id": job.job_id, "part_count": job.part_count, "cpu": cpu}


def summarize(runs: list[dict[str, Any]], size: int, *, browser: bool) -> dict[str, Any]:
    """Medians of the rounds: MiB/s, and CPU milliseconds per MiB by role and for the
    client itself (Chromium's processes for the page, this process for the SDK)."""
    rates = [size / MiB / run["seconds"] for run in runs]
    ms_per_mib = 1000 / (size / MiB)
    roles = sorted({role for run in runs for role in run["cpu"]})
    per_mib = {
        role: round(statistics.median(run["cpu"].get(role, 0.0) for run in runs) * ms_per_mib, 2)
        for role in roles
    }

    def is_client(role: str) -> bool:
        return role.startswith("chromium") if browser else role == "this process"

    client = statistics.median(
        sum(seconds for role, seconds in run["cpu"].items() if is_client(role)) for run in runs
    )
    return {
        "mib_per_s_median": round(statistics.median(rates), 1),
        "mib_per_s_each": [round(r, 1) for r in rates],
        "seconds_each": [round(run["seconds"], 2) for run in runs],
        "client_cpu_ms_per_mib": round(client * ms_per_mib, 2),
        "cpu_ms_per_mib": {role: ms for role, ms in per_mib.items() if ms >= 0.05},
    }


def run_rounds(args: argparse.Namespace, path: Path, stack: dict[str, Any]) -> dict[str, Any]:
    from audiolift_devstack.clients import s3_client_for

    size = args.size_mib * MiB
    s3 = s3_client_for(stack)
    kinds = (
        ["page", "sdk"] if args.page_only_with_checksums else ["page", "page_no_checksums", "sdk"]
    )
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}

    def upload(kind: str) -> dict[str, Any]:
        if kind == "sdk":
            result = sdk_upload(stack, path)
        else:
            result = page_upload(
                new_page, stack, path, checksums=kind == "page", parallel=args.parallel
            )
        key = f"uploads/{result['job_id']}"
        head = s3.head_object(Bucket=stack["bucket"], Key=key)
        assert head["ContentLength"] == size, head
        s3.delete_object(Bucket=stack["bucket"], Key=key)
        return result

    if args.pin_cores:
        print(pin_cores(stack["pid"]), flush=True)
    with ExitStack() as running:
        if args.driver == "playwright":
            from playwright.sync_api import sync_playwright

            playwright = running.enter_context(sync_playwright())
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            running.callback(browser.close)

            def new_page(url: str) -> Any:
                return PlaywrightPage(browser, url)
        else:
            chromium = running.enter_context(ChromiumPipe(CHROMIUM, CHROMIUM_ARGS))
            new_page = chromium.new_page
        # Not counted: the first uploads into a fresh SeaweedFS also grow its volumes.
        for kind in ("page", "sdk"):
            upload(kind)
        for round_number in range(1, args.rounds + 1):
            for kind in kinds:
                result = upload(kind)
                runs[kind].append(result)
                busiest = sorted(result["cpu"].items(), key=lambda item: -item[1])[:4]
                print(
                    f"round {round_number} {kind:17}: {size / MiB / result['seconds']:7.1f} "
                    f"MiB/s  ({result['seconds']:.2f} s; CPU s: "
                    + ", ".join(f"{role} {seconds:.1f}" for role, seconds in busiest)
                    + ")",
                    flush=True,
                )
    page = summarize(runs["page"], size, browser=True)
    sdk = summarize(runs["sdk"], size, browser=False)
    report = {
        "file_mib": args.size_mib,
        "rounds": args.rounds,
        "server": "SeaweedFS (local stack, 127.0.0.1)",
        "cores": "stack on the last core, clients on the others" if args.pin_cores else "shared",
        "driver": args.driver,
        "page": {**page, "part_puts": runs["page"][0]["puts"]},
        "sdk": {**sdk, "part_count": runs["sdk"][0]["part_count"]},
        "ratio_page_over_sdk": round(page["mib_per_s_median"] / sdk["mib_per_s_median"], 3),
        "goal": ">= 0.8",
    }
    if "page_no_checksums" in runs:
        plain = summarize(runs["page_no_checksums"], size, browser=True)
        report["page_without_checksums"] = plain
        # What the page's CRC32Cs cost: its time with them over its time without.
        report["checksum_cost"] = round(plain["mib_per_s_median"] / page["mib_per_s_median"], 3)
    return report


def print_cpu(report: dict[str, Any]) -> None:
    print("CPU ms per MiB uploaded (medians; the client's own first):")
    for name in ("page", "page_without_checksums", "sdk"):
        if name not in report:
            continue
        figures = report[name]["cpu_ms_per_mib"]
        shown = ", ".join(
            f"{role} {ms:.1f}" for role, ms in sorted(figures.items(), key=lambda i: -i[1])
        )
        print(f"  {name}: client {report[name]['client_cpu_ms_per_mib']:.1f}; {shown}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--parallel", type=int, default=None, help="the page's parts in flight (default: its own)"
    )
    parser.add_argument(
        "--page-only-with-checksums",
        action="store_true",
        help="skip the page's rounds without checksums (which measure their cost)",
    )
    parser.add_argument(
        "--driver",
        choices=("pipe", "playwright"),
        default="pipe",
        help="how Chromium is driven: over a DevTools pipe with no network instrumentation "
        "(default: as a person's browser runs), or by Playwright (which observes every "
        "request and costs Chromium CPU)",
    )
    parser.add_argument(
        "--pin-cores",
        action="store_true",
        help="run the stack on the last core and the clients on the others (the "
        "clients then do not compete with S3 for CPU, as with a remote S3)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audiolift-bench-browser-") as temporary:
        work = Path(temporary)
        path = work / "bench.wav"
        print(f"writing a {args.size_mib} MiB WAV ...", flush=True)
        make_wav(path, args.size_mib * MiB)
        state_dir = work / "stack"
        state_dir.mkdir()
        print("starting the local stack (SeaweedFS, moto, API, page; no processor) ...")
        handle = start_stack_process(state_dir, "--no-poller", *keys_cached_as_deployed())
        try:
            report = run_rounds(args, path, handle.info.as_dict())
        finally:
            handle.stop()
    print()
    print(f"file: {args.size_mib} MiB, {args.rounds} round(s) each, medians")
    print(f"  page (headless Chromium): {report['page']['mib_per_s_median']:.1f} MiB/s")
    if "page_without_checksums" in report:
        plain = report["page_without_checksums"]["mib_per_s_median"]
        print(f"  page without checksums:   {plain:.1f} MiB/s  (CRC32Cs cost "
              f"{(report['checksum_cost'] - 1) * 100:+.0f} % of the time)")  # fmt: skip
    print(f"  SDK (defaults):           {report['sdk']['mib_per_s_median']:.1f} MiB/s")
    print(f"  ratio page / SDK: {report['ratio_page_over_sdk']:.2f}x  (goal >= 0.8)")
    print_cpu(report)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_browser.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ratio_page_over_sdk"] >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
