"""The whole pipeline on one machine, no Docker: SeaweedFS (S3; or moto's S3), dynalite
(the jobs table, on disk; or moto's DynamoDB), moto (SQS), the bridge (filer events -> S3
notifications on the queue), the upload API under uvicorn, and the poller that feeds the
processor's Lambda handler.

Everything listens on 127.0.0.1 and keeps its state under ``state_dir``. moto, the bridge,
uvicorn and the poller run as threads of this process; SeaweedFS (one process group) and
dynalite as child processes that die with it, even when it is SIGKILLed. ``Stack`` is a
context manager; ``python -m audiolift_devstack up`` runs one until Ctrl-C / SIGTERM.

The stack keeps its state: started again on the same ``state_dir`` it has every job,
object and result it had (``fresh=True`` wipes them first). Queue messages are not kept
(moto's SQS is memory only); the sweeper re-drives jobs that were in flight. It writes
``<state_dir>/stack.json`` (api_url, s3_endpoint, api_key, ...) once everything answers,
and removes it on a clean stop.

The stack sets AWS_* and the functions' variables in ``os.environ`` before importing the
API and the processor (their settings and boto3 clients are read once): run one stack per
process, and not in a process where moto's in-process mock is active.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .bridge import NotificationBridge
from .clients import clients_for
from .dynalite import Dynalite
from .keys_events import KeysAndEvents, set_up_keys_and_events
from .moto_server import MotoServer
from .net import LOOPBACK, Service, bound_socket, http_status, wait_until
from .poller import Handler, SqsPoller
from .schedule import ScheduledFunction
from .seaweed import SeaweedFS, WebhookTarget
from .template_resources import (
    PROCESSOR_ID,
    TEMPLATE_PATH,
    CreatedResources,
    Resolver,
    ResourceNames,
    bucket_notification_configuration,
    create_resources,
    load_template,
    upload_prefix,
    visibility_timeout_for,
)
from .web import WebServer
from .workers import WorkerPool

if TYPE_CHECKING:
    import uvicorn
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("audiolift_devstack")

S3Backend = Literal["seaweedfs", "moto"]
SWEEPER_HANDLER = "audiolift_sweeper.handler.handler"
SWEEPER_ID = "SweeperFunction"
API_ID = "ApiFunction"
SWEEP_INTERVAL_SECONDS = 60.0
# The sweeper's upload TTL when the template has no sweeper: the bucket's one-day rule.
DEFAULT_UPLOAD_TTL_SECONDS = 86_400
TableBackend = Literal["dynalite", "moto"]
STACK_FILE = "stack.json"
DEV_OWNER = "dev"

# Variables from the caller's environment that would send boto3 elsewhere.
_FOREIGN_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@dataclass(frozen=True)
class FunctionSettings:
    """The processor function as template.yaml defines it."""

    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]


def processor_function_settings(
    template_path: Path | str = TEMPLATE_PATH, *, region: str = "us-east-1"
) -> FunctionSettings:
    return function_settings(PROCESSOR_ID, template_path, region=region)


def sweeper_function_settings(
    template_path: Path | str = TEMPLATE_PATH, *, region: str = "us-east-1"
) -> FunctionSettings | None:
    """The sweeper as template.yaml defines it (None: the template has none)."""
    if SWEEPER_ID not in load_template(template_path).get("Resources", {}):
        return None
    return function_settings(SWEEPER_ID, template_path, region=region)


def function_settings(
    logical_id: str, template_path: Path | str = TEMPLATE_PATH, *, region: str = "us-east-1"
) -> FunctionSettings:
    """A function of template.yaml: its timeout, memory and the variables that resolve
    without the deployed resources (the stack sets those)."""
    template = load_template(template_path)
    resolver = Resolver.for_template(template, region=region)
    properties = template["Resources"][logical_id].get("Properties") or {}
    globals_ = (template.get("Globals") or {}).get("Function") or {}

    def value(name: str, default: Any) -> Any:
        raw = properties.get(name, globals_.get(name, default))
        return resolver.resolve(raw)

    environment: dict[str, str] = {}
    for scope in (globals_, properties):
        variables = (scope.get("Environment") or {}).get("Variables") or {}
        for name, raw in variables.items():
            with contextlib.suppress(KeyError):  # refs to resources: the stack sets those
                environment[name] = str(resolver.resolve(raw))
    return FunctionSettings(
        timeout_seconds=int(value("Timeout", 3)),
        memory_mb=int(value("MemorySize", 128)),
        environment=environment,
    )


def keys_cached_as_deployed(template_path: Path | str = TEMPLATE_PATH) -> tuple[str, str]:
    """``up`` arguments that have the API cache its keys as long as deployed (the
    template's API_KEYS_CACHE_SECONDS) rather than the local stack's 2 s, with which it
    reads them again from moto's SSM, in its own process: for benchmarks."""
    seconds = int(function_settings(API_ID, template_path).environment["API_KEYS_CACHE_SECONDS"])
    return ("--env", f"API_KEYS_CACHE_SECONDS={seconds}")


DEV_KEY_FILE = "dev-api-key"  # in the state directory, kept across restarts


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only, whole: readers never see half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.chmod(0o600)
    temporary.replace(path)


@dataclass
class StackConfig:
    state_dir: Path = Path(".state")
    s3_backend: S3Backend = "seaweedfs"
    api_port: int = 0  # 0: any free port
    moto_port: int = 0
    s3_port: int | None = None  # SeaweedFS's S3 port (None: any free port)
    region: str = "us-east-1"
    name_prefix: str = "audiolift-local"
    api_key: str | None = None  # None: the kept one (state_dir/dev-api-key), else a new one
    part_min_bytes: int | None = None  # PART_MIN_BYTES for the API (None: S3's 5 MiB)
    part_size_bytes: int | None = None  # PART_SIZE_BYTES (the API's preferred part size)
    table_backend: TableBackend = "dynalite"
    fresh: bool = False  # wipe the state kept from an earlier run first
    visibility_timeout: int | None = None  # None: 6x the function timeout, as the template
    function_timeout: int | None = None  # None: the template's
    run_api: bool = True
    run_poller: bool = True
    processor_handler: Handler | None = None  # None: audiolift_processor.handler.handler
    # Processor invocations at once. 1 (and no pinning): one poller thread in this
    # process, as before; otherwise each in a process of its own (workers.WorkerPool),
    # pinned to worker_cpus CPUs when that is not 0 (Lambda: 1 vCPU per 1,769 MB).
    workers: int = 1
    worker_cpus: int = 0
    poll_wait_seconds: int = 1  # the long poll; also how long a stop may wait for it
    log_level: str = "WARNING"  # POWERTOOLS_LOG_LEVEL for the API and the processor
    seaweed_memory_limit: str = "512MiB"
    template_path: Path = TEMPLATE_PATH
    extra_environment: Mapping[str, str] = field(default_factory=dict)
    # Functions run on a timer, as EventBridge schedules run them: (dotted handler path or
    # callable, interval in seconds). None: the sweeper, every ``sweep_interval_seconds``,
    # when it is installed.
    schedules: Sequence[tuple[Handler | str, float]] | None = None
    sweep_interval_seconds: float = SWEEP_INTERVAL_SECONDS  # 0: no sweeper


@dataclass
class StackInfo:
    """What stack.json holds: everything a client, the CLI or a test needs."""

    api_url: str
    s3_endpoint: str
    api_key: str
    region: str
    bucket: str
    table: str
    queue_url: str
    dlq_url: str
    pid: int
    s3_backend: str
    aws_endpoint: str  # moto: DynamoDB and SQS
    aws_access_key_id: str  # the dev S3 credentials (SeaweedFS checks them)
    aws_secret_access_key: str
    queue_arn: str
    dlq_arn: str
    max_receive_count: int
    visibility_timeout: int
    state_dir: str
    startup_seconds: float
    dynamodb_endpoint: str = ""  # the jobs table's server ("": aws_endpoint)
    web_url: str = ""  # the browser page, when its bundle is built (scripts/install_browser.sh)
    api_keys_parameter: str = ""  # SSM path of the API keys (scripts/api_keys.py --stack-file)
    api_keys_cache_seconds: int = 0  # how soon an added or revoked key takes effect
    event_bus_name: str = ""  # EventBridge bus of the job events

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def load(cls, path: Path | str) -> StackInfo:
        data = json.loads(Path(path).read_text())
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def function_environment(
    function: FunctionSettings,
    resources: CreatedResources,
    *,
    api_key: str,
    timeout_seconds: int,
    log_level: str = "WARNING",
    part_min_bytes: int | None = None,
    part_size_bytes: int | None = None,
    keys_and_events: KeysAndEvents | None = None,
    sweeper: FunctionSettings | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The functions' settings on the local stack (the functions share one process, so
    one environment): the sweeper's and the processor's variables as the template gives
    them to the deployed functions, the created resources' names, the local queue's
    visibility timeout (the sweeper's idea of a lost message must match the queue it
    watches), the dev API key's hash (never the key), and ``extra`` last (it wins)."""
    environment = dict(sweeper.environment) if sweeper is not None else {}
    environment.setdefault("UPLOAD_TTL_SECONDS", str(DEFAULT_UPLOAD_TTL_SECONDS))
    environment.update(function.environment)
    environment.pop("POWERTOOLS_SERVICE_NAME", None)  # one per function
    margin = environment.get("DEADLINE_MARGIN_SECONDS")
    environment.update(
        {
            "JOBS_TABLE": resources.table_name,
            "UPLOAD_BUCKET": resources.bucket_name,
            "POWERTOOLS_METRICS_NAMESPACE": "audiolift",
            "POWERTOOLS_LOG_LEVEL": log_level,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "MAX_RECEIVE_COUNT": str(resources.queue_settings.max_receive_count),
            # the sweeper's re-drives and the processor's hand-ons go there
            "PROCESSING_QUEUE_URL": resources.queue_url,
            "VISIBILITY_TIMEOUT_SECONDS": str(resources.queue_settings.visibility_timeout),
            "PROCESSOR_TIMEOUT_SECONDS": str(timeout_seconds),
            "DEADLINE_MARGIN_SECONDS": f"{deadline_margin_for(timeout_seconds, margin):g}",
            "AUTH_MODE": "api_key",
            "API_KEY_HASHES": f"{DEV_OWNER}:{hashlib.sha256(api_key.encode()).hexdigest()}",
            "CORS_ALLOW_ORIGINS": "*",
        }
    )
    if keys_and_events is not None:
        # The API reads keys from SSM as on AWS; the hash above only bootstraps.
        environment.pop("API_KEY_HASHES")
        environment.update(keys_and_events.environment())
    if part_min_bytes is not None:
        environment["PART_MIN_BYTES"] = str(part_min_bytes)
    if part_size_bytes is not None:
        environment["PART_SIZE_BYTES"] = str(part_size_bytes)
    environment.update(extra or {})
    return environment


def deadline_margin_for(timeout_seconds: int, template_margin: str | None = None) -> float:
    """How long before its deadline the processor stops to hand on (or record a timeout):
    the template's margin (the core's default without one), but at most a quarter of a
    short local timeout (``up --function-timeout 10`` would otherwise time every job out
    before it starts)."""
    from audiolift_core.settings import DEADLINE_MARGIN_SECONDS

    margin = float(template_margin) if template_margin else DEADLINE_MARGIN_SECONDS
    return min(margin, timeout_seconds / 4)


class Stack(Service):
    """``with Stack(StackConfig(...)) as stack: stack.info.api_url ...``

    Each start step registers how to undo itself on one ``ExitStack``; ``stop()`` unwinds
    it, newest first, after signalling the child processes (they take longest to exit)."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.state_dir = Path(self.config.state_dir).resolve()
        self.api_key = self.config.api_key or ""  # else known once the state dir is ready
        self.names = ResourceNames.with_prefix(self.config.name_prefix)
        self.moto: MotoServer | None = None
        self.seaweed: SeaweedFS | None = None
        self.dynalite: Dynalite | None = None
        self.bridge: NotificationBridge | None = None
        self.poller: SqsPoller | None = None
        self.workers: WorkerPool | None = None
        self.schedules: list[ScheduledFunction] = []
        self.web: WebServer | None = None
        self._api: tuple[uvicorn.Server, threading.Thread, socket.socket] | None = None
        self.resources: CreatedResources | None = None
        self.info: StackInfo | None = None
        self.s3: S3Client | None = None
        self.dynamodb: DynamoDBClient | None = None
        self.sqs: SQSClient | None = None
        self.timings: dict[str, float] = {}
        self._exits = contextlib.ExitStack()
        self._stop_started = 0.0
        self.keys_and_events: KeysAndEvents | None = None
        self._saved_environment: dict[str, str | None] = {}

    @property
    def stack_file(self) -> Path:
        return self.state_dir / STACK_FILE

    # --- start ---------------------------------------------------------------------------------

    def start(self) -> Stack:
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - started
        assert self.info is not None
        self.info.startup_seconds = round(self.timings["total"], 3)
        self._write_stack_file()
        return self

    def _timed(self, name: str, since: float) -> None:
        self.timings[name] = round(time.monotonic() - since, 3)

    def _on_stop(self, name: str, stop: Callable[[], object]) -> None:
        """Register ``stop`` to run on ``stop()``, timed as ``stop_<name>``."""

        def timed_stop() -> None:
            stop()
            self._timed(f"stop_{name}", self._stop_started)

        self._exits.callback(timed_stop)

    def _start(self) -> None:
        config = self.config
        if config.s3_backend not in ("seaweedfs", "moto"):
            raise ValueError(f"Unknown S3 backend {config.s3_backend!r} (seaweedfs or moto).")
        if config.table_backend not in ("dynalite", "moto"):
            raise ValueError(f"Unknown table backend {config.table_backend!r} (dynalite, moto).")
        self._prepare_state_dir()
        function = processor_function_settings(config.template_path, region=config.region)
        timeout = config.function_timeout or function.timeout_seconds
        self._exits.callback(self._restore_environment)
        # The child processes start first and come up while this process starts moto.
        self._spawn_children()
        self._start_moto()
        self._wait_for_children()
        resources = self._create_resources(timeout)
        keys_and_events = self._set_up_keys_and_events()
        self._set_environment(
            function_environment(
                function,
                resources,
                api_key=self.api_key,
                timeout_seconds=timeout,
                log_level=config.log_level,
                part_min_bytes=config.part_min_bytes,
                part_size_bytes=config.part_size_bytes,
                keys_and_events=keys_and_events,
                sweeper=sweeper_function_settings(config.template_path, region=config.region),
                extra=config.extra_environment,
            )
        )
        api_url = self._start_api() if config.run_api else ""
        if config.run_poller:
            self._start_poller(function, timeout, resources)
            self._start_schedules()
        web_url = self._start_web(api_url) if config.run_api else ""
        # Runs first on stop: the child processes exit while the threads are stopped.
        self._exits.callback(self._signal_children)
        self.info = self._describe(resources, api_url=api_url, web_url=web_url)

    def _prepare_state_dir(self) -> None:
        if self.config.fresh:
            for kept in ("seaweedfs", "dynamodb"):
                shutil.rmtree(self.state_dir / kept, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / DEV_KEY_FILE).unlink()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.stack_file.unlink()  # a stale file from a killed stack
        self.api_key = self.config.api_key or self._kept_dev_key()

    def _kept_dev_key(self) -> str:
        """The dev key of the last run on this state directory (the jobs it keeps stay
        the caller's, and the page's saved URL keeps working), else a new one, kept."""
        path = self.state_dir / DEV_KEY_FILE
        with contextlib.suppress(FileNotFoundError):
            kept = path.read_text().strip()
            if kept:
                return kept
        key = "al_dev_" + secrets.token_urlsafe(24)
        write_private(path, key + "\n")
        return key

    def _spawn_children(self) -> None:
        """SeaweedFS (with the bridge its filer notifies) and dynalite, started from this
        thread: they die with it."""
        config = self.config
        since = time.monotonic()
        if config.s3_backend == "seaweedfs":
            self.bridge = NotificationBridge(
                bucket=self.names.bucket,
                prefix=upload_prefix(config.template_path),
                region=config.region,
            ).start()
            self._on_stop("bridge", self.bridge.stop)
            self.seaweed = SeaweedFS(
                state_dir=self.state_dir,
                webhook=WebhookTarget(self.bridge.url, path_prefixes=(self.bridge.watched_path,)),
                s3_port=config.s3_port,
                memory_limit=config.seaweed_memory_limit,
                fresh=False,
            )
            self._on_stop("seaweedfs", self.seaweed.stop)
            self.seaweed.spawn()
        if config.table_backend == "dynalite":
            self.dynalite = Dynalite(self.state_dir)
            self._on_stop("dynalite", self.dynalite.stop)
            self.dynalite.spawn()
        self._timed("spawn", since)

    def _start_moto(self) -> None:
        since = time.monotonic()
        config = self.config
        self.moto = MotoServer(
            config.moto_port,
            s3_part_min_bytes=(config.part_min_bytes if config.s3_backend == "moto" else None),
        ).start()
        self._on_stop("moto", self.moto.stop)
        self._timed("moto", since)

    def _wait_for_children(self) -> None:
        since = time.monotonic()
        if self.seaweed is not None:
            self.seaweed.wait_ready()
            self._timed("seaweedfs", since)
        if self.dynalite is not None:
            self.dynalite.wait_ready()
            self._timed("dynalite", since)

    def _signal_children(self) -> None:
        for child in (self.seaweed, self.dynalite):
            if child is not None:
                child.terminate()

    def _create_resources(self, function_timeout: int) -> CreatedResources:
        """The AWS variables for the functions, clients, and the template's resources (the
        table and bucket may exist from an earlier run)."""
        assert self.moto is not None
        since = time.monotonic()
        config = self.config
        s3_endpoint = self.seaweed.s3_endpoint if self.seaweed else self.moto.endpoint
        table_endpoint = self.dynalite.endpoint if self.dynalite else self.moto.endpoint
        access_key = self.seaweed.access_key if self.seaweed else "audiolift-dev"
        secret_key = self.seaweed.secret_key if self.seaweed else "audiolift-dev-secret"
        self._set_environment(
            {
                "AWS_ACCESS_KEY_ID": access_key,
                "AWS_SECRET_ACCESS_KEY": secret_key,
                "AWS_DEFAULT_REGION": config.region,
                "AWS_REGION": config.region,
                "AWS_ENDPOINT_URL_S3": s3_endpoint,
                "AWS_ENDPOINT_URL_DYNAMODB": table_endpoint,
                "AWS_ENDPOINT_URL_SQS": self.moto.endpoint,
                "AWS_ENDPOINT_URL_SSM": self.moto.endpoint,
                "AWS_ENDPOINT_URL_EVENTBRIDGE": self.moto.endpoint,
            }
        )
        clients = clients_for(
            {
                "region": config.region,
                "s3_endpoint": s3_endpoint,
                "aws_access_key_id": access_key,
                "aws_secret_access_key": secret_key,
                "aws_endpoint": self.moto.endpoint,
                "dynamodb_endpoint": table_endpoint,
            }
        )
        self.s3, self.dynamodb, self.sqs = clients.s3, clients.dynamodb, clients.sqs
        # SeaweedFS keeps no lifecycle rules that matter locally; its S3 API refuses some.
        self.resources = create_resources(
            clients.s3,
            clients.dynamodb,
            clients.sqs,
            names=self.names,
            template_path=config.template_path,
            with_notifications=config.s3_backend == "moto",
            with_lifecycle=config.s3_backend == "moto",
            with_table_housekeeping=config.table_backend == "moto",
            visibility_timeout=config.visibility_timeout
            or visibility_timeout_for(function_timeout, template_path=config.template_path),
        )
        if self.bridge is not None:
            configuration = bucket_notification_configuration(
                self.resources.queue_arn, template_path=config.template_path
            )
            ids = [c.get("Id") for c in configuration.get("QueueConfigurations", [])]
            self.bridge.configuration_id = str(ids[0]) if ids and ids[0] else "queue-0"
            self.bridge.connect(clients.sqs, self.resources.queue_url, clients.s3)
        self._timed("resources", since)
        return self.resources

    def _set_up_keys_and_events(self) -> KeysAndEvents:
        """The dev key's hash in SSM (the API reads keys from there, as on AWS) and the
        job-events bus, both on moto."""
        import boto3

        assert self.moto is not None
        since = time.monotonic()
        session = boto3.session.Session(
            aws_access_key_id="audiolift-dev",
            aws_secret_access_key="audiolift-dev-secret",
            region_name=self.config.region,
        )
        self.keys_and_events = set_up_keys_and_events(
            session.client("ssm", endpoint_url=self.moto.endpoint),
            session.client("events", endpoint_url=self.moto.endpoint),
            name_prefix=self.config.name_prefix,
            owner=DEV_OWNER,
            api_key=self.api_key,
            template_path=self.config.template_path,
        )
        self._timed("keys_and_events", since)
        return self.keys_and_events

    def _set_environment(self, values: Mapping[str, str]) -> None:
        for name in _FOREIGN_AWS_VARIABLES:
            if name in os.environ:
                self._saved_environment.setdefault(name, os.environ[name])
                del os.environ[name]
        for name, value in values.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        _forget_cached_clients()

    def _restore_environment(self) -> None:
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment.clear()
        _forget_cached_clients()

    def _start_api(self) -> str:
        since = time.monotonic()
        self._on_stop("api", self._stop_api)
        api_url = self._serve_api(self.config.api_port)
        self._timed("api", since)
        return api_url

    def _serve_api(self, port: int) -> str:
        """The API under uvicorn on ``port`` (0: any free one), on a thread of its own;
        returns its URL once it answers."""
        import uvicorn
        from audiolift_api.app import create_app

        app = create_app()  # settings and clients made anew, as in a new sandbox
        api_socket = bound_socket(LOOPBACK, port)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=3,
            )
        )
        thread = threading.Thread(
            target=lambda: server.run(sockets=[api_socket]), name="audiolift-api", daemon=True
        )
        self._api = (server, thread, api_socket)
        thread.start()
        api_url = f"http://{LOOPBACK}:{api_socket.getsockname()[1]}"
        wait_until(
            lambda: bool(server.started) and http_status(f"{api_url}/health") == 200,
            timeout=30,
            what="the API (uvicorn)",
            alive=lambda: None if thread.is_alive() else "uvicorn stopped",
            interval=0.02,
        )
        return api_url

    def _stop_api(self) -> None:
        if self._api is None:
            return
        server, thread, api_socket = self._api
        self._api = None
        server.should_exit = True
        thread.join(timeout=10)
        api_socket.close()

    def restart_api(self) -> float:
        """Stop the API and start it again on the same address, as a new Lambda sandbox
        would start: a new app with settings and clients made anew, nothing kept from the
        old one but what the table and S3 hold. Returns how long it did not answer."""
        assert self.info is not None and self.info.api_url, "the stack runs no API"
        started = time.monotonic()
        self._stop_api()
        _forget_cached_clients()
        self._serve_api(int(self.info.api_url.rsplit(":", 1)[1]))
        return time.monotonic() - started

    def _start_poller(
        self, function: FunctionSettings, timeout: int, resources: CreatedResources
    ) -> None:
        assert self.sqs is not None
        since = time.monotonic()
        config = self.config
        if config.workers > 1 or config.worker_cpus > 0:
            if config.processor_handler is not None:
                raise ValueError("worker processes run the processor's own handler")
            self.workers = WorkerPool(
                count=max(1, config.workers),
                queue_url=resources.queue_url,
                queue_arn=resources.queue_arn,
                log_dir=self.state_dir / "workers",
                cpus_per_worker=config.worker_cpus,
                timeout_seconds=timeout,
                memory_mb=function.memory_mb,
                batch_size=resources.queue_settings.batch_size,
                report_batch_item_failures=resources.queue_settings.report_batch_item_failures,
                wait_seconds=config.poll_wait_seconds,
                region=config.region,
                function_name=f"{config.name_prefix}-processor",
            ).start()
            self._on_stop("workers", self.workers.stop)
            self._timed("workers", since)
            return
        self.poller = SqsPoller(
            self.sqs,
            resources.queue_url,
            queue_arn=resources.queue_arn,
            handler=config.processor_handler,
            function_name=f"{config.name_prefix}-processor",
            timeout_seconds=timeout,
            memory_limit_in_mb=function.memory_mb,
            batch_size=resources.queue_settings.batch_size,
            report_batch_item_failures=resources.queue_settings.report_batch_item_failures,
            wait_seconds=config.poll_wait_seconds,
            region=config.region,
        )
        _ = self.poller.handler  # import the processor now, not on the first upload
        self.poller.start()
        self._on_stop("poller", self.poller.stop)
        self._timed("poller", since)

    def _start_schedules(self) -> None:
        schedules = self.config.schedules
        if schedules is None:
            interval = self.config.sweep_interval_seconds
            installed = importlib.util.find_spec(SWEEPER_HANDLER.split(".")[0]) is not None
            schedules = [(SWEEPER_HANDLER, interval)] if installed and interval > 0 else []
        self.schedules = []
        for number, (handler, interval) in enumerate(schedules):
            scheduled = ScheduledFunction(
                handler,
                interval_seconds=interval,
                function_name=f"{self.config.name_prefix}-scheduled-{number}",
                region=self.config.region,
            ).start()
            self._on_stop(f"schedule_{number}", scheduled.stop)
            self.schedules.append(scheduled)

    def _start_web(self, api_url: str) -> str:
        page = WebServer()
        if not page.built:
            return ""
        self.web = page.start()
        self._on_stop("web", self.web.stop)
        return self.web.page_url(api_url, self.api_key)

    def _describe(self, resources: CreatedResources, *, api_url: str, web_url: str) -> StackInfo:
        assert self.moto is not None and self.s3 is not None
        environment = os.environ
        keys_and_events = self.keys_and_events
        assert keys_and_events is not None
        return StackInfo(
            web_url=web_url,
            api_keys_parameter=keys_and_events.api_keys_parameter,
            api_keys_cache_seconds=keys_and_events.api_keys_cache_seconds,
            event_bus_name=keys_and_events.event_bus_name,
            api_url=api_url,
            s3_endpoint=environment["AWS_ENDPOINT_URL_S3"],
            api_key=self.api_key,
            region=self.config.region,
            bucket=resources.bucket_name,
            table=resources.table_name,
            queue_url=resources.queue_url,
            dlq_url=resources.dlq_url,
            pid=os.getpid(),
            s3_backend=self.config.s3_backend,
            aws_endpoint=self.moto.endpoint,
            dynamodb_endpoint=environment["AWS_ENDPOINT_URL_DYNAMODB"],
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            queue_arn=resources.queue_arn,
            dlq_arn=resources.dlq_arn,
            max_receive_count=resources.queue_settings.max_receive_count,
            visibility_timeout=resources.queue_settings.visibility_timeout,
            state_dir=str(self.state_dir),
            startup_seconds=0.0,
        )

    def _write_stack_file(self) -> None:
        assert self.info is not None
        # It holds the dev key and credentials.
        write_private(self.stack_file, json.dumps(self.info.as_dict(), indent=2) + "\n")

    # --- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything that was started, newest first. Safe to call twice."""
        self._stop_started = time.monotonic()
        if self.info is not None:
            with contextlib.suppress(FileNotFoundError):
                self.stack_file.unlink()
        try:
            self._exits.close()
        finally:
            self.poller = self.web = self.bridge = None
            self.seaweed = self.dynalite = self.moto = None
            self._timed("shutdown", self._stop_started)


def _forget_cached_clients() -> None:
    """The functions' boto3 clients are made once per process from the environment: after
    the stack changes it, make them again (an in-process stack in a test session)."""
    aws = sys.modules.get("audiolift_core.aws")
    if aws is not None:
        aws.forget_clients()
