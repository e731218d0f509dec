"""moto's server, in this process, on 127.0.0.1: DynamoDB and SQS for the local stack, and
optionally a lightweight S3 (then moto itself sends the bucket's ObjectCreated
notifications to the SQS queue, and answers CORS with the bucket's own rules).

``MOTO_DISABLE_GLOBAL_CORS=true`` must be in the environment before moto is imported
(moto.settings reads it once): without it, moto answers every preflight with ``*`` and the
bucket's CORS rules are never exercised. ``S3_UPLOAD_PART_MIN_SIZE`` likewise (moto's
S3 checks the 5 MiB part minimum with it).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import urllib.request
from typing import Any

from .net import LOOPBACK, Service

MOTO_ENVIRONMENT = {"MOTO_DISABLE_GLOBAL_CORS": "true"}


def prepare_environment(*, s3_part_min_bytes: int | None = None) -> None:
    """Set what moto reads at import. Fails if moto was imported with other values."""
    wanted = dict(MOTO_ENVIRONMENT)
    if s3_part_min_bytes is not None:
        wanted["S3_UPLOAD_PART_MIN_SIZE"] = str(s3_part_min_bytes)
    if "moto.settings" in sys.modules:
        import moto.settings

        if not moto.settings.DISABLE_GLOBAL_CORS:
            raise RuntimeError(
                "moto was imported before MOTO_DISABLE_GLOBAL_CORS=true was set; start the "
                "local stack in a fresh process (python -m audiolift_devstack up)."
            )
    os.environ.update(wanted)


class MotoServer(Service):
    """``ThreadedMotoServer`` bound to 127.0.0.1 (``port`` 0: a free port)."""

    def __init__(self, port: int = 0, *, s3_part_min_bytes: int | None = None) -> None:
        self._port = port
        self._s3_part_min_bytes = s3_part_min_bytes
        self._server: Any = None
        self.startup_seconds = 0.0

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def start(self) -> MotoServer:
        started = time.monotonic()
        prepare_environment(s3_part_min_bytes=self._s3_part_min_bytes)
        from moto.server import ThreadedMotoServer

        # One access-log line per request would drown everything else.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=self._port, verbose=False)
        self._server.start()
        # moto keeps its backends per process: a server started after another in the same
        # process (tests) would see its queues and tables. Start empty, as a server does.
        self.reset()
        self.startup_seconds = time.monotonic() - started
        return self

    def reset(self) -> None:
        """Forget every resource (moto's own ``/moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self._server is not None:
            self.reset()
            self._server.stop()
            self._server = None
