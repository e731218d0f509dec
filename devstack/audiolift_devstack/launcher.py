"""``python -m audiolift_devstack up`` in a child process, for tests and benchmarks that
want the stack isolated from their own process (no moto mock, no environment leaking in
either direction) and want to see it stop.

``start_stack_process(state_dir, *args)`` returns a ``StackProcess`` once the child has
written stack.json (everything answers): its ``info`` (a ``StackInfo``), boto3 clients for
it, the child's descendants (to prove none is left behind) and ``stop(signum)``.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .clients import StackClients, clients_for
from .stack import STACK_FILE, StackInfo

if TYPE_CHECKING:
    import psutil

ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = [
    ROOT / "layers" / "core",
    ROOT / "functions" / "api",
    ROOT / "functions" / "processor",
    ROOT / "functions" / "sweeper",
    ROOT / "devstack",
    ROOT / "clients" / "python",
]
STACK_START_TIMEOUT = 90.0
STACK_STOP_TIMEOUT = 30.0


def stack_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours without anything that points boto3 elsewhere or that
    moto would read at import, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("MOTO_DISABLE_GLOBAL_CORS", None)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in PYTHONPATH)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class StackProcess:
    """A running ``up`` child and what it wrote to stack.json."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path
    info: StackInfo
    startup_seconds: float = 0.0
    descendants: list[psutil.Process] = field(default_factory=list)

    @property
    def stack_file(self) -> Path:
        return self.state_dir / STACK_FILE

    @functools.cached_property
    def clients(self) -> StackClients:
        return clients_for(self.info)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.info.api_key}"}

    def log_tail(self, lines: int = 40) -> str:
        return _log_tail(self.log_path, lines)

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

    def survivors(self, grace: float = 0.0) -> list[psutil.Process]:
        """Processes the stack started that still run (zombies count as gone), after
        waiting up to ``grace`` seconds for them to go."""
        import psutil

        deadline = time.monotonic() + grace
        while True:
            alive = []
            for child in self.descendants:
                try:
                    if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                        alive.append(child)
                except psutil.NoSuchProcess:
                    continue
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.05)

    def stop_checked(self, signum: int = signal.SIGTERM) -> None:
        """Stop, kill any survivor, and fail unless the stack exited cleanly alone."""
        self.stop(signum)
        survivors = self.survivors(grace=2.0)
        for process in survivors:
            process.kill()
        assert not survivors, f"left behind: {survivors}"
        if signum == signal.SIGTERM:
            assert self.process.returncode == 0, self.log_tail()


def start_stack_process(
    state_dir: Path,
    *extra_args: str,
    timeout: float = STACK_START_TIMEOUT,
    env: dict[str, str] | None = None,
) -> StackProcess:
    """``python -m audiolift_devstack up --state-dir state_dir *extra_args`` in a child
    process; returns once stack.json is written, with the child's descendants recorded."""
    import psutil

    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "stack.log"
    stack_file = state_dir / STACK_FILE
    command = [sys.executable, "-m", "audiolift_devstack", "up", "--state-dir", str(state_dir)]
    started = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*command, *extra_args],
            cwd=ROOT,
            env=stack_environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        info = _wait_until_written(process, stack_file, log_path, started, timeout)
    except BaseException:
        # Not started, or the caller gave up (Ctrl-C): stop what was started.
        process.kill()
        process.wait()
        raise
    return StackProcess(
        process,
        state_dir,
        log_path,
        info,
        startup_seconds=time.monotonic() - started,
        descendants=psutil.Process(process.pid).children(recursive=True),
    )


def _wait_until_written(
    process: subprocess.Popen[bytes],
    stack_file: Path,
    log_path: Path,
    started: float,
    timeout: float,
) -> StackInfo:
    while True:
        info = _written_by(stack_file, process.pid)
        if info is not None:
            return info
        if process.poll() is not None:
            raise RuntimeError(
                f"the local stack exited with {process.returncode}:\n{_log_tail(log_path)}"
            )
        if time.monotonic() > started + timeout:
            raise TimeoutError(f"the local stack did not start in {timeout} s")
        time.sleep(0.1)


def _written_by(stack_file: Path, pid: int) -> StackInfo | None:
    """The stack file, if the stack of process ``pid`` wrote it. A stale file (from a
    killed stack in the same state directory) is no answer, and may vanish between a
    look and a read: the new stack deletes it as it starts."""
    try:
        info = StackInfo.load(stack_file)
    except FileNotFoundError:
        return None
    return info if info.pid == pid else None


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
