"""The jobs table's server for the local stack: dynalite, DynamoDB's API on LevelDB (npm,
installed from devstack/package-lock.json by ``make venv``), so jobs survive a restart,
even after a SIGKILL (LevelDB appends every write to its log before answering).

Why not moto: its state is memory only. Fidelity: dynalite implements the item and
table calls the functions use (conditional writes, update expressions, GSIs, Query
with pagination, ReturnValues) and validates requests as DynamoDB does, but has no
UpdateTimeToLive (items never expire: the TTL attribute is stored and ignored), no
continuous backups, no transactions, streams or PartiQL, and no capacity throttling.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .net import LOOPBACK, Service, die_with_parent, free_port, http_status, wait_until

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # devstack/: package.json, node_modules
CLI = PACKAGE_DIR / "node_modules" / "dynalite" / "cli.js"


def dynalite_available() -> bool:
    return CLI.exists() and shutil.which("node") is not None


@dataclass
class Dynalite(Service):
    """``Dynalite(state_dir).start()``: dynalite on 127.0.0.1, its LevelDB under
    ``<state_dir>/dynamodb``. ``spawn()`` and ``wait_ready()`` are the two halves of
    ``start()``, for a caller that starts other things in between."""

    state_dir: Path
    port: int | None = None
    start_timeout: float = 30.0
    stop_timeout: float = 5.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    startup_seconds: float = 0.0
    _started: float = 0.0

    @property
    def root(self) -> Path:
        return Path(self.state_dir) / "dynamodb"

    @property
    def endpoint(self) -> str:
        assert self.port is not None, "start() first"
        return f"http://{LOOPBACK}:{self.port}"

    def spawn(self) -> Dynalite:
        node = shutil.which("node")
        if node is None or not CLI.exists():
            raise RuntimeError(
                "dynalite is not installed: `npm ci --prefix devstack` (make venv does it); "
                "it needs Node.js 20 or later."
            )
        self._started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = open(self.root / "dynalite.log", "ab")  # noqa: SIM115 - the child owns it
        try:
            self.process = subprocess.Popen(
                [
                    node,
                    str(CLI),
                    *("--host", LOOPBACK, "--port", str(self.port), "--path", str(self.root)),
                    # Tables are ACTIVE at once (DynamoDB takes seconds; nobody waits here).
                    *("--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        finally:
            log.close()
        return self

    def wait_ready(self) -> Dynalite:
        process = self.process
        assert process is not None, "spawn() first"
        wait_until(
            lambda: http_status(self.endpoint) is not None,
            timeout=self.start_timeout,
            what="dynalite",
            alive=lambda: None if process.poll() is None else "dynalite exited (see its log)",
        )
        self.startup_seconds = time.monotonic() - self._started
        return self

    def start(self) -> Dynalite:
        try:
            return self.spawn().wait_ready()
        except BaseException:
            self.stop()
            raise

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
