"""``python -m audiolift_devstack up [--s3 seaweedfs|moto] [--state-dir .state] [--port N]``

Starts the local stack, prints where everything is, writes ``<state-dir>/stack.json`` and
runs until Ctrl-C or SIGTERM, then stops every part (no process left behind; a SIGKILL
takes its child processes with it). SIGHUP restarts the API alone. Started again on the
same state directory, it has every job, object and result (``--fresh`` wipes them).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from .stack import SWEEP_INTERVAL_SECONDS, Stack, StackConfig

# How often the main thread looks at the signal flags (a signal also ends its sleep).
SERVE_POLL_SECONDS = 0.5


def _non_negative_seconds(text: str) -> float:
    seconds = float(text)
    if not seconds >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return seconds


def _variable(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m audiolift_devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the local stack and keep it running")
    up.add_argument("--s3", choices=("seaweedfs", "moto"), default="seaweedfs")
    up.add_argument("--state-dir", type=Path, default=Path(".state"))
    up.add_argument("--port", type=int, default=0, help="the API's port (default: a free one)")
    up.add_argument("--s3-port", type=int, default=None, help="SeaweedFS's S3 port")
    up.add_argument("--moto-port", type=int, default=0, help="moto's port (DynamoDB, SQS)")
    up.add_argument("--api-key", default=None, help="the dev API key (default: a new one)")
    up.add_argument(
        "--part-min-bytes", type=int, default=None, help="PART_MIN_BYTES (default 5 MiB)"
    )
    up.add_argument("--part-size-bytes", type=int, default=None, help="PART_SIZE_BYTES")
    up.add_argument(
        "--visibility-timeout",
        type=int,
        default=None,
        help="the queue's visibility timeout (default: the template's)",
    )
    up.add_argument(
        "--function-timeout",
        type=int,
        default=None,
        help="the processor's timeout in seconds (default: the template's); the queue's "
        "visibility timeout is six times it",
    )
    up.add_argument(
        "--sweep-interval",
        type=_non_negative_seconds,
        default=SWEEP_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="run the sweeper (stuck jobs are re-driven or ended) this often; 0: never "
        f"(default {SWEEP_INTERVAL_SECONDS:g})",
    )
    up.add_argument(
        "--tables",
        choices=("dynalite", "moto"),
        default="dynalite",
        help="the jobs table's server: dynalite keeps it on disk, moto in memory",
    )
    up.add_argument(
        "--env",
        action="append",
        type=_variable,
        default=[],
        metavar="NAME=VALUE",
        help="a variable for the functions, over the template's (repeatable), "
        "e.g. --env READ_CHUNK_BYTES=1048576",
    )
    up.add_argument("--fresh", action="store_true", help="wipe the kept state first")
    up.add_argument("--no-poller", action="store_true", help="do not run the processor")
    up.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processor invocations at once, each in its own process (default 1: one, in "
        "this process); a fanned-out analysis's parts run in parallel",
    )
    up.add_argument(
        "--worker-cpus",
        type=int,
        default=0,
        metavar="K",
        help="pin each worker process to K CPUs, as Lambda gives 1 vCPU per 1,769 MB "
        "(default 0: not pinned)",
    )
    up.add_argument("--log-level", default="WARNING", help="the functions' log level")
    return parser


def _up(args: argparse.Namespace) -> int:
    # Plain flags, not threading.Events: a handler that sets an Event takes the Event's
    # lock, and deadlocks when the signal lands while the main thread holds it in wait().
    requests = {"stop": False, "restart_api": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        requests["restart_api" if signum == signal.SIGHUP else "stop"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    config = StackConfig(
        state_dir=args.state_dir,
        s3_backend=args.s3,
        api_port=args.port,
        moto_port=args.moto_port,
        s3_port=args.s3_port,
        api_key=args.api_key,
        part_min_bytes=args.part_min_bytes,
        part_size_bytes=args.part_size_bytes,
        visibility_timeout=args.visibility_timeout,
        function_timeout=args.function_timeout,
        sweep_interval_seconds=args.sweep_interval,
        extra_environment=dict(args.env),
        table_backend=args.tables,
        fresh=args.fresh,
        run_poller=not args.no_poller,
        workers=max(1, args.workers),
        worker_cpus=max(0, args.worker_cpus),
        log_level=args.log_level.upper(),
    )
    stack = Stack(config)
    try:
        stack.start()
        info = stack.info
        assert info is not None
        print(
            f"audiolift local stack is up ({info.startup_seconds:.1f} s, S3: {info.s3_backend})\n"
            f"  API:          {info.api_url}   (docs: {info.api_url}/docs)\n"
            f"  S3 endpoint:  {info.s3_endpoint}   bucket {info.bucket}\n"
            f"  DynamoDB:     {info.dynamodb_endpoint}   (table {info.table})\n"
            f"  SQS (moto):   {info.aws_endpoint}\n"
            f"  dev API key:  {info.api_key}\n"
            + (f"  web page:     {info.web_url}\n" if info.web_url else "")
            + f"  written to:   {stack.stack_file}\n"
            f"Ctrl-C stops it; SIGHUP (kill -HUP {os.getpid()}) restarts the API.",
            flush=True,
        )
        _serve(stack, requests)
        print("stopping ...", flush=True)
    finally:
        # Signals during shutdown must not interrupt it half way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    print(f"stopped ({stack.timings.get('shutdown', 0.0):.1f} s)", flush=True)
    return 0


def _serve(stack: Stack, requests: dict[str, bool]) -> None:
    """Wait for a stop, restarting the API whenever asked meanwhile. A signal interrupts
    the sleep, so a stop is seen at once."""
    while not requests["stop"]:
        time.sleep(SERVE_POLL_SECONDS)
        if requests["restart_api"] and not requests["stop"]:
            requests["restart_api"] = False
            if stack.info is not None and stack.info.api_url:
                print(f"API restarted ({stack.restart_api():.2f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.command == "up":
        return _up(args)
    return 2


if __name__ == "__main__":
    code = main()
    # Every part is stopped and every child reaped by now. The interpreter's own teardown
    # of the loaded scientific stack (C-level finalisers, no Python frame) took 2-4 s on
    # the 2-core machine; it has nothing left to clean up, so skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
