"""S3RangeReader against moto's S3 (in process, ``mock_aws``).

The only "fake transport" is botocore's own event system on the client under test:
``before-send`` handlers count the ranged GETs (and can answer a request with a 503 or
raise a dropped-connection error before it reaches moto), and ``after-call`` handlers can
swap a response body for one that breaks half-way, the way a reset connection does.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import numpy as np
import pytest
import soundfile as sf
from audiolift_core.aws import CallLimits, s3_client
from audiolift_core.errors import (
    AudioliftError,
    NotFound,
    ObjectChanged,
    ObjectMissing,
    TransientError,
)
from audiolift_devstack.clients import local_s3_config
from audiolift_processor.s3reader import RetryPolicy, S3RangeReader
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from botocore.response import StreamingBody
from moto import mock_aws
from urllib3.exceptions import ProtocolError

BUCKET = "audiolift-reader-test"
KEY = "uploads/job-1"
KiB = 1024
MiB = 1024 * KiB

# Fast retries: the tests check the attempts, not the waiting.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.005)


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Wire:
    """What went over the (botocore) wire for one client."""

    gets: list[tuple[int, int]] = field(default_factory=list)  # inclusive byte ranges
    if_match: list[str | None] = field(default_factory=list)
    heads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bytes_requested(self) -> int:
        return sum(last - first + 1 for first, last in self.gets)


def _header(request: Any, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        # One attempt per call at botocore's level: retries in these tests are the
        # reader's own, so they can be counted exactly.
        client = boto3.client("s3", config=Config(retries={"total_max_attempts": 1}))
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def wire(s3: Any) -> Wire:
    record = Wire()

    def on_send(request: Any, **_: Any) -> None:
        with record.lock:
            if request.method == "HEAD":
                record.heads += 1
                return
            first, last = _header(request, "Range").removeprefix("bytes=").split("-")  # type: ignore[union-attr]
            record.gets.append((int(first), int(last)))
            record.if_match.append(_header(request, "If-Match"))

    # register_first: moto answers in its own before-send handler, which would stop
    # the event before a handler registered after it.
    s3.meta.events.register_first("before-send.s3.GetObject", on_send)
    s3.meta.events.register_first("before-send.s3.HeadObject", on_send)
    return record


def _put(s3: Any, data: bytes, key: str = KEY) -> str:
    return str(s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"])


def _payload(size: int) -> bytes:
    return np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()


def _reader(s3: Any, **kwargs: Any) -> S3RangeReader:
    kwargs.setdefault("retry", FAST_RETRY)
    return S3RangeReader(s3, BUCKET, kwargs.pop("key", KEY), **kwargs)


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def _error_response(request: Any, status: int, code: str) -> AWSResponse:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected</Message></Error>"
    ).encode()
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/xml"
    return AWSResponse(request.url, status, headers, _Raw(body))


def _fail_first(
    s3: Any, count: int, make: Callable[[Any], AWSResponse | None], event: str = "GetObject"
) -> list[int]:
    """Make the first ``count`` requests fail with ``make(request)`` (which returns an
    error response or raises). Returns a one-element list counting the injected faults."""
    injected = [0]
    lock = threading.Lock()

    def on_send(request: Any, **_: Any) -> AWSResponse | None:
        with lock:
            if injected[0] >= count:
                return None
            injected[0] += 1
        return make(request)

    s3.meta.events.register_first(f"before-send.s3.{event}", on_send)
    return injected


# --- ranged GETs, the ETag pin, the cache ----------------------------------------------


def test_sequential_read_uses_fixed_size_ranged_gets_pinned_to_the_etag(
    s3: Any, wire: Wire
) -> None:
    data = _payload(1 * MiB + 123)
    etag = _put(s3, data)
    chunk = 128 * KiB

    with _reader(s3, etag=etag, size=len(data), chunk_size=chunk, read_ahead=2) as reader:
        assert reader.read() == data
        stats = reader.stats

    nchunks = -(-len(data) // chunk)
    assert sorted(wire.gets) == [
        (i * chunk, min((i + 1) * chunk, len(data)) - 1) for i in range(nchunks)
    ]
    assert set(wire.if_match) == {etag}
    assert wire.heads == 0  # etag and size were given
    assert wire.bytes_requested == len(data)
    assert stats.gets == nchunks
    assert stats.bytes_fetched == len(data)
    assert stats.retries == 0


def test_small_reads_are_served_from_the_chunk_in_memory(s3: Any, wire: Wire) -> None:
    data = _payload(300 * KiB)
    _put(s3, data)
    with _reader(s3, chunk_size=64 * KiB, read_ahead=0) as reader:
        assert wire.heads == 1  # no etag/size given: one HEAD
        pieces = []
        while piece := reader.read(1000):
            pieces.append(piece)
        assert b"".join(pieces) == data
        assert len(wire.gets) == 5  # 300 KiB in 64 KiB ranges
        assert reader.stats.cache_hits > 250


def test_seek_back_to_the_header_hits_the_cache(s3: Any, wire: Wire) -> None:
    data = _payload(512 * KiB)
    etag = _put(s3, data)
    with _reader(
        s3, etag=etag, size=len(data), chunk_size=64 * KiB, cache_chunks=2, read_ahead=0
    ) as reader:
        header = reader.read(44)
        reader.seek(70 * KiB)
        middle = reader.read(10)
        reader.seek(0)
        assert reader.read(44) == header == data[:44]
        assert middle == data[70 * KiB : 70 * KiB + 10]
        assert len(wire.gets) == 2
        # A third distinct chunk evicts the least recently used one (chunk 1).
        reader.seek(300 * KiB)
        reader.read(1)
        reader.seek(70 * KiB)
        reader.read(1)
        assert wire.gets[-1] == (64 * KiB, 128 * KiB - 1)
        assert len(wire.gets) == 4


def test_file_object_semantics(s3: Any, wire: Wire) -> None:
    data = _payload(100 * KiB)
    etag = _put(s3, data)
    reader = _reader(s3, etag=etag.strip('"'), size=len(data), chunk_size=16 * KiB)
    assert reader.etag == etag  # an S3 event's bare ETag is quoted for If-Match
    assert reader.readable() and reader.seekable() and not reader.writable()
    assert reader.mode == "rb"
    assert reader.seek(0, io.SEEK_END) == len(data)
    assert reader.read(10) == b""
    assert reader.seek(-10, io.SEEK_END) == len(data) - 10
    assert reader.read() == data[-10:]
    reader.seek(5)
    assert reader.seek(7, io.SEEK_CUR) == 12
    buf = bytearray(20)
    assert reader.readinto(buf) == 20 and bytes(buf) == data[12:32]
    assert reader.tell() == 32
    reader.seek(len(data) + 100)
    assert reader.readinto(buf) == 0
    with pytest.raises(ValueError):
        reader.seek(-1)
    reader.close()
    assert reader.closed
    with pytest.raises(ValueError):
        reader.read(1)
    assert reader.error is None
    assert set(wire.if_match) == {etag}


def test_zero_byte_object_needs_no_get(s3: Any, wire: Wire) -> None:
    etag = _put(s3, b"")
    with _reader(s3, etag=etag, size=0) as reader:
        assert reader.read() == b""
        assert reader.readinto(bytearray(10)) == 0
    assert wire.gets == []
    assert reader.error is None


def test_overwritten_mid_read_is_object_changed(s3: Any, wire: Wire) -> None:
    data = _payload(256 * KiB)
    etag = _put(s3, data)
    with _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=0) as reader:
        assert reader.read(64 * KiB) == data[: 64 * KiB]
        _put(s3, _payload(256 * KiB + 1))  # a new version under the same key
        buf = bytearray(128 * KiB)
        assert reader.readinto(buf) == 0  # short, no exception: soundfile would swallow it
        assert isinstance(reader.error, ObjectChanged)
        with pytest.raises(ObjectChanged) as raised:
            reader.raise_if_failed()
        assert raised.value.code == "object_changed"
        assert reader.read(10) == b""  # stays failed
        assert reader.stats.retries == 0  # a 412 is final
    assert len(wire.gets) == 2
    assert set(wire.if_match) == {etag}


def test_short_read_returns_what_was_read_before_the_failure(s3: Any, wire: Wire) -> None:
    data = _payload(256 * KiB)
    etag = _put(s3, data)
    with _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=0) as reader:
        reader.seek(60 * KiB)
        reader.read(1)  # chunk 0 now cached
        s3.delete_object(Bucket=BUCKET, Key=KEY)
        buf = bytearray(10 * KiB)
        assert reader.readinto(buf) == 4 * KiB - 1  # the rest of chunk 0, then NoSuchKey
        assert bytes(buf[: 4 * KiB - 1]) == data[60 * KiB + 1 : 64 * KiB]
        with pytest.raises(ObjectMissing, match="deleted") as raised:
            reader.raise_if_failed()
        assert raised.value.code == "object_missing"


def test_stale_etag_or_missing_object_fail_at_open(s3: Any, wire: Wire) -> None:
    etag = _put(s3, b"first version")
    _put(s3, b"second version")
    with pytest.raises(ObjectChanged):
        _reader(s3, etag=etag)  # size unknown: HEAD pinned to the old ETag
    with pytest.raises(NotFound):
        _reader(s3, key="uploads/nothing-here")
    with pytest.raises(ObjectMissing):
        _reader(s3, key="uploads/nothing-here", etag='"0123"')  # the announced one is gone


# --- the SHA-256 ----------------------------------------------------------------------------


def test_sha256_of_a_sequential_read_needs_no_extra_get(s3: Any, wire: Wire) -> None:
    data = _payload(300 * KiB)
    etag = _put(s3, data)
    with _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=2) as reader:
        while reader.read(5000):
            pass
        assert reader.sha256() == hashlib.sha256(data).hexdigest()
        assert reader.sha256() == hashlib.sha256(data).hexdigest()  # idempotent
        stats = reader.stats
    assert len(wire.gets) == 5
    assert (stats.bytes_hashed, stats.bytes_hashed_late) == (len(data), 0)


def test_sha256_fetches_only_what_the_reader_never_used(s3: Any, wire: Wire) -> None:
    data = _payload(8 * 64 * KiB)
    etag = _put(s3, data)
    chunk = 64 * KiB
    with _reader(
        s3, etag=etag, size=len(data), chunk_size=chunk, read_ahead=0, cache_chunks=1
    ) as reader:
        # A decoder that looks at the end first, then reads three chunks and stops.
        reader.seek(len(data) - 100)
        assert reader.read(100) == data[-100:]
        reader.seek(0)
        assert reader.read(3 * chunk) == data[: 3 * chunk]
        used = len(wire.gets)
        checked: list[int] = []
        digest = reader.sha256(between_chunks=lambda: checked.append(1))
        stats = reader.stats
    assert digest == hashlib.sha256(data).hexdigest()
    # The unused chunks once each, in order (the end again: it left the one-chunk cache).
    assert wire.gets[used:] == [(i * chunk, (i + 1) * chunk - 1) for i in range(3, 8)]
    assert stats.bytes_hashed_late == 5 * chunk
    assert len(checked) == 5


def test_without_hashing_while_reading_sha256_reads_the_object_again(s3: Any, wire: Wire) -> None:
    data = _payload(200 * KiB)
    etag = _put(s3, data)
    with _reader(
        s3,
        etag=etag,
        size=len(data),
        chunk_size=64 * KiB,
        read_ahead=0,
        cache_chunks=1,
        hash_while_reading=False,
    ) as reader:
        assert reader.read() == data
        assert reader.sha256() == hashlib.sha256(data).hexdigest()
        assert reader.stats.bytes_hashed_late == len(data)
    assert len(wire.gets) == 4 + 4  # the whole object a second time


def test_sha256_of_an_empty_object(s3: Any, wire: Wire) -> None:
    etag = _put(s3, b"")
    with _reader(s3, etag=etag, size=0) as reader:
        assert reader.sha256() == hashlib.sha256(b"").hexdigest()
    assert wire.gets == []


# --- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "SlowDown"), (500, "InternalError"), (429, "TooManyRequests")],
)
def test_throttling_and_5xx_are_retried(s3: Any, wire: Wire, status: int, code: str) -> None:
    data = _payload(200 * KiB)
    etag = _put(s3, data)
    injected = _fail_first(s3, 2, lambda request: _error_response(request, status, code))
    with _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=0) as reader:
        assert reader.read() == data
        assert reader.error is None
        assert reader.stats.retries == 2
        assert reader.stats.gets == 4 + 2
    assert injected == [2]
    assert wire.gets[:3] == [(0, 64 * KiB - 1)] * 3  # the first range, twice more


@pytest.mark.parametrize(
    "fault",
    [
        lambda request: (_ for _ in ()).throw(ConnectionClosedError(endpoint_url=request.url)),
        lambda request: (_ for _ in ()).throw(ReadTimeoutError(endpoint_url=request.url)),
    ],
    ids=["connection-closed", "read-timeout"],
)
def test_dropped_connections_are_retried(s3: Any, wire: Wire, fault: Any) -> None:
    data = _payload(200 * KiB)
    etag = _put(s3, data)
    _fail_first(s3, 3, fault)
    with _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=2) as reader:
        assert reader.read() == data
        assert reader.stats.retries == 3
        assert reader.stats.bytes_fetched == len(data)
    assert len(wire.gets) == 4 + 3
    assert {first for first, _ in wire.gets} == {0, 64 * KiB, 128 * KiB, 192 * KiB}


class _BreakingRaw(io.BytesIO):
    """A body that delivers ``good`` bytes, then fails like a reset connection."""

    def __init__(self, data: bytes, good: int, error: Exception) -> None:
        super().__init__(data[:good])
        self._error = error

    def read(self, size: int | None = -1) -> bytes:
        piece = super().read(size)
        if not piece:
            raise self._error
        return piece

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        if not count:
            raise self._error
        return count


@pytest.mark.parametrize(
    "error", [ProtocolError("Connection broken: reset by peer"), TimeoutError("timed out")]
)
def test_a_body_broken_mid_transfer_is_fetched_again(s3: Any, wire: Wire, error: Exception) -> None:
    data = _payload(256 * KiB)
    etag = _put(s3, data)
    broken = [0]

    def break_first_body(parsed: dict[str, Any], **_: Any) -> None:
        if broken[0] == 0 and "Body" in parsed:
            broken[0] += 1
            body = parsed["Body"].read()
            parsed["Body"] = StreamingBody(_BreakingRaw(body, 1000, error), len(body))

    s3.meta.events.register("after-call.s3.GetObject", break_first_body)
    with _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=0) as reader:
        assert reader.read() == data
        stats = reader.stats
    assert broken == [1]
    assert stats.retries == 1
    assert stats.gets == 5
    assert stats.bytes_fetched == len(data) + 1000  # the broken body's bytes count too
    assert wire.gets[0] == wire.gets[1]  # the same range again


def test_a_truncated_body_is_fetched_again(s3: Any, wire: Wire) -> None:
    data = _payload(128 * KiB)
    etag = _put(s3, data)
    truncated = [0]

    def truncate_first_body(parsed: dict[str, Any], **_: Any) -> None:
        if truncated[0] == 0 and "Body" in parsed:
            truncated[0] += 1
            body = parsed["Body"].read()
            # A body that simply ends early (no exception): the length check catches it.
            parsed["Body"] = StreamingBody(io.BytesIO(body[:-1]), len(body) - 1)

    s3.meta.events.register("after-call.s3.GetObject", truncate_first_body)
    with _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=0) as reader:
        assert reader.read() == data
        assert reader.stats.retries == 1


def test_retries_exhausted_is_a_transient_error(s3: Any, wire: Wire) -> None:
    data = _payload(200 * KiB)
    etag = _put(s3, data)
    _fail_first(s3, 1000, lambda request: _error_response(request, 503, "SlowDown"))
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)
    with _reader(
        s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=0, retry=policy
    ) as reader:
        buf = bytearray(len(data))
        assert reader.readinto(buf) == 0
        assert isinstance(reader.error, TransientError)
        with pytest.raises(TransientError, match="failed 3 times") as raised:
            reader.raise_if_failed()
        assert raised.value.code == "service_unavailable"
        stats = reader.stats
    assert stats.gets == 3
    assert stats.retries == 2


def test_one_retry_layer_on_the_production_client(s3: Any) -> None:
    """The processor's reader client (``s3_client(CallLimits(total_max_attempts=1))``, made
    as the handler makes it) lets the reader's policy alone decide: every failed range is sent
    ``max_attempts`` times in all, not ``max_attempts`` x botocore's attempts."""
    data = _payload(200 * KiB)
    etag = _put(s3, data)
    # Uncached: the hooks stay on this client.
    client = s3_client.__wrapped__(CallLimits(total_max_attempts=1))
    sent: list[str] = []

    def count(request: Any, **_: Any) -> None:
        sent.append(request.method)

    # Counted before the fault answers (both "first": the earlier one runs first).
    client.meta.events.register_first("before-send.s3.GetObject", count)
    _fail_first(client, 1000, lambda request: _error_response(request, 503, "SlowDown"))
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)
    with S3RangeReader(
        client, BUCKET, KEY, etag=etag, size=len(data), read_ahead=0, retry=policy
    ) as reader:
        assert reader.read() == b""
        with pytest.raises(TransientError, match="failed 3 times"):
            reader.raise_if_failed()
    assert sent == ["GET"] * 3


def test_access_denied_is_not_retried(s3: Any, wire: Wire) -> None:
    data = _payload(10 * KiB)
    etag = _put(s3, data)
    _fail_first(s3, 1000, lambda request: _error_response(request, 403, "AccessDenied"))
    with _reader(s3, etag=etag, size=len(data)) as reader:
        assert reader.read() == b""
        assert isinstance(reader.error, AudioliftError)
        assert "AccessDenied" in reader.error.details["error"]
        assert BUCKET not in reader.error.message  # no internals in what a job may show
        assert reader.stats.gets == 1


def test_backoff_is_exponential_with_full_jitter() -> None:
    import random

    policy = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=4.0, rng=random.Random(7))
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        delays = [policy.backoff(failures) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # jitter spans the whole interval
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# --- read-ahead, memory, threads ----------------------------------------------------------


def test_memory_is_bounded_by_cache_plus_read_ahead_buffers(s3: Any, wire: Wire) -> None:
    data = _payload(4 * MiB)
    etag = _put(s3, data)
    chunk = 64 * KiB
    reader_module = [tracemalloc.Filter(True, "*audiolift_processor/s3reader.py")]
    held_by_reader = []
    with _reader(
        s3, etag=etag, size=len(data), chunk_size=chunk, cache_chunks=2, read_ahead=3
    ) as reader:
        most = 0
        tracemalloc.start()
        try:
            block = bytearray(10_000)
            view = memoryview(block)
            total = 0
            calls = 0
            while count := reader.readinto(block):
                assert view[:count] == data[total : total + count]
                total += count
                calls += 1
                most = max(most, reader.stats.buffers_allocated)
                if calls % 25 == 0:
                    snapshot = tracemalloc.take_snapshot().filter_traces(reader_module)
                    held_by_reader.append(sum(s.size for s in snapshot.statistics("filename")))
        finally:
            tracemalloc.stop()
        assert total == len(data)
        stats = reader.stats
    assert stats.max_buffers == 5
    assert most == stats.buffers_allocated == 5  # 64 chunks went through 5 buffers
    assert stats.read_ahead_waits + stats.cache_hits > 0
    assert wire.bytes_requested == len(data)  # nothing fetched twice
    # What the reader's own code holds at any point: its 5 buffers and small change,
    # whatever the object's size (moto's copies of the object are not ours).
    assert len(held_by_reader) > 10
    assert max(held_by_reader) < 5 * chunk + 64 * KiB, held_by_reader


def test_read_ahead_overlaps_the_reader(s3: Any, wire: Wire) -> None:
    data = _payload(1 * MiB)
    etag = _put(s3, data)
    in_flight = [0, 0]  # now, most at once
    lock = threading.Lock()

    def slow_transport(**_: Any) -> None:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.1)  # every GET takes 100 ms "on the network"
        with lock:
            in_flight[0] -= 1

    s3.meta.events.register_first("before-send.s3.GetObject", slow_transport)
    with _reader(
        s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=4, read_ahead_threads=4
    ) as reader:
        first = reader.read(10)
        # While the reader's own GET of chunk 0 was on the network, chunks 1-4 were too.
        assert in_flight[1] >= 4
        assert first + reader.read() == data
        stats = reader.stats
    assert stats.misses == 1  # only the first chunk was fetched on the reading thread
    assert stats.gets == 16


def test_close_stops_the_read_ahead_threads(s3: Any, wire: Wire) -> None:
    data = _payload(2 * MiB)
    etag = _put(s3, data)
    release = threading.Event()

    def stalled_transport(**_: Any) -> None:
        release.wait(0.3)

    s3.meta.events.register_first("before-send.s3.GetObject", stalled_transport)
    reader = _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=4)
    release.set()
    reader.read(10)
    release.clear()  # the prefetches now stall
    reader.read(64 * KiB)  # starts more
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 2.0  # in-flight GETs finish, no new ones start
    assert not [t for t in threading.enumerate() if t.name.startswith("s3reader")]
    assert reader.closed
    assert reader.stats.gets < 32  # it did not go on to read the whole object


def test_a_failed_prefetch_is_reported_when_its_chunk_is_read(s3: Any, wire: Wire) -> None:
    data = _payload(256 * KiB)
    etag = _put(s3, data)
    with _reader(s3, etag=etag, size=len(data), chunk_size=64 * KiB, read_ahead=3) as reader:
        reader.read(10)  # chunk 0, and prefetches of 1..3 start
        time.sleep(0.2)
        _put(s3, b"replaced")
        # Already prefetched chunks are consistent with the pinned version; reading to
        # the end either succeeds from them or reports the change, never mixed bytes.
        rest = reader.read()
        if reader.error is None:
            assert rest == data[10:]
        else:
            assert isinstance(reader.error, ObjectChanged)
            assert data[10:].startswith(rest)


# --- through soundfile --------------------------------------------------------------------


def _signal(frames: int, channels: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 48_000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)[:, None] * np.ones(channels)
    return (tone + 0.05 * rng.standard_normal((frames, channels))).clip(-1, 1)


def _encode(fmt: str, subtype: str, frames: int = 96_000, channels: int = 2) -> bytes:
    out = io.BytesIO()
    sf.write(out, _signal(frames, channels), 48_000, format=fmt, subtype=subtype)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_24")])
def test_soundfile_decodes_the_same_samples_through_the_reader(
    s3: Any, wire: Wire, fmt: str, subtype: str
) -> None:
    encoded = _encode(fmt, subtype)
    etag = _put(s3, encoded)
    expected, rate = sf.read(io.BytesIO(encoded), dtype="int32")

    with _reader(s3, etag=etag, size=len(encoded), chunk_size=32 * KiB, read_ahead=2) as reader:
        with sf.SoundFile(reader) as audio:
            assert (audio.samplerate, audio.channels, audio.frames) == (rate, 2, len(expected))
            assert audio.format == fmt
            blocks = list(audio.blocks(blocksize=4096, dtype="int32"))
        reader.raise_if_failed()
        gets_for_decoding = len(wire.gets)
        # Hashed as libsndfile read it: the SHA-256 costs no GET of its own.
        assert reader.sha256() == hashlib.sha256(encoded).hexdigest()
        assert reader.stats.bytes_hashed_late == 0
    assert len(wire.gets) == gets_for_decoding
    decoded = np.concatenate(blocks)
    assert np.array_equal(decoded, expected)
    assert set(wire.if_match) == {etag}
    # Each byte fetched about once (libsndfile's header re-reads come from the cache).
    assert wire.bytes_requested <= len(encoded) + 32 * KiB


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_16")])
def test_a_failure_under_soundfile_is_recorded_not_taken_for_the_end(
    s3: Any, wire: Wire, fmt: str, subtype: str
) -> None:
    encoded = _encode(fmt, subtype, frames=192_000)
    etag = _put(s3, encoded)
    answered = [0]

    def fail_after_three(request: Any, **_: Any) -> AWSResponse | None:
        answered[0] += 1
        if answered[0] <= 3:
            return None
        return _error_response(request, 503, "SlowDown")

    s3.meta.events.register_first("before-send.s3.GetObject", fail_after_three)
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001)
    expected, _ = sf.read(io.BytesIO(encoded), dtype="float32")
    blocks: list[np.ndarray] = []
    raised: sf.LibsndfileError | None = None
    with _reader(
        s3, etag=etag, size=len(encoded), chunk_size=32 * KiB, read_ahead=0, retry=policy
    ) as reader:
        try:
            with sf.SoundFile(reader) as audio:
                blocks.extend(audio.blocks(blocksize=4096, dtype="float32"))
        except sf.LibsndfileError as error:
            raised = error
        assert isinstance(reader.error, TransientError)
        with pytest.raises(TransientError, match="failed 2 times"):
            reader.raise_if_failed()
    decoded = np.concatenate(blocks) if blocks else np.empty((0, 2), np.float32)
    # What soundfile alone makes of it: for WAV no error at all, the frames after the
    # failure are missing or stale; for FLAC an error without a word about the cause.
    assert not np.array_equal(decoded, expected)
    if fmt == "WAV":
        assert raised is None
    else:
        assert raised is not None and "503" not in str(raised) and "SlowDown" not in str(raised)


# --- over a real HTTP connection ----------------------------------------------------------


class _RangeServer(ThreadingHTTPServer):
    """A minimal S3-like HTTP/1.1 server for one object: ranged GETs with keep-alive.

    moto's in-process mode has no socket, and its server closes every connection, so
    this is what shows the reader's direct http.client path: bodies read straight into
    its buffers, connections handed back to the pool and reused, a connection cut in the
    middle of a body retried."""

    daemon_threads = True

    def __init__(self, data: bytes, etag: str, cut_first: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.data = data
        self.etag = etag
        self.cut_remaining = cut_first  # this many responses are cut half-way
        self.connections = 0
        self.gets = 0
        self.lock = threading.Lock()


class _RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RangeServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        if self.headers.get("If-Match") != server.etag:
            self.send_response(412)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        first, last = (int(v) for v in self.headers["Range"].removeprefix("bytes=").split("-"))
        body = server.data[first : last + 1]
        with server.lock:
            server.gets += 1
            cut = server.cut_remaining > 0
            server.cut_remaining -= cut
        self.send_response(206)
        self.send_header("ETag", server.etag)
        self.send_header("Content-Range", f"bytes {first}-{last}/{len(server.data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def http_object() -> Iterator[Callable[..., tuple[Any, _RangeServer]]]:
    servers: list[_RangeServer] = []

    def start(data: bytes, cut_first: int = 0) -> tuple[Any, _RangeServer]:
        server = _RangeServer(data, '"0f0e0d0c0b0a"', cut_first)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            config=local_s3_config(retries={"total_max_attempts": 1}),
        )
        return client, server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_over_http_bodies_fill_the_buffers_and_connections_are_reused(
    http_object: Callable[..., tuple[Any, _RangeServer]],
) -> None:
    data = _payload(3 * MiB + 5)
    client, server = http_object(data)
    with S3RangeReader(
        client, BUCKET, KEY, etag=server.etag, size=len(data), chunk_size=128 * KiB, read_ahead=2
    ) as reader:
        assert reader.read() == data
        stats = reader.stats
    assert server.gets == stats.gets == 25
    # One connection per thread that fetched (the reader's and two read-ahead threads):
    # each body was read to its end and its connection went back to the pool.
    assert server.connections <= 3


def test_over_http_a_connection_cut_mid_body_is_retried(
    http_object: Callable[..., tuple[Any, _RangeServer]],
) -> None:
    data = _payload(1 * MiB)
    client, server = http_object(data, cut_first=2)
    with S3RangeReader(
        client,
        BUCKET,
        KEY,
        etag=server.etag,
        size=len(data),
        chunk_size=256 * KiB,
        read_ahead=0,
        retry=FAST_RETRY,
    ) as reader:
        assert reader.read() == data
        stats = reader.stats
    assert stats.retries == 2
    assert stats.gets == server.gets == 4 + 2
    assert stats.bytes_fetched == len(data) + 2 * 128 * KiB  # two half bodies


def test_over_http_a_wav_decodes_the_same(
    http_object: Callable[..., tuple[Any, _RangeServer]],
) -> None:
    encoded = _encode("WAV", "PCM_24", frames=48_000)
    client, server = http_object(encoded)
    expected, _ = sf.read(io.BytesIO(encoded), dtype="int32")
    with S3RangeReader(
        client, BUCKET, KEY, etag=server.etag, size=len(encoded), chunk_size=16 * KiB
    ) as reader:
        decoded, _ = sf.read(reader, dtype="int32")
        reader.raise_if_failed()
    assert np.array_equal(decoded, expected)


def test_bad_arguments_are_refused_before_any_request(s3: Any, wire: Wire) -> None:
    for bad in ({"chunk_size": 0}, {"cache_chunks": 0}, {"read_ahead": -1}, {"size": -5}):
        with pytest.raises(ValueError):
            _reader(s3, etag='"x"', **{"size": 10, **bad})
    assert wire.gets == [] and wire.heads == 0
