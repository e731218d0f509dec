"""Running the local stack from tests: ``python -m audiolift_devstack up`` in a child
process, found through the stack.json it writes (``start_stack_process``), and
``LocalStack``, what the ``local_stack`` fixture (conftest.py) yields.

A module of its own (not conftest.py) so that test modules can import it by a name no
other directory uses: ``from stack_support import LocalStack``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = [
    ROOT / "layers" / "core",
    ROOT / "functions" / "api",
    ROOT / "functions" / "processor",
    ROOT / "devstack",
    ROOT / "clients" / "python",
]
# S3's minimum part size, which SeaweedFS enforces too (EntityTooSmall on complete): the
# smallest parts a multipart test can use; a file of a few tens of MiB has several.
TEST_PART_BYTES = 5 * 1024 * 1024
# Failed deliveries come back after this many seconds, not the template's 6x 15 minutes,
# so retry-and-DLQ tests take seconds. Processing a test file takes well under this.
TEST_VISIBILITY_TIMEOUT = 6
STACK_START_TIMEOUT = 90.0
STACK_STOP_TIMEOUT = 30.0


def stack_environment() -> dict[str, str]:
    """The child's environment: ours, without anything that points boto3 elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("MOTO_DISABLE_GLOBAL_CORS", None)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in PYTHONPATH)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class StackProcess:
    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path
    info: dict[str, Any]
    startup_seconds: float
    descendants: list[psutil.Process] = field(default_factory=list)

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STACK_STOP_TIMEOUT) -> float:
        """Signal the stack and wait for it; return the seconds it took. Kills it (and
        fails) if it does not exit in time."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for child in self.descendants:
                if child.is_running():
                    child.kill()
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"the stack did not stop within {timeout} s:\n{self.log_tail()}"
            ) from None
        return time.monotonic() - started

    def survivors(self) -> list[psutil.Process]:
        """Processes the stack started that still run (zombies count as gone)."""
        alive = []
        for child in self.descendants:
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
            except psutil.NoSuchProcess:
                continue
        return alive


def start_stack_process(
    state_dir: Path, *extra_args: str, timeout: float = STACK_START_TIMEOUT
) -> StackProcess:
    """``python -m audiolift_devstack up`` in a child process; returns once stack.json is
    written (everything answers), with the child's descendants recorded."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "stack.log"
    stack_file = state_dir / "stack.json"
    command: Sequence[str] = [
        sys.executable,
        "-m",
        "audiolift_devstack",
        "up",
        "--state-dir",
        str(state_dir),
        *extra_args,
    ]
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=stack_environment(), stdout=log, stderr=subprocess.STDOUT
        )
    handle = StackProcess(process, state_dir, log_path, {}, 0.0)
    deadline = started + timeout
    while True:
        if stack_file.exists():
            info = json.loads(stack_file.read_text())
            if info.get("pid") == process.pid:
                break
        if process.poll() is not None:
            raise RuntimeError(
                f"the local stack exited with {process.returncode}:\n{handle.log_tail()}"
            )
        if time.monotonic() > deadline:
            handle.stop(signal.SIGKILL)
            raise TimeoutError(f"the local stack did not start in {timeout} s")
        time.sleep(0.1)
    handle.info = info
    handle.startup_seconds = time.monotonic() - started
    handle.descendants = psutil.Process(process.pid).children(recursive=True)
    return handle


@dataclass
class LocalStack:
    """The running stack, as tests use it."""

    handle: StackProcess
    api_url: str
    s3_endpoint: str
    api_key: str
    region: str
    bucket: str
    table: str
    queue_url: str
    dlq_url: str
    aws_endpoint: str
    access_key: str
    secret_key: str
    max_receive_count: int
    visibility_timeout: int
    s3: Any
    dynamodb: Any
    sqs: Any

    @property
    def info(self) -> dict[str, Any]:
        return self.handle.info

    @property
    def names(self) -> dict[str, str]:
        return {
            "bucket": self.bucket,
            "table": self.table,
            "queue_url": self.queue_url,
            "dlq_url": self.dlq_url,
        }

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def boto3_session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )


def stack_clients(info: dict[str, Any]) -> tuple[Any, Any, Any]:
    session = boto3.session.Session(
        aws_access_key_id=info["aws_access_key_id"],
        aws_secret_access_key=info["aws_secret_access_key"],
        region_name=info["region"],
    )
    s3 = session.client(
        "s3",
        endpoint_url=info["s3_endpoint"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    dynamodb = session.client("dynamodb", endpoint_url=info["aws_endpoint"])
    sqs = session.client("sqs", endpoint_url=info["aws_endpoint"])
    return s3, dynamodb, sqs
