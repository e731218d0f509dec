"""A seekable, read-only file object over one S3 object, read with ranged GETs.

``S3RangeReader`` is what the processor hands to soundfile: libsndfile reads through
``seek``/``tell``/``readinto`` (soundfile's virtual I/O) while this class turns those
calls into fixed-size ``Range: bytes=a-b`` GETs.

- Every GET is pinned with ``If-Match`` to the ETag seen at the start, so a replaced
  object fails with :class:`~audiolift_core.errors.ObjectChanged` instead of mixing two
  versions' bytes; a key deleted mid-read with :class:`~audiolift_core.errors.ObjectMissing`.
- A small LRU of chunks serves libsndfile's seeks back to the header; ``read_ahead``
  chunks are fetched on background threads so the network and the decoder overlap.
- Memory is bounded: at most ``cache_chunks + read_ahead`` chunk buffers ever exist, they
  are allocated once and reused (fresh multi-MiB buffers per block cost glibc an
  mmap/munmap and page faults each time, which slowed a reader 2-3x), and bodies are read
  straight into them.
- Throttling, 5xx, dropped connections and timeouts mid-body are retried here, with
  exponential backoff and full jitter; when the attempts run out the read fails with
  :class:`~audiolift_core.errors.TransientError`. This is the only retry layer: give the
  reader a client on which botocore makes one attempt per call
  (``s3_client(CallLimits(total_max_attempts=1))``), or the two layers multiply. Only the
  reader can retry a body that breaks mid-transfer, so it is the one that retries.

- The object's SHA-256 is computed while it is read, with no second pass where the
  reader of the file reads it in order: each chunk is hashed when it is first used, if
  it continues the hashed prefix; :meth:`S3RangeReader.sha256` then fetches only what was
  never used (a decoder that stopped early, or a tail it skipped). The running hash can
  be saved (:meth:`S3RangeReader.hash_state`) and handed to a later reader of the same
  object (``hash_state=``), which continues it: an analysis spread over several
  invocations hashes every byte once.

Errors are *recorded*, not only raised: soundfile calls ``readinto`` from a C callback
and swallows any exception raised there (a failed GET would become a silent short read,
i.e. a "shorter recording"). So ``readinto`` returns a short count once something failed,
and the caller must call :meth:`S3RangeReader.raise_if_failed` after decoding.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from audiolift_core.aws import (
    CHANGED_ERROR_CODES,
    GONE_ERROR_CODES,
    TRANSIENT_ERROR_CODES,
    error_code,
    http_status,
)
from audiolift_core.errors import (
    AudioliftError,
    NotFound,
    ObjectChanged,
    ObjectMissing,
    TransientError,
)
from botocore.exceptions import (
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.response import StreamingBody
from urllib3.exceptions import HTTPError as URLLib3HTTPError

from .resumable_sha256 import ResumableSha256, ResumableUnavailable, available

if TYPE_CHECKING:
    from collections.abc import Buffer

    from mypy_boto3_s3 import S3Client

__all__ = ["DEFAULT_CHUNK_SIZE", "HashState", "ReaderStats", "RetryPolicy", "S3RangeReader"]

MiB: Final = 1024 * 1024
DEFAULT_CHUNK_SIZE: Final = 8 * MiB
# A body is read in pieces of this size so a close() or a cancelled read-ahead stops a
# transfer within one piece rather than after a whole chunk.
_BODY_PIECE: Final = 1 * MiB


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded attempts.

    ``max_attempts`` counts every GET of one range, the first included. The wait before
    attempt ``n + 1`` is uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]`` ("full
    jitter": concurrent readers throttled together do not retry together).
    """

    max_attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 10.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays cannot be negative")

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, failures - 1)))
        return self.rng.uniform(0.0, ceiling)


@dataclass
class ReaderStats:
    """Counters of what a reader did; :attr:`S3RangeReader.stats` returns a copy."""

    heads: int = 0  # HEAD requests (only when etag or size were not given)
    gets: int = 0  # ranged GET requests sent, retries included
    bytes_fetched: int = 0  # body bytes received, partial bodies of failed attempts included
    retries: int = 0  # attempts repeated after a retryable failure
    cache_hits: int = 0  # chunk look-ups served from a buffer already filled
    read_ahead_waits: int = 0  # look-ups that found their chunk still being prefetched
    misses: int = 0  # chunks fetched on the reading thread itself
    read_ahead_cancelled: int = 0  # prefetches dropped because their buffer was needed
    buffers_allocated: int = 0  # chunk buffers created so far (never more than max_buffers)
    max_buffers: int = 0  # cache_chunks + read_ahead: the memory bound, in chunks
    bytes_hashed: int = 0  # the hashed prefix of the object
    bytes_hashed_late: int = 0  # of those, hashed by sha256() after the reading (not used)


@dataclass(frozen=True)
class HashState:
    """The SHA-256 of an object's first ``hashed_bytes`` bytes, mid-computation."""

    hashed_bytes: int
    context: bytes


class _Cancelled(Exception):
    """A prefetch stopped because the reader closed or its buffer was taken back."""


class _BadBody(Exception):
    """The response body did not match the requested range (short, or wrong range)."""


_PENDING: Final = 0
_READY: Final = 1
_FAILED: Final = 2


class _Chunk:
    __slots__ = ("buffer", "cancelled", "error", "index", "length", "start", "state", "view")

    def __init__(self, index: int, start: int, buffer: bytearray) -> None:
        self.index = index
        self.start = start
        self.buffer = buffer
        self.view = memoryview(buffer)
        self.length = 0
        self.state = _PENDING
        self.error: BaseException | None = None
        self.cancelled = False


class S3RangeReader(io.BufferedIOBase):
    """Seekable, read-only binary file over ``s3://bucket/key``.

    A ``BufferedIOBase`` rather than a ``RawIOBase`` because libsndfile's virtual I/O takes
    a short read as the end of the file: ``readinto`` here fills the whole buffer unless
    the object ends (or a failure was recorded).

    Args:
        client: a boto3 S3 client (thread-safe; shared with the read-ahead threads).
        bucket, key: the object.
        etag, size: the version to read, e.g. from the S3 event. If either is missing the
            object is HEAD-ed once (pinned to ``etag`` when given).
        chunk_size: bytes per ranged GET.
        cache_chunks: chunks kept for re-reads (at least 1: the chunk being read).
        read_ahead: chunks fetched ahead of the reading position on background threads
            (0 disables read-ahead).
        retry: the retry policy for each GET (and the HEAD).
        read_ahead_threads: concurrent prefetch GETs; default ``min(read_ahead, 4)``.
        hash_while_reading: feed the SHA-256 as chunks are used (False: ``sha256()``
            reads the whole object itself; for measuring what hashing costs).
        hash_state: continue the hash a reader of the same object (and chunk size)
            saved with :meth:`hash_state`, instead of starting it from byte 0.
        read_ahead_from: reading a chunk that starts before this byte offset reads
            nothing ahead (a reader that reads the header, then jumps far into the file
            to read from there, fetches no chunk it will not use).

    Raises (from the constructor, i.e. normally): ``ObjectChanged`` when the given ETag no
    longer matches, ``ObjectMissing`` when the object is gone although an ETag was given,
    ``NotFound`` when it does not exist (no ETag given), ``TransientError`` when the HEAD
    keeps failing.
    """

    mode = "rb"  # soundfile reads the mode from the file object when none is given

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        *,
        etag: str | None = None,
        size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cache_chunks: int = 2,
        read_ahead: int = 2,
        retry: RetryPolicy | None = None,
        read_ahead_threads: int | None = None,
        hash_while_reading: bool = True,
        hash_state: HashState | None = None,
        read_ahead_from: int = 0,
    ) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        if cache_chunks < 1:
            raise ValueError("cache_chunks must be at least 1 (the chunk being read)")
        if read_ahead < 0:
            raise ValueError("read_ahead cannot be negative")
        if size is not None and size < 0:
            raise ValueError("size cannot be negative")
        self._client = client
        self.bucket = bucket
        self.key = key
        self.name = f"s3://{bucket}/{key}"
        self.chunk_size = chunk_size
        self.cache_chunks = cache_chunks
        self.read_ahead = read_ahead
        self._retry = retry or RetryPolicy()
        self._threads = read_ahead_threads if read_ahead_threads is not None else min(read_ahead, 4)
        self._max_buffers = cache_chunks + read_ahead
        self._read_ahead_from = read_ahead_from

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._io_lock = threading.RLock()  # one reader call at a time (seek/read pairs)
        self._closing = threading.Event()
        self._stats = ReaderStats(max_buffers=self._max_buffers)
        self._chunks: OrderedDict[int, _Chunk] = OrderedDict()  # LRU order, oldest first
        self._free: list[bytearray] = []
        self._executor: ThreadPoolExecutor | None = None
        self._error: BaseException | None = None
        self._pos = 0
        # The chunk last read from, while it holds its buffer: most reads (libsndfile
        # asks for a few KiB at a time) are served from it without the chunk lock.
        self._current: _Chunk | None = None
        # SHA-256 of the object's first ``_stats.bytes_hashed`` bytes (whole chunks).
        # A hash that can be saved when libcrypto allows it (it does on Lambda); else
        # hashlib's, and ``hash_state()`` raises ResumableUnavailable.
        self._hash: Any = (
            ResumableSha256(hash_state.context if hash_state else None)
            if available() or hash_state is not None
            else hashlib.sha256()
        )
        self._hash_while_reading = hash_while_reading
        if hash_state is not None:
            self._stats.bytes_hashed = hash_state.hashed_bytes

        if etag is not None:
            etag = _quoted(etag)
        self.etag: str = etag or ""  # the messages of a failed HEAD need it
        self.size: int = size or 0
        if etag is None or size is None:
            etag, size = self._head(etag)
        self.etag = _quoted(etag)
        self.size = size
        self._nchunks = -(-size // chunk_size)
        hashed = self._stats.bytes_hashed
        if hashed > size or (hashed % chunk_size and hashed != size):
            raise ValueError("the saved hash does not cover whole chunks of this object")

    # --- public API beyond io ----------------------------------------------------------

    @property
    def error(self) -> BaseException | None:
        """The first failure recorded by a read, or None."""
        return self._error

    def raise_if_failed(self) -> None:
        """Re-raise the first recorded failure (ObjectChanged, ObjectMissing, ...)."""
        if self._error is not None:
            raise self._error

    def sha256(self, *, between_chunks: Callable[[], None] | None = None) -> str:
        """The object's SHA-256 (hex). The part already hashed while reading is not read
        again; the rest is fetched now, calling ``between_chunks`` (e.g. a deadline
        check) before each chunk. Raises the reader's recorded failure, or the failure of
        a GET made here."""
        self._check_open()
        with self._io_lock:
            self.raise_if_failed()
            while self._stats.bytes_hashed < self.size:
                if between_chunks is not None:
                    between_chunks()
                before = self._stats.bytes_hashed
                self._hash_if_next(self._ready_chunk(before // self.chunk_size))
                self._stats.bytes_hashed_late += self._stats.bytes_hashed - before
            return self._hash.hexdigest()

    def hash_state(self) -> HashState:
        """The running hash, to continue in another reader (see ``hash_state=``)."""
        with self._io_lock:
            if not isinstance(self._hash, ResumableSha256):
                raise ResumableUnavailable("this process cannot save a SHA-256 state")
            return HashState(self._stats.bytes_hashed, self._hash.state())

    @property
    def stats(self) -> ReaderStats:
        with self._lock:
            return replace(self._stats)

    # --- io.BufferedIOBase -------------------------------------------------------------

    def readable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        with self._io_lock:
            if whence == io.SEEK_SET:
                target = offset
            elif whence == io.SEEK_CUR:
                target = self._pos + offset
            elif whence == io.SEEK_END:
                target = self.size + offset
            else:
                raise ValueError(f"invalid whence: {whence!r}")
            if target < 0:
                raise ValueError(f"negative seek position {target}")
            self._pos = target
            return target

    def readinto(self, buffer: Buffer) -> int:
        """Fill ``buffer`` from the current position; short only at the end of the
        object or after a failure (then see :attr:`error`)."""
        self._check_open()
        with self._io_lock, memoryview(buffer) as view:
            chunk = self._current
            if chunk is not None and view.c_contiguous:
                # Fast path, taken for nearly every call libsndfile makes.
                offset = self._pos - chunk.start
                end = offset + view.nbytes
                if offset >= 0 and end <= chunk.length:
                    if view.format == "B":
                        view[:] = chunk.view[offset:end]
                    else:
                        view.cast("B")[:] = chunk.view[offset:end]
                    self._pos += end - offset
                    self._stats.cache_hits += 1  # only this thread writes this counter
                    return end - offset
            with view.cast("B") as out:
                return self._readinto(out)

    readinto1 = readinto

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        remaining = max(0, self.size - self._pos)
        want = remaining if size is None or size < 0 else min(size, remaining)
        if want == 0:
            return b""
        data = bytearray(want)
        got = self.readinto(data)
        del data[got:]
        return bytes(data)

    read1 = read

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if self.closed:
            return
        self._closing.set()
        with self._cond:
            for chunk in self._chunks.values():
                chunk.cancelled = True
            self._cond.notify_all()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        with self._cond:
            self._chunks.clear()
            self._free.clear()
            self._current = None
        super().close()

    def __repr__(self) -> str:
        return f"<S3RangeReader {self.name} etag={self.etag} size={self.size}>"

    # --- reading -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed S3RangeReader")

    def _readinto(self, out: memoryview) -> int:
        with self._io_lock:
            if self._error is not None:
                return 0
            filled = 0
            want = len(out)
            try:
                while filled < want and self._pos < self.size:
                    index = self._pos // self.chunk_size
                    chunk = self._ready_chunk(index)
                    if self._hash_while_reading:
                        self._hash_if_next(chunk)
                    self._current = chunk
                    offset = self._pos - chunk.start
                    take = min(chunk.length - offset, want - filled)
                    out[filled : filled + take] = chunk.view[offset : offset + take]
                    filled += take
                    self._pos += take
            except Exception as exc:
                # Recorded, not only raised: from soundfile's C callback the exception
                # would be swallowed and the short count taken for the end of the file.
                self._error = exc
                self._current = None
            return filled

    def _ready_chunk(self, index: int) -> _Chunk:
        """The chunk ``index``, filled; fetched here if it is neither cached nor coming."""
        with self._cond:
            chunk = self._chunks.get(index)
            if chunk is not None:
                self._chunks.move_to_end(index)
                if chunk.state == _PENDING:
                    self._stats.read_ahead_waits += 1
                else:
                    self._stats.cache_hits += 1
                self._schedule_read_ahead(index)
                while chunk.state == _PENDING:
                    if chunk.cancelled:  # close() from another thread
                        raise ValueError("S3RangeReader closed during a read")
                    self._cond.wait()
                if chunk.state == _FAILED:
                    self._forget(chunk)
                    assert chunk.error is not None
                    raise chunk.error
                return chunk
            self._stats.misses += 1
            buffer = self._acquire_buffer(exclude=index, wait=True)
            assert buffer is not None
            chunk = _Chunk(index, index * self.chunk_size, buffer)
            self._chunks[index] = chunk
            self._schedule_read_ahead(index)
        try:
            self._fetch(chunk)
        except BaseException:
            with self._cond:
                self._forget(chunk)
            raise
        with self._cond:
            chunk.state = _READY
        return chunk

    def _hash_if_next(self, chunk: _Chunk) -> None:
        """Hash a filled chunk that continues the hashed prefix (reading thread only; the
        hash releases the GIL, so the analysis threads run meanwhile)."""
        if chunk.start == self._stats.bytes_hashed and chunk.length:
            self._hash.update(chunk.view[: chunk.length])
            self._stats.bytes_hashed += chunk.length

    def _forget(self, chunk: _Chunk) -> None:
        """Drop a finished chunk and keep its buffer (lock held)."""
        if self._chunks.get(chunk.index) is chunk:
            del self._chunks[chunk.index]
        if self._current is chunk:
            self._current = None
        self._free.append(chunk.buffer)

    def _acquire_buffer(self, *, exclude: int, wait: bool) -> bytearray | None:
        """A chunk buffer: a free one, a new one while under the bound, or the least
        recently used finished chunk's (never chunk ``exclude``'s nor one in its
        read-ahead window). With ``wait``, take back buffers from prefetches outside the
        window and wait for them to stop. Lock held."""
        window = range(exclude, exclude + self.read_ahead + 1)
        while True:
            if self._free:
                return self._free.pop()
            if self._stats.buffers_allocated < self._max_buffers:
                self._stats.buffers_allocated += 1
                return bytearray(self.chunk_size)
            for chunk in self._chunks.values():
                if chunk.state != _PENDING and chunk.index not in window:
                    del self._chunks[chunk.index]
                    if self._current is chunk:
                        self._current = None
                    return chunk.buffer
            if not wait:
                return None
            for chunk in list(self._chunks.values()):
                if chunk.index not in window:
                    # Its worker hands the buffer back (to _free) when it notices.
                    chunk.cancelled = True
                    del self._chunks[chunk.index]
                    self._stats.read_ahead_cancelled += 1
            self._cond.wait()

    def _schedule_read_ahead(self, index: int) -> None:
        """Start fetching the chunks after ``index`` that are not here yet. Lock held."""
        if self.read_ahead == 0 or self._threads == 0 or self._closing.is_set():
            return
        if index * self.chunk_size < self._read_ahead_from:
            return
        for ahead in range(index + 1, min(index + self.read_ahead, self._nchunks - 1) + 1):
            if ahead in self._chunks:
                continue
            buffer = self._acquire_buffer(exclude=index, wait=False)
            if buffer is None:
                return
            chunk = _Chunk(ahead, ahead * self.chunk_size, buffer)
            self._chunks[ahead] = chunk
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._threads, thread_name_prefix="s3reader"
                )
            self._executor.submit(self._prefetch, chunk)

    def _prefetch(self, chunk: _Chunk) -> None:
        error: BaseException | None = None
        try:
            self._fetch(chunk)
        except BaseException as exc:
            error = exc
        with self._cond:
            if chunk.cancelled or self._closing.is_set():
                self._free.append(chunk.buffer)
            elif error is not None:
                chunk.state = _FAILED
                chunk.error = error
            else:
                chunk.state = _READY
            self._cond.notify_all()

    # --- one ranged GET, with retries --------------------------------------------------

    def _fetch(self, chunk: _Chunk) -> None:
        start = chunk.index * self.chunk_size
        length = min(self.chunk_size, self.size - start)
        end = start + length - 1
        target = memoryview(chunk.buffer)[:length]
        failures = 0
        while True:
            if chunk.cancelled or self._closing.is_set():
                raise _Cancelled
            with self._lock:
                self._stats.gets += 1
            try:
                response = self._client.get_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Range=f"bytes={start}-{end}",
                    IfMatch=self.etag,
                )
                self._check_response(response, start, end)
                self._read_body(response["Body"], target, chunk)
                chunk.length = length
                return
            except _Cancelled:
                raise
            except Exception as exc:
                failures = self._after_failure(exc, failures, f"bytes {start}-{end}")
                if self._closing.wait(self._retry.backoff(failures)) or chunk.cancelled:
                    raise _Cancelled from exc

    def _after_failure(self, exc: Exception, failures: int, what: str) -> int:
        """Translate a failed attempt: raise if it is final, else count and return the
        failures so far. Messages may reach a job's record: the bucket, key, ETag and the
        library's text go into ``details`` (and the chained exception), not the message."""
        kind = _classify(exc)
        details: dict[str, Any] = {"bucket": self.bucket, "key": self.key, "error": str(exc)}
        if kind == "changed" and _is_gone(exc):
            raise ObjectMissing(
                "The file was deleted while it was being read.", details=details
            ) from exc
        if kind == "changed":
            raise ObjectChanged(
                "The file was deleted or replaced while it was being read.",
                details={**details, "etag": self.etag},
            ) from exc
        if kind == "fatal":
            raise AudioliftError(f"Reading the file ({what}) failed.", details=details) from exc
        failures += 1
        if failures >= self._retry.max_attempts:
            raise TransientError(
                f"Reading the file ({what}) failed {failures} times; the storage service "
                "is unavailable for now.",
                details={**details, "attempts": failures},
            ) from exc
        with self._lock:
            self._stats.retries += 1
        return failures

    def _check_response(self, response: Any, start: int, end: int) -> None:
        # Some S3 implementations ignore If-Match: compare the ETag and the total size too.
        etag = response.get("ETag")
        if etag is not None and _quoted(etag) != self.etag:
            raise _changed_error("ETag differs")
        content_range = response.get("ContentRange")
        if content_range:
            try:
                span, total = content_range.split(" ", 1)[1].split("/", 1)
                first, last = (int(part) for part in span.split("-", 1))
            except ValueError as exc:
                raise _BadBody(f"unparseable Content-Range {content_range!r}") from exc
            if total != "*" and int(total) != self.size:
                raise _changed_error("size differs")
            if (first, last) != (start, end):
                raise _BadBody(f"asked for bytes {start}-{end}, got {content_range!r}")
        elif response.get("ContentLength") != end - start + 1:
            raise _BadBody("response without Content-Range and of the wrong length")

    def _read_body(self, body: Any, target: memoryview, chunk: _Chunk) -> None:
        """Read the whole body into ``target``; close the connection on any failure."""
        readinto, direct = _body_readinto(body)
        got = 0
        complete = False
        try:
            while got < len(target):
                if chunk.cancelled or self._closing.is_set():
                    raise _Cancelled
                count = readinto(target[got : got + _BODY_PIECE])
                if not count:
                    break
                got += count
            complete = got == len(target)
        finally:
            with self._lock:
                self._stats.bytes_fetched += got
            if complete and direct:
                # Read to its end through http.client: hand the connection back to the
                # pool as urllib3 would have.
                body._raw_stream.release_conn()
            elif not complete:
                body.close()  # a half-read connection cannot be reused
        if not complete:
            raise _BadBody(f"body ended after {got} of {len(target)} bytes")

    def _head(self, etag: str | None) -> tuple[str, int]:
        failures = 0
        while True:
            with self._lock:
                self._stats.heads += 1
            try:
                kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
                if etag is not None:
                    kwargs["IfMatch"] = etag
                head = self._client.head_object(**kwargs)
                return head["ETag"], int(head["ContentLength"])
            except Exception as exc:
                if etag is None and _classify(exc) == "changed" and _is_gone(exc):
                    raise NotFound(
                        "The file does not exist.",
                        details={"bucket": self.bucket, "key": self.key},
                    ) from exc
                failures = self._after_failure(exc, failures, "HEAD")
                self._closing.wait(self._retry.backoff(failures))


def _quoted(etag: str) -> str:
    """ETags as S3 sends them in headers: quoted (S3 event records carry them bare)."""
    return '"' + etag.strip('"') + '"'


def _changed_error(why: str) -> ClientError:
    return ClientError({"Error": {"Code": "PreconditionFailed", "Message": why}}, "GetObject")


def _body_readinto(body: Any) -> tuple[Callable[[memoryview], int], bool]:
    """The fastest way to read ``body`` into a buffer, and whether it bypasses urllib3.

    urllib3's ``readinto`` reads into a temporary bytes object and copies it; underneath
    it, ``http.client.HTTPResponse.readinto`` fills the caller's buffer directly. That
    path is taken only for a plain botocore body (a checksum-validating body must see
    the bytes) over a live http.client response (not moto's in-process one).
    """
    if type(body) is StreamingBody:
        raw = getattr(body, "_raw_stream", None)
        fp = getattr(raw, "_fp", None)
        if isinstance(fp, http.client.HTTPResponse) and hasattr(raw, "release_conn"):
            return fp.readinto, True
    if hasattr(body, "readinto"):
        return body.readinto, False

    def read_copy(view: memoryview) -> int:
        data = body.read(len(view))
        view[: len(data)] = data
        return len(data)

    return read_copy, False


def _is_gone(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    return error_code(exc) in GONE_ERROR_CODES or http_status(exc) == 404


def _classify(exc: BaseException) -> str:
    """'changed' (the pinned version is gone), 'retry' (may pass) or 'fatal'."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        if code in CHANGED_ERROR_CODES or code in GONE_ERROR_CODES or status in (404, 412, 416):
            return "changed"
        if code in TRANSIENT_ERROR_CODES or status == 429 or status >= 500:
            return "retry"
        return "fatal"
    if isinstance(
        exc,
        HTTPClientError
        | BotoConnectionError
        | IncompleteReadError
        | FlexibleChecksumError
        | URLLib3HTTPError
        | http.client.HTTPException
        | OSError
        | _BadBody,
    ):
        return "retry"
    return "fatal"
