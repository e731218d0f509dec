"""Processor invocations at once, each in its own process: the local twin of Lambda's
concurrency (the SQS event source runs up to ``MaximumConcurrency`` invocations, each in
a sandbox of its own).

``WorkerPool`` starts ``count`` children, ``python -m audiolift_devstack.workers``, each
an `SqsPoller` on the processing queue calling the processor's handler in its own
interpreter, so the decoding and analysis of two parts of a fanned-out file really run
on two cores (threads of one process would share the GIL between numpy's calls).
Each child may be pinned to ``cpus_per_worker`` CPUs: Lambda gives a function one vCPU
per 1,769 MB of memory, so a 1,769 MB processor is measured fairly on one CPU. The
children inherit the stack's environment (the functions' settings, the local
endpoints) and die with the stack (SIGKILL on the parent's death); a stop sends SIGTERM,
which a child answers after its current invocation (a long one is then killed, as
Lambda's timeout would: its lease and message bring the work back).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from .net import die_with_parent

log = logging.getLogger("audiolift_devstack.workers")

STOP_GRACE_SECONDS = 5.0


def worker_cpus(index: int, cpus_per_worker: int, available: list[int]) -> list[int]:
    """The CPUs worker ``index`` is pinned to: consecutive ones, round robin over
    ``available`` (several workers share when there are fewer CPUs than they need)."""
    if cpus_per_worker <= 0 or not available:
        return []
    return [
        available[(index * cpus_per_worker + j) % len(available)] for j in range(cpus_per_worker)
    ]


@dataclass
class WorkerPool:
    count: int
    queue_url: str
    queue_arn: str
    log_dir: Path
    cpus_per_worker: int = 0  # 0: not pinned
    timeout_seconds: int = 900
    memory_mb: int = 1769
    batch_size: int = 1
    report_batch_item_failures: bool = True
    wait_seconds: int = 1
    region: str = "us-east-1"
    function_name: str = "audiolift-processor"
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> WorkerPool:
        """Start the children (from the thread they should die with)."""
        from .launcher import PYTHONPATH

        self.log_dir.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(str(path) for path in PYTHONPATH)
        environment["PYTHONUNBUFFERED"] = "1"
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        for index in range(self.count):
            cpus = worker_cpus(index, self.cpus_per_worker, available)
            command = [
                sys.executable,
                "-m",
                "audiolift_devstack.workers",
                *("--queue-url", self.queue_url, "--queue-arn", self.queue_arn),
                *("--timeout", str(self.timeout_seconds), "--memory", str(self.memory_mb)),
                *("--batch-size", str(self.batch_size), "--wait", str(self.wait_seconds)),
                *("--region", self.region, "--function-name", self.function_name),
                *("--cpus", ",".join(str(cpu) for cpu in cpus)),
            ]
            if not self.report_batch_item_failures:
                command.append("--no-batch-item-failures")
            with open(self.log_dir / f"worker-{index}.log", "ab") as output:
                self.processes.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        env=environment,
                        preexec_fn=die_with_parent(),
                    )
                )
        return self

    def alive(self) -> int:
        return sum(process.poll() is None for process in self.processes)

    def stop(self) -> None:
        processes, self.processes = self.processes, []
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()  # in a long invocation: killed, as Lambda's timeout would
                process.wait()


# --- the child ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m audiolift_devstack.workers")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--queue-arn", required=True)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--memory", type=int, default=1769)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--wait", type=int, default=1)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--function-name", default="audiolift-processor")
    parser.add_argument("--cpus", default="", help="comma-separated CPUs to run on")
    parser.add_argument("--no-batch-item-failures", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """One worker: poll the queue and invoke the processor until SIGTERM."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
    requests = {"stop": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        requests["stop"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    from audiolift_core.aws import sqs_client

    from .poller import SqsPoller

    poller = SqsPoller(
        sqs_client(),
        args.queue_url,
        queue_arn=args.queue_arn,
        function_name=args.function_name,
        timeout_seconds=args.timeout,
        memory_limit_in_mb=args.memory,
        batch_size=args.batch_size,
        report_batch_item_failures=not args.no_batch_item_failures,
        wait_seconds=args.wait,
        region=args.region,
    )
    _ = poller.handler  # import the processor before the first message
    failures = 0
    while not requests["stop"]:
        try:
            poller.poll_once()
            failures = 0
        except Exception:
            failures += 1
            log.exception("polling the queue failed")
            time.sleep(min(5.0, 0.2 * 2**failures))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip the scientific stack's slow teardown (see __main__)
