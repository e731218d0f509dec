"""The whole pipeline on one machine, no Docker: moto (DynamoDB, SQS), SeaweedFS (S3; or
moto's S3), the bridge (filer events -> S3 notifications on the queue), the upload API under
uvicorn, and the poller that feeds the processor's Lambda handler.

Everything listens on 127.0.0.1 and keeps its state under ``state_dir``. moto, the bridge,
uvicorn and the poller run as threads of this process; SeaweedFS as child processes in one
process group. ``Stack`` is a context manager; ``python -m audiolift_devstack up`` runs one
until Ctrl-C / SIGTERM.

The stack is fresh on every start (moto keeps no state, so SeaweedFS's data is wiped too).
It writes ``<state_dir>/stack.json`` (api_url, s3_endpoint, api_key, ...) once everything
answers, and removes it on a clean stop.

The stack sets AWS_* and the functions' variables in ``os.environ`` before importing the
API and the processor (their settings and boto3 clients are read once): run one stack per
process, and not in a process where moto's in-process mock is active.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .bridge import NotificationBridge
from .clients import clients_for
from .moto_server import MotoServer
from .net import LOOPBACK, Service, bound_socket, http_status, wait_until
from .poller import Handler, SqsPoller
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
)
from .web import WebServer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("audiolift_devstack")

S3Backend = Literal["seaweedfs", "moto"]
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
    template = load_template(template_path)
    resolver = Resolver.for_template(template, region=region)
    properties = template["Resources"][PROCESSOR_ID].get("Properties") or {}
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


@dataclass
class StackConfig:
    state_dir: Path = Path(".state")
    s3_backend: S3Backend = "seaweedfs"
    api_port: int = 0  # 0: any free port
    moto_port: int = 0
    s3_port: int | None = None  # SeaweedFS's S3 port (None: any free port)
    region: str = "us-east-1"
    name_prefix: str = "audiolift-local"
    api_key: str | None = None  # None: a new random dev key
    part_min_bytes: int | None = None  # PART_MIN_BYTES for the API (None: S3's 5 MiB)
    part_size_bytes: int | None = None  # PART_SIZE_BYTES (the API's preferred part size)
    visibility_timeout: int | None = None  # None: the template's (6x the function timeout)
    function_timeout: int | None = None  # None: the template's
    run_api: bool = True
    run_poller: bool = True
    processor_handler: Handler | None = None  # None: audiolift_processor.handler.handler
    poll_wait_seconds: int = 1  # the long poll; also how long a stop may wait for it
    log_level: str = "WARNING"  # POWERTOOLS_LOG_LEVEL for the API and the processor
    seaweed_memory_limit: str = "512MiB"
    template_path: Path = TEMPLATE_PATH
    extra_environment: Mapping[str, str] = field(default_factory=dict)


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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def load(cls, path: Path | str) -> StackInfo:
        data = json.loads(Path(path).read_text())
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class Stack(Service):
    """``with Stack(StackConfig(...)) as stack: stack.info.api_url ...``"""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.state_dir = Path(self.config.state_dir).resolve()
        self.api_key = self.config.api_key or "al_dev_" + secrets.token_urlsafe(24)
        self.names = ResourceNames.with_prefix(self.config.name_prefix)
        self.moto: MotoServer | None = None
        self.seaweed: SeaweedFS | None = None
        self.bridge: NotificationBridge | None = None
        self.poller: SqsPoller | None = None
        self.resources: CreatedResources | None = None
        self.info: StackInfo | None = None
        self._uvicorn: Any = None
        self._uvicorn_thread: threading.Thread | None = None
        self._api_socket: socket.socket | None = None
        self.s3: S3Client | None = None
        self.dynamodb: DynamoDBClient | None = None
        self.sqs: SQSClient | None = None
        self.timings: dict[str, float] = {}
        self._saved_environment: dict[str, str | None] = {}
        self.web: WebServer | None = None

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

    def _start(self) -> None:
        config = self.config
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.stack_file.unlink()  # a stale file from a killed stack
        prefix = upload_prefix(config.template_path)
        function = processor_function_settings(config.template_path, region=config.region)

        # SeaweedFS starts in the background (its own processes) while this process imports
        # and starts moto, which is the slower half.
        seaweed_error: list[BaseException] = []
        seaweed_thread: threading.Thread | None = None
        if config.s3_backend == "seaweedfs":
            since = time.monotonic()
            self.bridge = NotificationBridge(
                bucket=self.names.bucket, prefix=prefix, region=config.region
            ).start()
            self.seaweed = SeaweedFS(
                state_dir=self.state_dir,
                webhook=WebhookTarget(self.bridge.url, path_prefixes=(self.bridge.watched_path,)),
                s3_port=config.s3_port,
                memory_limit=config.seaweed_memory_limit,
            )
            seaweed = self.seaweed

            def start_seaweed() -> None:
                try:
                    seaweed.start()
                    self._timed("seaweedfs", since)
                except BaseException as error:
                    seaweed_error.append(error)

            seaweed_thread = threading.Thread(target=start_seaweed, name="seaweedfs-start")
            seaweed_thread.start()
        elif config.s3_backend != "moto":
            raise ValueError(f"Unknown S3 backend {config.s3_backend!r} (seaweedfs or moto).")

        since = time.monotonic()
        self.moto = MotoServer(
            config.moto_port,
            s3_part_min_bytes=(config.part_min_bytes if config.s3_backend == "moto" else None),
        ).start()
        self._timed("moto", since)

        if seaweed_thread is not None:
            seaweed_thread.join()
            if seaweed_error:
                raise seaweed_error[0]
        assert self.moto is not None
        s3_endpoint = self.seaweed.s3_endpoint if self.seaweed else self.moto.endpoint
        access_key = self.seaweed.access_key if self.seaweed else "audiolift-dev"
        secret_key = self.seaweed.secret_key if self.seaweed else "audiolift-dev-secret"

        since = time.monotonic()
        self._set_environment(
            {
                "AWS_ACCESS_KEY_ID": access_key,
                "AWS_SECRET_ACCESS_KEY": secret_key,
                "AWS_DEFAULT_REGION": config.region,
                "AWS_REGION": config.region,
                "AWS_ENDPOINT_URL_S3": s3_endpoint,
                "AWS_ENDPOINT_URL_DYNAMODB": self.moto.endpoint,
                "AWS_ENDPOINT_URL_SQS": self.moto.endpoint,
            }
        )
        self._make_clients(s3_endpoint, access_key, secret_key)
        assert self.s3 is not None and self.dynamodb is not None and self.sqs is not None
        # SeaweedFS keeps no lifecycle rules that matter locally; its S3 API refuses some.
        self.resources = create_resources(
            self.s3,
            self.dynamodb,
            self.sqs,
            names=self.names,
            template_path=config.template_path,
            with_notifications=config.s3_backend == "moto",
            with_lifecycle=config.s3_backend == "moto",
            visibility_timeout=config.visibility_timeout,
        )
        resources = self.resources
        if self.bridge is not None:
            configuration = bucket_notification_configuration(
                resources.queue_arn, template_path=config.template_path
            )
            ids = [c.get("Id") for c in configuration.get("QueueConfigurations", [])]
            self.bridge.configuration_id = str(ids[0]) if ids and ids[0] else "queue-0"
            self.bridge.connect(self.sqs, resources.queue_url, self.s3)
        self._timed("resources", since)

        api_key_hash = hashlib.sha256(self.api_key.encode()).hexdigest()
        # The functions' settings, as the template gives them to the deployed functions.
        function_environment = dict(function.environment)
        function_environment.update(
            {
                "JOBS_TABLE": resources.table_name,
                "UPLOAD_BUCKET": resources.bucket_name,
                "POWERTOOLS_METRICS_NAMESPACE": "audiolift",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "MAX_RECEIVE_COUNT": str(resources.queue_settings.max_receive_count),
                "AUTH_MODE": "api_key",
                "API_KEY_HASHES": f"{DEV_OWNER}:{api_key_hash}",
                "CORS_ALLOW_ORIGINS": "*",
            }
        )
        function_environment.pop("POWERTOOLS_SERVICE_NAME", None)  # one per function
        if config.part_min_bytes is not None:
            function_environment["PART_MIN_BYTES"] = str(config.part_min_bytes)
        if config.part_size_bytes is not None:
            function_environment["PART_SIZE_BYTES"] = str(config.part_size_bytes)
        function_environment.update(config.extra_environment)
        self._set_environment(function_environment)

        api_url = ""
        if config.run_api:
            since = time.monotonic()
            api_url = self._start_api()
            self._timed("api", since)

        if config.run_poller:
            since = time.monotonic()
            timeout = config.function_timeout or function.timeout_seconds
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
            self._timed("poller", since)

        web_url = ""
        if config.run_api:
            page = WebServer()
            if page.built:
                self.web = page.start()
                web_url = self.web.page_url(api_url, self.api_key)

        self.info = StackInfo(
            web_url=web_url,
            api_url=api_url,
            s3_endpoint=s3_endpoint,
            api_key=self.api_key,
            region=config.region,
            bucket=resources.bucket_name,
            table=resources.table_name,
            queue_url=resources.queue_url,
            dlq_url=resources.dlq_url,
            pid=os.getpid(),
            s3_backend=config.s3_backend,
            aws_endpoint=self.moto.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            queue_arn=resources.queue_arn,
            dlq_arn=resources.dlq_arn,
            max_receive_count=resources.queue_settings.max_receive_count,
            visibility_timeout=resources.queue_settings.visibility_timeout,
            state_dir=str(self.state_dir),
            startup_seconds=0.0,
        )

    def _set_environment(self, values: Mapping[str, str]) -> None:
        for name in _FOREIGN_AWS_VARIABLES:
            if name in os.environ:
                self._saved_environment.setdefault(name, os.environ[name])
                del os.environ[name]
        for name, value in values.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_environment(self) -> None:
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment.clear()

    def _make_clients(self, s3_endpoint: str, access_key: str, secret_key: str) -> None:
        assert self.moto is not None
        clients = clients_for(
            {
                "region": self.config.region,
                "s3_endpoint": s3_endpoint,
                "aws_access_key_id": access_key,
                "aws_secret_access_key": secret_key,
                "aws_endpoint": self.moto.endpoint,
            }
        )
        self.s3, self.dynamodb, self.sqs = clients.s3, clients.dynamodb, clients.sqs

    def _start_api(self) -> str:
        import uvicorn
        from audiolift_api.app import create_app

        app = create_app()
        self._api_socket = bound_socket(LOOPBACK, self.config.api_port)
        port = self._api_socket.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=3,
            )
        )
        self._uvicorn = server
        sock = self._api_socket
        self._uvicorn_thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="audiolift-api", daemon=True
        )
        self._uvicorn_thread.start()
        api_url = f"http://{LOOPBACK}:{port}"
        thread = self._uvicorn_thread
        wait_until(
            lambda: bool(server.started) and http_status(f"{api_url}/health") == 200,
            timeout=30,
            what="the API (uvicorn)",
            alive=lambda: None if thread.is_alive() else "uvicorn stopped",
            interval=0.02,
        )
        return api_url

    def _write_stack_file(self) -> None:
        assert self.info is not None
        temporary = self.stack_file.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.info.as_dict(), indent=2) + "\n")
        temporary.chmod(0o600)  # it holds the dev key and credentials
        temporary.replace(self.stack_file)  # readers never see half a file

    # --- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything that was started, newest first. Safe to call twice."""
        started = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            if self.info is not None and self.stack_file.exists():
                self.stack_file.unlink()
        # SeaweedFS's processes take a moment to exit: signal them first, reap them last.
        if self.seaweed is not None:
            self.seaweed.terminate()
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self.poller is not None:
            self.poller.stop()
            self.poller = None
            self._timed("stop_poller", started)
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if self._uvicorn_thread is not None:
                self._uvicorn_thread.join(timeout=10)
            self._uvicorn = None
            self._uvicorn_thread = None
            self._timed("stop_api", started)
        if self._api_socket is not None:
            self._api_socket.close()
            self._api_socket = None
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        if self.seaweed is not None:
            self.seaweed.stop()
            self.seaweed = None
            self._timed("stop_seaweedfs", started)
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        self._restore_environment()
        self._timed("shutdown", started)
