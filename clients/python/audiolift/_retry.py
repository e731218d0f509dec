"""Retries: exponential backoff with full jitter, for every request the SDK sends."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Connection refused/reset/dropped, timeouts, a server closing mid-response.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TransportError,  # ConnectError, ReadError, WriteError, RemoteProtocolError, timeouts
)


@dataclass(frozen=True)
class RetryConfig:
    """How every request is retried.

    ``max_attempts`` counts the first try. The n-th retry sleeps a uniformly random time in
    ``[0, min(max_backoff, initial_backoff * 2**n)]`` (full jitter), or what a 429/503's
    ``Retry-After`` asks for (capped at ``max_retry_after``)."""

    max_attempts: int = 6
    initial_backoff: float = 0.25
    max_backoff: float = 20.0
    max_retry_after: float = 60.0
    # Injectable for tests: no real sleeping, deterministic jitter.
    # (None: real sleeping, cut short when an upload is stopping).
    sleep: Callable[[float], None] | None = field(default=None, compare=False, repr=False)
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff times must not be negative")

    def pause(self, seconds: float) -> None:
        (self.sleep or time.sleep)(seconds)

    def backoff(self, retry_number: int) -> float:
        """The delay before retry ``retry_number`` (0-based), full jitter."""
        ceiling = min(self.max_backoff, self.initial_backoff * (2**retry_number))
        return ceiling * self.random()

    def delay(self, retry_number: int, response: httpx.Response | None) -> float:
        if response is not None:
            asked = retry_after_seconds(response.headers.get("retry-after"))
            if asked is not None:
                return min(asked, self.max_retry_after)
        return self.backoff(retry_number)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500
