"""The part-upload engine: parallel PUTs of file parts straight to presigned S3 URLs.

Every part is read twice with positioned reads (no shared file offset, never a whole part
in memory), one chunk at a time. First by the hashers, in file order and a bounded
number of parts ahead of the senders: the part's CRC32C, signed into its URL as
x-amz-checksum-crc32c so that S3 refuses bytes that changed on the way (and combined into
the whole file's, which S3 checks at completion), and the chunks handed to the file's
SHA-256, which a thread of its own takes in file order. Then by a sender, as the
connection takes the bytes. The second read comes from the page cache (~9 GB/s): it
costs far less than holding parts (16 MiB or more each) in memory. An upload created
without CRC32C (by another client) gets each part's MD5 as Content-MD5 instead. Memory
stays at about twice ``concurrency`` chunks (1 MiB each), whatever the part size. URLs are
signed just in time, one request for all the parts hashed and waiting, ahead of need in
the background once few wait unused, and re-signed when S3 says one expired. The start of
the file is hashed while the job is created (``HeadStart``), before the part plan is
known: per MiB, so the parts it covers get their CRC32C by combining, and the SHA-256
goes on from there.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import (
    FIRST_EXCEPTION,
    CancelledError,
    Future,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ._checksums import combine_all, crc32c, to_base64
from ._errors import FileChangedError, UnsupportedFormatError, UploadError
from ._formats import SNIFF_BYTES, AudioFormat, describe, sniff
from ._http import Stopped, send_with_retries
from ._models import PartPlan, UploadProgress
from ._retry import RetryConfig

STREAM_CHUNK_BYTES = 1024 * 1024
URL_BATCH_SIZE = 100  # the API signs at most 1000 at once; 100 is what it hands out first
URL_REFRESH_MARGIN_SECONDS = 60.0  # don't start a part on a URL about to expire
FIRST_BATCH_WAIT_SECONDS = 0.2  # at most, for the first signing request to cover every sender
STOP_POLL_SECONDS = 0.05  # how soon a sender waiting for a URL sees the upload stop
MAX_RESIGNS_PER_PART = 3
# S3 refusing a part's bytes as not matching its checksum: read and send it again this
# many times (a flaky disk, memory or proxy), then give up with a clear error.
MAX_BAD_DIGEST_RESENDS = 2
RESIGN_S3_CODES = frozenset(
    {
        "AccessDenied", "SignatureDoesNotMatch", "ExpiredToken", "RequestExpired",
        "TokenRefreshRequired",
    }
)  # fmt: skip


# --- the file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSnapshot:
    """Size and modification time when the upload started: checked before every part and
    before completing, so a file written to meanwhile is not sent half old, half new."""

    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def take(cls, path: str | os.PathLike[str]) -> FileSnapshot:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        if not resolved.is_file():
            raise FileNotFoundError(f"{resolved} is not a regular file")
        return cls(resolved, stat.st_size, stat.st_mtime_ns)

    def check(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise FileChangedError(f"{self.path} was removed during the upload.") from None
        if stat.st_size != self.size:
            raise FileChangedError(
                f"{self.path} changed during the upload: it was {self.size} bytes, "
                f"now {stat.st_size}."
            )
        if stat.st_mtime_ns != self.mtime_ns:
            raise FileChangedError(
                f"{self.path} changed during the upload (it was modified after the upload started)."
            )


def audio_format(snapshot: FileSnapshot) -> AudioFormat:
    """The file's audio format, told from its first bytes with the processor's own table;
    UnsupportedFormatError for anything else, so a file that is not audio is refused
    before a byte of it is uploaded (the processor checks again: a client can lie)."""
    with open(snapshot.path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    found = sniff(head)
    if found is None:
        raise UnsupportedFormatError(
            f"{snapshot.path.name}: {describe(head)} Nothing was uploaded."
        )
    return found


def read_chunk(fd: int, length: int, offset: int) -> bytes:
    """``length`` bytes from ``offset`` with positioned reads (thread-safe: no shared file
    position)."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    pieces = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise FileChangedError("The file ended early: it was truncated during the upload.")
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


# --- just-in-time part URLs --------------------------------------------------------------


@dataclass(frozen=True)
class SignedUrl:
    part_number: int
    url: str
    expires_at: float  # epoch seconds; inf when unknown
    headers: Mapping[str, str] = field(default_factory=dict)  # to send with the PUT, as signed

    @classmethod
    def from_api(cls, document: Mapping[str, Any]) -> SignedUrl:
        headers = document.get("headers")
        return cls(
            part_number=int(document["part_number"]),
            url=str(document["url"]),
            expires_at=parse_timestamp(document.get("expires_at")),
            headers=(
                {str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {}
            ),
        )


def parse_timestamp(value: Any) -> float:
    if not isinstance(value, str) or not value:
        return float("inf")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")


# {part number: the part's checksum (base64)} -> the parts' URLs, the checksum signed in.
Signer = Callable[[Mapping[int, str]], list[SignedUrl]]


class PartUrls:
    """A thread-safe supply of part URLs, each signed for its part's checksum. A part
    without a fresh URL triggers one signing request for it and the other parts whose
    checksum is known and whose URL is missing or stale (a batch), so URLs are made shortly
    before use and a long upload never runs on expired ones. One signing request at a
    time: a sender whose part has no URL yet waits for the request under way, which
    usually signs it. The first request waits (at most ``first_batch_wait`` seconds) until
    ``first_batch`` parts are hashed, so that every sender starts with it: hashing a part
    takes milliseconds, a request tens of them, and the parts it leaves out would wait for
    the next one.

    After the first request, URLs are also signed ahead: once fewer than ``low_water``
    signed URLs wait unused, the parts hashed meanwhile are signed in the background, so
    that a sender finds its URL ready instead of waiting for a request (tens of ms on an
    idle machine, hundreds under load). A request signed ahead that fails is not an error:
    the sender that needs one of its parts asks again itself and sees the failure."""

    def __init__(
        self,
        sign: Signer,
        *,
        batch_size: int = URL_BATCH_SIZE,
        refresh_margin: float = URL_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
        first_batch: int = 1,
        first_batch_wait: float = FIRST_BATCH_WAIT_SECONDS,
        low_water: int = 0,
        stop: threading.Event | None = None,
    ):
        self._sign = sign
        self._stop = stop  # set: the upload is stopping, no URL is asked for any more
        self._digests: dict[int, str] = {}  # parts hashed and not done yet
        self._urls: dict[int, SignedUrl] = {}
        self._handed: set[int] = set()  # parts whose URL a sender took
        self._batch_size = batch_size
        self._margin = refresh_margin
        self._clock = clock
        self._first_batch = max(1, min(first_batch, batch_size))
        self._first_batch_wait = first_batch_wait
        self._low_water = low_water  # 0: sign only when a sender asks
        # Guards the above; notified as parts are hashed and as requests end.
        self._lock = threading.Condition()
        self._requesting = False  # a signing request is under way (one at a time)
        self._closed = False
        self._first_request_done = threading.Event()
        self.sign_requests = 0

    def _fresh(self, part_number: int, now: float) -> SignedUrl | None:
        url = self._urls.get(part_number)
        return url if url is not None and self._lasts(url, now) else None

    def _lasts(self, url: SignedUrl, now: float) -> bool:
        """Long enough to start a part on (a URL about to expire is signed again)."""
        return url.expires_at - self._margin > now

    def _unsigned(self, now: float) -> list[int]:
        return [n for n in sorted(self._digests) if self._fresh(n, now) is None]

    def hashed(self, part_number: int, checksum: str) -> None:
        """A part's checksum is known: sign it with the next request."""
        with self._lock:
            if self._digests.get(part_number) != checksum:
                self._urls.pop(part_number, None)  # signed for other bytes
            self._digests[part_number] = checksum
            self._lock.notify_all()
        self._sign_ahead_if_low()

    def get(self, part_number: int, checksum: str) -> SignedUrl:
        self.hashed(part_number, checksum)
        url = self._take(part_number)
        self._sign_ahead_if_low()
        return url

    @property
    def first_batch(self) -> int:
        return self._first_batch

    def wait_first_request(self) -> None:
        """Until the first signing request has ended (or the upload stops)."""
        while not self._first_request_done.wait(STOP_POLL_SECONDS):
            if self._stopped():
                raise Stopped()

    def _stopped(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _wait(self) -> None:
        """Wait (holding ``_lock``) for a change, or a while: the stop event does not
        notify the condition, and a request under way may take long (retries)."""
        self._lock.wait(STOP_POLL_SECONDS if self._stop is not None else None)

    def _take(self, part_number: int) -> SignedUrl:
        with self._lock:
            while True:
                if self._stopped():
                    raise Stopped()
                url = self._fresh(part_number, self._clock())
                if url is not None:
                    self._handed.add(part_number)
                    return url
                if not self._requesting:
                    break
                self._wait()  # the request under way may sign this part too
            self._requesting = True
            if self.sign_requests == 0:
                self._lock.wait_for(
                    lambda: len(self._digests) >= self._first_batch, self._first_batch_wait
                )
            others = [n for n in self._unsigned(self._clock()) if n != part_number]
            batch = {n: self._digests[n] for n in [part_number, *others][: self._batch_size]}
        url = self._request(batch)[part_number]
        with self._lock:
            self._handed.add(part_number)
        return url

    def resign(self, part_number: int) -> SignedUrl:
        """A new URL for one part (S3 refused the old one)."""
        with self._lock:
            while self._requesting and not self._stopped():
                self._wait()
            if self._stopped():
                raise Stopped()
            self._requesting = True
            self._urls.pop(part_number, None)
            batch = {part_number: self._digests[part_number]}
        return self._request(batch)[part_number]

    def done(self, part_number: int) -> None:
        with self._lock:
            self._digests.pop(part_number, None)
            self._urls.pop(part_number, None)
            self._handed.discard(part_number)

    def close(self) -> None:
        """No more signing ahead (the upload ended). A request signed ahead under way is
        waited for: none outlives the upload, to reach the API after its completion or
        abort, or run on a client closed meanwhile."""
        with self._lock:
            self._closed = True
            self._lock.wait_for(lambda: not self._requesting)

    def _sign_ahead_if_low(self) -> None:
        if self._low_water <= 0:
            return
        with self._lock:
            if self._closed or self._requesting or self.sign_requests == 0 or self._stopped():
                return
            now = self._clock()
            ready = sum(
                1 for n in self._urls if n not in self._handed and self._fresh(n, now) is not None
            )
            unsigned = self._unsigned(now)[: self._batch_size]
            if ready >= self._low_water or not unsigned:
                return
            self._requesting = True
            batch = {n: self._digests[n] for n in unsigned}
        thread = threading.Thread(
            target=self._sign_ahead, args=(batch,), name="audiolift-sign-ahead", daemon=True
        )
        try:
            thread.start()
        except BaseException:  # no thread (e.g. at interpreter exit): no request under way
            with self._lock:
                self._requesting = False
                self._lock.notify_all()
            raise

    def _sign_ahead(self, batch: Mapping[int, str]) -> None:
        # Nobody waits for this request: a failure leaves the parts unsigned, and the
        # sender that needs one asks again itself (and sees the failure if it lasts).
        with contextlib.suppress(Exception):
            self._request(batch, ahead=True)

    def _request(self, batch: Mapping[int, str], *, ahead: bool = False) -> dict[int, SignedUrl]:
        """One signing request (``_requesting`` set by the caller); stores the URLs."""
        try:
            with self._lock:
                self.sign_requests += 1
            signed = {url.part_number: url for url in self._sign(batch)}
            missing = [n for n in batch if n not in signed]
            if missing:
                raise UploadError(f"The API did not sign part(s) {missing}.", code="unsigned_parts")
            with self._lock:
                for number, url in signed.items():
                    if number in self._digests:  # not done meanwhile
                        self._urls[number] = url
                now = self._clock()
                if not all(self._lasts(url, now) for url in signed.values()):
                    # URLs live less than the margin (a short TTL, or a clock ahead of the
                    # API's): signed ahead, they would be stale before a sender takes them.
                    self._low_water = 0
            return signed
        except BaseException:
            if not ahead and self._stop is not None:
                # The sender raises this and the upload stops: set before the senders
                # waiting for this request wake, or each would ask again in vain.
                self._stop.set()
            raise
        finally:
            self._first_request_done.set()
            with self._lock:
                self._requesting = False
                self._lock.notify_all()


# --- hashing -----------------------------------------------------------------------------


def content_md5(digest: bytes) -> str:
    """The Content-MD5 header's form of an MD5 digest (base64)."""
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class PartDigest:
    """What reading a part gives: its CRC32C (always: cheap, and the whole file's is
    combined from the parts') and its MD5 where it is needed (an upload signing
    Content-MD5s, or a part S3 holds already, whose ETag is its MD5)."""

    crc32c: int
    length: int
    md5: bytes | None = None


def etag_is_md5(etag: str, digest: bytes) -> bool | None:
    """Whether S3's ETag for a part is this MD5; None when the ETag is not an MD5 at all
    (e.g. SSE-KMS), so nothing can be told from it."""
    bare = etag.strip().strip('"').lower()
    if not re.fullmatch(r"[0-9a-f]{32}", bare):
        return None
    return bare == digest.hex()


class HashedPrefix:
    """The file's first ``length`` bytes, hashed before the part plan was known: their
    SHA-256 so far, and a CRC32C per ``unit`` bytes (the last unit may be shorter, at the
    end of the file). A part made of whole units gets its CRC32C by combining theirs."""

    def __init__(self, length: int, unit: int, crcs: list[int], sha256: Any):
        self.length = length
        self.unit = unit
        self.crcs = crcs
        self.sha256 = sha256  # a hashlib object that has taken bytes [0, length)

    @classmethod
    def empty(cls, unit: int = STREAM_CHUNK_BYTES) -> HashedPrefix:
        return cls(0, unit, [], hashlib.sha256())

    def part_crc32c(self, offset: int, length: int) -> int | None:
        """The CRC32C of bytes [offset, offset + length) from the units', or None when
        they are not all hashed or the part does not start and end on unit boundaries."""
        end = offset + length
        if offset % self.unit or end > self.length or (end % self.unit and end != self.length):
            return None
        first, last = offset // self.unit, -(-end // self.unit)
        return combine_all(
            (self.crcs[i], min(self.unit, self.length - i * self.unit)) for i in range(first, last)
        )


class HeadStart:
    """Hashes the start of the file while its job is being created: the request takes
    tens to hundreds of ms, and the first parts' checksums are what the first signing
    request waits for. The part plan comes with the job, so this hashes in units of
    ``unit`` bytes (parts are whole MiB), in file order, in one thread, until ``limit``
    bytes or ``finish``. A failure to read is left to the upload, which reads again and
    reports it."""

    def __init__(self, path: Path, size: int, *, limit: int, unit: int = STREAM_CHUNK_BYTES):
        self._path = path
        self._size = size
        self._limit = min(size, limit)
        self._unit = unit
        self._stop = threading.Event()
        self._crcs: list[int] = []
        self._sha256 = hashlib.sha256()
        self._hashed = 0
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="audiolift-head-start", daemon=True)

    def start(self) -> HeadStart:
        self._thread.start()
        return self

    @property
    def hashed(self) -> int:
        """Bytes hashed so far, from the start of the file."""
        return self._hashed

    def _run(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except OSError:
            self._failed = True
            return
        try:
            while self._hashed < self._limit and not self._stop.is_set():
                chunk = read_chunk(fd, min(self._unit, self._size - self._hashed), self._hashed)
                self._crcs.append(crc32c(chunk))
                self._sha256.update(chunk)
                self._hashed += len(chunk)
        except (OSError, FileChangedError):
            self._failed = True
        finally:
            os.close(fd)

    def finish(self) -> HashedPrefix:
        """Stop after the unit being hashed; what was hashed from the start."""
        self._stop.set()
        self._thread.join()
        if self._failed:
            return HashedPrefix.empty(self._unit)
        return HashedPrefix(self._hashed, self._unit, self._crcs, self._sha256)


class OrderedHasher:
    """The whole file's SHA-256, fed by the workers that read parts in parallel and hashed
    in file order by a thread of its own, off the path of every PUT (the digest is needed
    only at completion). Chunks wait in a buffer of at most ``max_buffered`` bytes until
    the hash reaches them; a chunk read while the buffer is full is noted instead and
    read again when the hash reaches it (from the page cache: it was just read). No
    reader ever waits for another, and memory stays bounded."""

    def __init__(self, size: int, *, max_buffered: int, prefix: HashedPrefix | None = None):
        self.size = size
        # The first bytes may be hashed already (before the plan was known).
        self._digest = prefix.sha256 if prefix is not None else hashlib.sha256()
        self._frontier = prefix.length if prefix is not None else 0  # first byte not hashed
        self._ahead: dict[int, bytes | int] = {}  # offset: the chunk, or its length to reread
        self._buffered = 0
        self._max_buffered = max_buffered
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.reread_bytes = 0  # read again because the buffer was full (for tests, the bench)
        self.peak_buffered = 0

    def feed(self, offset: int, data: bytes) -> None:
        with self._changed:
            if offset < self._frontier < offset + len(data):  # partly hashed already
                data = data[self._frontier - offset :]
                offset = self._frontier
            if offset < self._frontier or offset in self._ahead:
                return  # hashed or noted already (a part read again)
            if self._buffered + len(data) <= self._max_buffered:
                self._ahead[offset] = data
                self._buffered += len(data)
                self.peak_buffered = max(self.peak_buffered, self._buffered)
            else:
                self._ahead[offset] = len(data)
            self._changed.notify_all()

    def start(self, read: Callable[[int, int], bytes], stop: threading.Event) -> None:
        """Hash in a thread until the whole file is hashed or ``stop`` is set; ``read``
        is ``(length, offset) -> bytes`` from the file."""
        self._thread = threading.Thread(
            target=self._run, args=(read, stop), name="audiolift-sha256", daemon=True
        )
        self._thread.start()

    def _next(self, stop: threading.Event) -> tuple[int, bytes | int] | None:
        with self._changed:
            while self._frontier < self.size and self._frontier not in self._ahead:
                if stop.is_set():
                    return None
                self._changed.wait(0.05)
            if self._frontier >= self.size:
                return None
            entry = self._ahead.pop(self._frontier)
            if isinstance(entry, bytes):
                self._buffered -= len(entry)
            return self._frontier, entry

    def _run(self, read: Callable[[int, int], bytes], stop: threading.Event) -> None:
        try:
            while (taken := self._next(stop)) is not None:
                offset, entry = taken
                if isinstance(entry, int):
                    self.reread_bytes += entry
                    entry = read(entry, offset)
                self._digest.update(entry)
                with self._changed:
                    self._frontier += len(entry)
        except BaseException as error:  # handed to whoever asks for the digest
            self._error = error

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def hexdigest(self) -> str:
        self.join()
        if self._error is not None:
            raise self._error
        with self._changed:
            if self._frontier != self.size:
                raise RuntimeError(f"hashed {self._frontier} of {self.size} bytes")
            return self._digest.hexdigest()


# --- progress ----------------------------------------------------------------------------


class ProgressCounter:
    def __init__(
        self,
        job_id: str,
        plan: PartPlan,
        callback: Callable[[UploadProgress], None] | None,
        *,
        resumed_bytes: int = 0,
        resumed_parts: int = 0,
    ):
        self._job_id = job_id
        self._plan = plan
        self._callback = callback
        self._lock = threading.Lock()
        self._resumed = resumed_bytes
        self.uploaded_bytes = resumed_bytes
        self.parts_done = resumed_parts

    def add(self, count: int, *, parts: int = 0) -> None:
        """``count`` bytes more (fewer when negative) and ``parts`` parts more done."""
        with self._lock:
            self.uploaded_bytes += count
            self.parts_done += parts
            snapshot = UploadProgress(
                job_id=self._job_id,
                total_bytes=self._plan.size,
                uploaded_bytes=self.uploaded_bytes,
                part_count=self._plan.part_count,
                parts_done=self.parts_done,
                resumed_bytes=self._resumed,
            )
            # Under the lock: reports arrive in order, whichever thread sends them.
            if self._callback is not None:
                self._callback(snapshot)


# --- S3's answers ------------------------------------------------------------------------

_XML_CODE = re.compile(r"<Code>\s*([^<]*?)\s*</Code>")
_XML_MESSAGE = re.compile(r"<Message>\s*([^<]*?)\s*</Message>")


def s3_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from S3's XML error body (or empty strings)."""
    text = response.text[:4096] if response.content else ""
    code = _XML_CODE.search(text)
    message = _XML_MESSAGE.search(text)
    return (code.group(1) if code else "", message.group(1) if message else "")


def needs_new_signature(response: httpx.Response) -> bool:
    """S3 refusing the URL itself (expired, bad signature), which re-signing fixes."""
    if response.status_code not in (400, 403):
        return False
    code, message = s3_error(response)
    if response.status_code == 403:
        return not code or code in RESIGN_S3_CODES or "expired" in message.lower()
    return code in {"ExpiredToken", "RequestExpired"} or "expired" in message.lower()


# --- the engine --------------------------------------------------------------------------


@dataclass
class PartUploader:
    s3: httpx.Client
    retry: RetryConfig
    urls: PartUrls
    plan: PartPlan
    snapshot: FileSnapshot
    progress: ProgressCounter
    hasher: OrderedHasher
    stop: threading.Event
    chunk_bytes: int = STREAM_CHUNK_BYTES
    # True: the upload was created with CRC32C (parts sign their CRC32C, completion states
    # the whole file's); False: parts sign their MD5 as Content-MD5.
    signs_crc32c: bool = True
    # The start of the file hashed while the job was created: parts within it are not
    # read again for their CRC32C (and their bytes are in the SHA-256 already).
    prefix: HashedPrefix = field(default_factory=HashedPrefix.empty)
    put_requests: int = 0  # attempts, for tests and the bench
    _count_lock: threading.Lock = field(default_factory=threading.Lock)
    _part_crcs: dict[int, tuple[int, int]] = field(default_factory=dict)

    def hash_part(self, fd: int, part_number: int, *, with_md5: bool = False) -> PartDigest:
        """Read one part, feeding the file's SHA-256; returns its digest, whose checksum is
        made known to the URL supply (so that one signing request covers the parts hashed
        ahead). ``with_md5``: also its MD5 (to compare with S3's ETag for the part)."""
        if self.stop.is_set():
            raise Stopped()
        self.snapshot.check()
        digest = self._digest(fd, part_number, feed=True, with_md5=with_md5)
        with self._count_lock:
            self._part_crcs[part_number] = (digest.crc32c, digest.length)
        self.urls.hashed(part_number, self.checksum(digest))
        return digest

    def checksum(self, digest: PartDigest) -> str:
        """The value signed into the part's URL."""
        if self.signs_crc32c:
            return to_base64(digest.crc32c)
        assert digest.md5 is not None
        return content_md5(digest.md5)

    def whole_crc32c(self) -> str:
        """The whole file's CRC32C, from its parts' (every part must have been hashed)."""
        with self._count_lock:
            crcs = [self._part_crcs[n] for n in range(1, self.plan.part_count + 1)]
        return to_base64(combine_all(crcs))

    def finish_part(
        self, fd: int, part_number: int, digest: PartDigest, uploaded_etag: str | None = None
    ) -> str:
        """PUT a hashed part; returns S3's ETag. A part S3 already holds (``uploaded_etag``,
        when resuming) is sent again only if its ETag shows it is not this file's bytes."""
        if uploaded_etag is not None:
            assert digest.md5 is not None
            if etag_is_md5(uploaded_etag, digest.md5) is not False:
                self.urls.done(part_number)
                return uploaded_etag
            # S3 holds other bytes for this part (the file was edited in place, size kept).
            self.progress.add(-self.plan.part_bytes(part_number), parts=-1)
        if self.stop.is_set():
            raise Stopped()
        self.snapshot.check()
        return self._send(fd, part_number, digest)

    def _digest(self, fd: int, part_number: int, *, feed: bool, with_md5: bool) -> PartDigest:
        offset = self.plan.part_offset(part_number)
        length = self.plan.part_bytes(part_number)
        md5 = hashlib.md5(usedforsecurity=False) if with_md5 or not self.signs_crc32c else None
        if feed and md5 is None:
            known = self.prefix.part_crc32c(offset, length)
            if known is not None:
                return PartDigest(known, length, None)
        crc = 0
        for start in range(0, length, self.chunk_bytes):
            if self.stop.is_set():
                raise Stopped()
            chunk = read_chunk(fd, min(self.chunk_bytes, length - start), offset + start)
            crc = crc32c(chunk, crc)
            if md5 is not None:
                md5.update(chunk)
            if feed:
                self.hasher.feed(offset + start, chunk)
        return PartDigest(crc, length, md5.digest() if md5 is not None else None)

    def _send(self, fd: int, part_number: int, digest: PartDigest) -> str:
        offset = self.plan.part_offset(part_number)
        length = self.plan.part_bytes(part_number)
        checksum = self.checksum(digest)
        signed = self.urls.get(part_number, checksum)
        resigns = resends = 0
        while True:
            response = self._put(signed, checksum, fd, offset, length)
            if response.is_success:
                etag = response.headers.get("etag")
                if not etag:
                    raise UploadError(
                        f"S3 accepted part {part_number} but sent no ETag (if the bucket is "
                        "behind a proxy or CORS, it must expose the ETag header).",
                        code="missing_etag",
                    )
                self.progress.add(0, parts=1)
                self.urls.done(part_number)
                return etag
            if needs_new_signature(response) and resigns < MAX_RESIGNS_PER_PART:
                resigns += 1
                signed = self.urls.resign(part_number)
                continue
            if is_bad_digest(response) and resends < MAX_BAD_DIGEST_RESENDS:
                resends += 1
                self.snapshot.check()
                again = self._digest(fd, part_number, feed=False, with_md5=digest.md5 is not None)
                if again != digest:
                    raise FileChangedError(
                        f"{self.snapshot.path} changed during the upload: part {part_number} "
                        "reads differently from when it was first read."
                    )
                continue
            raise part_refused(part_number, response)

    def _put(
        self, signed: SignedUrl, checksum: str, fd: int, offset: int, length: int
    ) -> httpx.Response:
        """PUT ``length`` bytes of the file from ``offset`` (retrying), read chunk by chunk
        with positioned reads as the connection takes them: a part is never whole in
        memory, and a retry reads it again from the file. Progress counts the bytes handed
        over, taken back when an attempt fails."""
        sent = 0
        chunk_bytes = self.chunk_bytes

        def take_back() -> None:
            nonlocal sent
            if sent:
                self.progress.add(-sent)
                sent = 0

        def body() -> Iterator[bytes]:
            nonlocal sent
            for start in range(0, length, chunk_bytes):
                if self.stop.is_set():
                    raise Stopped()
                # A fresh chunk each time (one copy, kernel to bytes): a transport may keep
                # chunks (a mock, an ASGI app), so a reused buffer could be overwritten.
                chunk = read_chunk(fd, min(chunk_bytes, length - start), offset + start)
                yield chunk
                sent += len(chunk)
                self.progress.add(len(chunk))

        def make_request() -> httpx.Request:
            with self._count_lock:
                self.put_requests += 1
            take_back()  # a retry: the failed attempt's bytes did not arrive
            # The headers the URL was signed with; a Content-MD5 in any case when the part
            # is checked by its MD5 (S3 checks it whenever it is present).
            md5 = {} if self.signs_crc32c else {"Content-MD5": checksum}
            headers = {**md5, **signed.headers, "Content-Length": str(length)}
            return self.s3.build_request("PUT", signed.url, content=body(), headers=headers)

        try:
            response = send_with_retries(self.s3, make_request, self.retry, stop=self.stop)
        except BaseException:
            take_back()
            raise
        if not response.is_success:
            take_back()
        return response


def is_bad_digest(response: httpx.Response) -> bool:
    """S3 refusing a part's bytes as not matching its checksum."""
    return response.status_code == 400 and s3_error(response)[0] == "BadDigest"


def part_refused(part_number: int, response: httpx.Response) -> UploadError:
    code, message = s3_error(response)
    if code == "BadDigest":
        return UploadError(
            f"S3 refused part {part_number} {MAX_BAD_DIGEST_RESENDS + 1} times: the bytes it "
            "received differ from the bytes read from the file (checksum mismatch). "
            "Something between the disk and S3 alters data (disk, memory, or a proxy).",
            code="bad_digest",
            status=response.status_code,
        )
    return UploadError(
        f"S3 refused part {part_number} ({response.status_code}"
        f"{' ' + code if code else ''}): {message or response.reason_phrase}",
        code=_snake(code) if code else "upload_failed",
        status=response.status_code,
    )


def _snake(code: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", code).lower()


# Several parts' checksums at once (one per core, at least two); the SHA-256 takes the
# chunks in file order in its own thread.
HASH_WORKERS = max(2, os.cpu_count() or 2)


class HashWindow:
    """How far hashing may run ahead of the senders: part ``n`` is hashed once
    ``n <= taken + size``, ``taken`` counting the parts senders have picked up hashed. A
    condition on the part number itself, not a semaphore (a permit taken by a later part
    could starve the part a sender waits for); counted from the parts taken, not those
    sent, so that ``size`` parts wait hashed for the next signing request."""

    def __init__(self, size: int):
        self._size = size
        self._taken = 0
        self._changed = threading.Condition()

    def wait_turn(self, part_number: int, stop: threading.Event) -> None:
        with self._changed:
            while part_number > self._taken + self._size:
                if stop.is_set():
                    raise Stopped()
                self._changed.wait(0.05)

    def taken(self) -> None:
        with self._changed:
            self._taken += 1
            self._changed.notify_all()


def upload_parts(
    uploader: PartUploader,
    uploaded: Mapping[int, str],
    *,
    concurrency: int,
    hash_workers: int = HASH_WORKERS,
    lookahead: int | None = None,
) -> dict[int, str]:
    """Hash every part in file order and upload those not in ``uploaded`` ({part number:
    ETag} S3 holds already), with ``concurrency`` workers; returns {part number: ETag}.

    Two stages: ``hash_workers`` read and hash parts in file order, at most ``lookahead``
    parts (default twice ``concurrency``) ahead of the senders, so a sender finds its part
    hashed and one signing request covers the parts hashed meanwhile (a request to the API
    costs tens of ms; signing part by part made the senders wait for it); the senders PUT
    them. The first failure stops the rest (nothing new starts; running PUTs are cut off)
    and is raised."""
    part_numbers = range(1, uploader.plan.part_count + 1)
    senders = max(1, min(concurrency, len(part_numbers)))
    hashers = max(1, min(hash_workers, concurrency, len(part_numbers)))
    stages = _Stages(uploader, uploaded, HashWindow(max(1, lookahead or 2 * concurrency)))
    stop = uploader.stop
    try:
        uploader.hasher.start(stages.read, stop)
        # Submitted in file order and started in that order (the pools' queues are FIFO):
        # what OrderedHasher and HashWindow rely on.
        with (
            ThreadPoolExecutor(hashers, thread_name_prefix="audiolift-hash") as hash_pool,
            ThreadPoolExecutor(senders, thread_name_prefix="audiolift-part") as send_pool,
        ):
            digests: dict[int, Future[PartDigest]] = {}
            futures: dict[Future[str], int] = {}
            try:
                digests = {n: hash_pool.submit(stages.hash, n) for n in part_numbers}
                futures = {send_pool.submit(stages.send, n, digests[n]): n for n in part_numbers}
                return _etags(futures)
            except BaseException:
                stop.set()
                for hashing in digests.values():
                    hashing.cancel()
                for sending in futures:
                    sending.cancel()
                raise
    finally:
        # Every part fed (it finishes), or ``stop`` set (it ends): then the file can close.
        uploader.hasher.join()
        uploader.urls.close()
        stages.close()


def _etags(futures: Mapping[Future[str], int]) -> dict[int, str]:
    """{part number: ETag} as the sends finish; the first real failure is raised."""
    etags: dict[int, str] = {}
    pending: set[Future[str]] = set(futures)
    while pending:
        finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for future in finished:
            error = future.exception()
            if error is not None and not isinstance(error, Stopped):
                raise error
            if error is None:
                etags[futures[future]] = future.result()
    return etags


class _Stages:
    """The two stages' tasks, over one file descriptor."""

    def __init__(self, uploader: PartUploader, uploaded: Mapping[int, str], window: HashWindow):
        self.uploader = uploader
        self.uploaded = uploaded
        self.window = window
        self.stop = uploader.stop
        self.fd = os.open(uploader.snapshot.path, os.O_RDONLY)

    def read(self, length: int, offset: int) -> bytes:
        return read_chunk(self.fd, length, offset)

    def close(self) -> None:
        os.close(self.fd)

    def hash(self, part_number: int) -> PartDigest:
        try:
            self.window.wait_turn(part_number, self.stop)
            if self._waits_for_the_first_request(part_number):
                # The first signing request is what the first PUTs wait for: hashing
                # the next parts meanwhile would take the CPU it needs.
                self.uploader.urls.wait_first_request()
            # A part S3 holds is kept if its ETag is this part's MD5.
            with_md5 = part_number in self.uploaded
            return self.uploader.hash_part(self.fd, part_number, with_md5=with_md5)
        except BaseException:
            self.stop.set()  # at once, from the worker: no queued part starts after this
            raise

    def _waits_for_the_first_request(self, part_number: int) -> bool:
        """A part beyond the first batch that needs reading, in a fresh upload (when
        resuming, the first request may be for any part: nothing waits for it)."""
        uploader = self.uploader
        if self.uploaded or part_number <= uploader.urls.first_batch:
            return False
        plan = uploader.plan
        end = plan.part_offset(part_number) + plan.part_bytes(part_number)
        return end > uploader.prefix.length

    def send(self, part_number: int, digest: Future[PartDigest]) -> str:
        try:
            hashed = self._wait(digest)
            self.window.taken()
            return self.uploader.finish_part(
                self.fd, part_number, hashed, self.uploaded.get(part_number)
            )
        except BaseException:
            self.stop.set()
            raise

    def _wait(self, digest: Future[PartDigest]) -> PartDigest:
        while True:
            try:
                return digest.result(timeout=0.05)
            except FutureTimeout:
                if self.stop.is_set():
                    raise Stopped() from None
            except CancelledError:
                raise Stopped() from None
