"""The part-upload engine: parallel PUTs of file parts straight to presigned S3 URLs.

Memory stays at ``concurrency`` chunks in flight (1 MiB each), whatever the part size:
each worker reads its part with positioned reads (no shared file offset, never the whole
part or file) one chunk at a time, as the connection takes the bytes. URLs are signed
just in time in batches, re-signed when S3 says one expired.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ._errors import FileChangedError, UploadError
from ._http import Stopped, send_with_retries
from ._models import PartPlan, UploadProgress
from ._retry import RetryConfig

STREAM_CHUNK_BYTES = 1024 * 1024
URL_BATCH_SIZE = 100  # the API signs at most 1000 at once; 100 is what it hands out first
URL_REFRESH_MARGIN_SECONDS = 60.0  # don't start a part on a URL about to expire
MAX_RESIGNS_PER_PART = 3
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

    @classmethod
    def from_api(cls, document: Mapping[str, Any]) -> SignedUrl:
        return cls(
            part_number=int(document["part_number"]),
            url=str(document["url"]),
            expires_at=parse_timestamp(document.get("expires_at")),
        )


def parse_timestamp(value: Any) -> float:
    if not isinstance(value, str) or not value:
        return float("inf")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")


Signer = Callable[[Sequence[int]], list[SignedUrl]]


class PartUrls:
    """A thread-safe supply of part URLs. A part without a fresh URL triggers one signing
    request for it and the next still-needed parts (a batch), so URLs are made shortly
    before use and a long upload never runs on expired ones."""

    def __init__(
        self,
        sign: Signer,
        needed: Iterable[int],
        *,
        batch_size: int = URL_BATCH_SIZE,
        refresh_margin: float = URL_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ):
        self._sign = sign
        self._needed = sorted(set(needed))
        self._open = set(self._needed)
        self._urls: dict[int, SignedUrl] = {}
        self._batch_size = batch_size
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self.sign_requests = 0

    def add(self, urls: Iterable[SignedUrl]) -> None:
        with self._lock:
            for url in urls:
                self._urls[url.part_number] = url

    def _fresh(self, part_number: int, now: float) -> SignedUrl | None:
        url = self._urls.get(part_number)
        if url is not None and url.expires_at - self._margin > now:
            return url
        return None

    def get(self, part_number: int) -> str:
        with self._lock:
            now = self._clock()
            url = self._fresh(part_number, now)
            if url is not None:
                return url.url
            batch = [part_number]
            for number in self._needed:
                if len(batch) >= self._batch_size:
                    break
                if number > part_number and number in self._open and not self._fresh(number, now):
                    batch.append(number)
            self._store(batch)
            return self._urls[part_number].url

    def resign(self, part_number: int) -> str:
        """A new URL for one part (S3 refused the old one)."""
        with self._lock:
            self._urls.pop(part_number, None)
            self._store([part_number])
            return self._urls[part_number].url

    def done(self, part_number: int) -> None:
        with self._lock:
            self._open.discard(part_number)
            self._urls.pop(part_number, None)

    def _store(self, batch: Sequence[int]) -> None:
        self.sign_requests += 1
        signed = self._sign(batch)
        for url in signed:
            self._urls[url.part_number] = url
        missing = [n for n in batch if n not in self._urls]
        if missing:
            raise UploadError(f"The API did not sign part(s) {missing}.", code="unsigned_parts")


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

    def add(self, count: int, *, part_done: bool = False) -> None:
        with self._lock:
            self.uploaded_bytes += count
            if part_done:
                self.parts_done += 1
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
    stop: threading.Event
    chunk_bytes: int = STREAM_CHUNK_BYTES
    put_requests: int = 0  # attempts, for tests and the bench
    _count_lock: threading.Lock = field(default_factory=threading.Lock)

    def upload_part(self, fd: int, part_number: int) -> str:
        """PUT one part, streamed from the file chunk by chunk; returns S3's ETag."""
        if self.stop.is_set():
            raise Stopped()
        self.snapshot.check()
        offset = self.plan.part_offset(part_number)
        length = self.plan.part_bytes(part_number)
        url = self.urls.get(part_number)
        resigns = 0
        while True:
            response = self._put(url, fd, offset, length)
            if response.is_success:
                etag = response.headers.get("etag")
                if not etag:
                    raise UploadError(
                        f"S3 accepted part {part_number} but sent no ETag (if the bucket is "
                        "behind a proxy or CORS, it must expose the ETag header).",
                        code="missing_etag",
                    )
                self.progress.add(0, part_done=True)
                self.urls.done(part_number)
                return etag
            if needs_new_signature(response) and resigns < MAX_RESIGNS_PER_PART:
                resigns += 1
                url = self.urls.resign(part_number)
                continue
            code, message = s3_error(response)
            raise UploadError(
                f"S3 refused part {part_number} ({response.status_code}"
                f"{' ' + code if code else ''}): {message or response.reason_phrase}",
                code=_snake(code) if code else "upload_failed",
                status=response.status_code,
            )

    def _put(self, url: str, fd: int, offset: int, length: int) -> httpx.Response:
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
            return self.s3.build_request(
                "PUT", url, content=body(), headers={"Content-Length": str(length)}
            )

        try:
            response = send_with_retries(self.s3, make_request, self.retry, stop=self.stop)
        except BaseException:
            take_back()
            raise
        if not response.is_success:
            take_back()
        return response


def _snake(code: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", code).lower()


def upload_parts(
    uploader: PartUploader, part_numbers: Sequence[int], *, concurrency: int
) -> dict[int, str]:
    """Upload ``part_numbers`` with ``concurrency`` workers; returns {part number: ETag}.
    The first failure stops the rest (nothing new starts; running PUTs are cut off) and
    is raised."""
    if not part_numbers:
        return {}
    workers = max(1, min(concurrency, len(part_numbers)))
    etags: dict[int, str] = {}
    fd = os.open(uploader.snapshot.path, os.O_RDONLY)

    def task(part_number: int) -> str:
        try:
            return uploader.upload_part(fd, part_number)
        except BaseException:
            uploader.stop.set()  # at once, from the worker: no queued part starts after this
            raise

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="audiolift-part") as pool:
            futures: dict[Future[str], int] = {}
            try:
                futures = {pool.submit(task, n): n for n in part_numbers}
                pending: set[Future[str]] = set(futures)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in finished:
                        error = future.exception()
                        if error is not None and not isinstance(error, Stopped):
                            raise error
                        if error is None:
                            etags[futures[future]] = future.result()
            except BaseException:
                uploader.stop.set()
                for future in futures:
                    future.cancel()
                raise
    finally:
        os.close(fd)
    return etags
