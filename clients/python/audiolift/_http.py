"""Sending one request with retries, and turning error responses into exceptions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from ._errors import TransportError, api_error
from ._retry import RETRYABLE_EXCEPTIONS, RetryConfig, is_retryable_status


class Stopped(Exception):
    """Another part failed or the upload was interrupted: stop quietly."""


def send_with_retries(
    client: httpx.Client,
    make_request: Callable[[], httpx.Request],
    retry: RetryConfig,
    *,
    stop: threading.Event | None = None,
    on_retry: Callable[[], None] | None = None,
) -> httpx.Response:
    """Send, retrying dropped connections, timeouts, 5xx and 429 with backoff. Returns the
    last response (maybe an error status the caller interprets); raises TransportError when
    the last attempt got no response at all. ``make_request`` is called per attempt, so a
    streamed body is produced afresh each time."""
    attempt = 0
    while True:
        if stop is not None and stop.is_set():
            raise Stopped()
        request = make_request()
        try:
            response = client.send(request)
        except RETRYABLE_EXCEPTIONS as error:
            if attempt + 1 >= retry.max_attempts:
                raise TransportError(
                    f"{request.method} {_where(request)} failed after {attempt + 1} "
                    f"attempt(s): {_describe(error)}"
                ) from error
            delay = retry.delay(attempt, None)
        else:
            if not is_retryable_status(response.status_code) or attempt + 1 >= retry.max_attempts:
                return response
            delay = retry.delay(attempt, response)
            response.close()
        if on_retry is not None:
            on_retry()
        attempt += 1
        if stop is not None and retry.sleep is None:
            if stop.wait(delay):
                raise Stopped()
        else:
            retry.pause(delay)


def _where(request: httpx.Request) -> str:
    # Never print a presigned URL's query string: it is a credential for a while.
    url = request.url
    return f"{url.scheme}://{url.netloc.decode()}{url.path}"


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def raise_for_api_error(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise api_error(
            response.status_code,
            json_or_none(response),
            fallback=response.reason_phrase or "",
        )
