"""Loopback helpers for the stack, its tests and benchmarks: free ports, bound sockets,
readiness waits, and the start/stop base class of every part of the stack."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Self

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the kernel's pick). Servers that take a bound
    socket should get one instead: between this call and their bind, someone else could."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def bound_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port), for servers that accept
    a pre-bound socket (uvicorn, http.server): no window for another process to take it.
    The protocol is named: asyncio turns Nagle's algorithm off only on sockets whose
    ``proto`` is IPPROTO_TCP, and with it on, every answer on a kept-alive connection whose
    body is written after its headers waited ~40 ms for the client's delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def http_status(url: str, *, timeout: float = 1.0) -> int | None:
    """The HTTP status ``GET url`` answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, urllib.error.URLError):
        return None


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    alive: Callable[[], str | None] | None = None,
) -> float:
    """Poll ``condition`` until it holds; return the seconds waited. ``alive`` returns a
    reason when the thing being waited for has died, to fail at once instead of timing out."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if condition():
            return time.monotonic() - started
        if alive is not None:
            reason = alive()
            if reason:
                raise RuntimeError(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


class Service:
    """A part of the stack that is started and stopped, usable as a context manager."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(server: ThreadingHTTPServer, name: str) -> threading.Thread:
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True
    )
    thread.start()
    return thread


def stop_server(server: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGKILL when the thread
    that started it dies (Linux's PR_SET_PDEATHSIG), so a SIGKILLed stack leaves no
    server behind. Start children from a thread that lives as long as they should (the
    stack starts them from the thread that runs it). Elsewhere than Linux: nothing."""
    import ctypes
    import os
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return lambda: None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls into it
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def in_child() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal would come
            os._exit(1)

    return in_child
