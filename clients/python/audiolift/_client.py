"""The client: configuration, the API calls, and uploads."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from ._checksums import CRC32C
from ._errors import (
    AudioliftError,
    ChecksumMismatchError,
    ConfigurationError,
    ConflictError,
    FileChangedError,
    api_error,
)
from ._http import json_or_none, raise_for_api_error, send_with_retries
from ._models import Job, Limits, PartPlan, UploadedPart, UploadProgress
from ._retry import RetryConfig
from ._upload import (
    STREAM_CHUNK_BYTES,
    FileSnapshot,
    HashedPrefix,
    HeadStart,
    OrderedHasher,
    PartUploader,
    PartUrls,
    ProgressCounter,
    SignedUrl,
    audio_format,
    upload_parts,
)
from ._version import __version__

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# A part is up to hundreds of MiB: allow slow links to write it.
DEFAULT_S3_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
MAX_S3_CONNECTIONS = 64
# Hashed while the job is created, at most: a few parts' worth (hashing runs at over
# 1 GB/s, the request takes tens to hundreds of ms).
HEAD_START_BYTES = 256 * 1024 * 1024

ProgressCallback = Callable[[UploadProgress], None]


class Client:
    """A connection to the audiolift API.

    ``transport``/``s3_transport`` replace the HTTP transports (tests use
    ``httpx.MockTransport`` or an ASGI app). The API key goes only to the API, never to
    S3: part PUTs and result downloads use a second client with no credentials, since
    presigned URLs carry their own. Uploads hold about twice ``concurrency`` chunks of
    ``upload_chunk_bytes`` in memory (in flight, and waiting to be hashed in file order),
    whatever the part size."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        s3_transport: httpx.BaseTransport | None = None,
        retry: RetryConfig | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        s3_timeout: httpx.Timeout | float = DEFAULT_S3_TIMEOUT,
        max_s3_connections: int = MAX_S3_CONNECTIONS,
        upload_chunk_bytes: int = STREAM_CHUNK_BYTES,
    ):
        self.base_url = _api_url(base_url)
        if api_key:
            _check_api_key(api_key)
        self.retry = retry or RetryConfig()
        if upload_chunk_bytes < 1:
            raise ValueError("upload_chunk_bytes must be positive")
        self._chunk_bytes = upload_chunk_bytes
        headers = {"User-Agent": f"audiolift-python/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._api = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
        )
        limits = httpx.Limits(
            max_connections=max_s3_connections, max_keepalive_connections=max_s3_connections
        )
        self._s3 = httpx.Client(
            headers={"User-Agent": f"audiolift-python/{__version__}"},
            transport=s3_transport or httpx.HTTPTransport(limits=limits),
            timeout=s3_timeout,
            follow_redirects=False,
        )

    # --- configuration ---------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> Client:
        """From AUDIOLIFT_API_URL and AUDIOLIFT_API_KEY."""
        env = os.environ if env is None else env
        url = env.get("AUDIOLIFT_API_URL", "").strip()
        if not url:
            raise ConfigurationError("AUDIOLIFT_API_URL is not set.")
        return cls(url, env.get("AUDIOLIFT_API_KEY", "").strip() or None, **options)

    def close(self) -> None:
        self._api.close()
        self._s3.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- requests --------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        def make_request() -> httpx.Request:
            return self._api.build_request(method, path, json=json_body, params=params)

        return send_with_retries(self._api, make_request, self.retry)

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        response = self._send(method, path, json_body=json_body, params=params)
        raise_for_api_error(response)
        return json_or_none(response) if response.content else None

    # --- jobs ------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        return Job.from_api(self._call("GET", f"/v1/jobs/{_segment(job_id)}"), self)

    def jobs(
        self, *, status: str | None = None, limit: int | None = None, page_size: int = 50
    ) -> Iterator[Job]:
        """The caller's jobs, newest first, page after page (at most ``limit``)."""
        cursor: str | None = None
        yielded = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - yielded)
            if size <= 0:
                return
            params: dict[str, Any] = {"limit": size}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            page = self._call("GET", "/v1/jobs", params=params)
            for document in page.get("jobs") or []:
                yield Job.from_api(document, self)
                yielded += 1
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def result(self, job_id: str) -> Any:
        """The analysis document. A large one comes as a 303 to a presigned URL, fetched
        without the API key."""
        response = self._send("GET", f"/v1/jobs/{_segment(job_id)}/result")
        if response.status_code in (301, 302, 303, 307, 308):
            location = response.headers.get("location")
            if not location:
                raise api_error(response.status_code, None, fallback="a redirect without Location")
            url = str(self._api.base_url.join(location))
            fetched = send_with_retries(
                self._s3, lambda: self._s3.build_request("GET", url), self.retry
            )
            if fetched.status_code >= 400:
                raise api_error(fetched.status_code, None, fallback="fetching the result failed")
            return fetched.json()
        raise_for_api_error(response)
        return response.json()

    def cancel(self, job_id: str) -> Job:
        """Cancel an unfinished job (an upload in progress is aborted). A finished job is
        left alone (ConflictError): the API checks and cancels in one conditional write."""
        response = self._send("POST", f"/v1/jobs/{_segment(job_id)}/cancel")
        if response.status_code == 409:
            job = self.get_job(job_id)
            raise ConflictError(
                f"Job {job_id} is already {job.status}; there is nothing to cancel.",
                code="already_finished",
                status=409,
            )
        raise_for_api_error(response)
        return self.get_job(job_id)

    def delete(self, job_id: str) -> None:
        """Delete a finished job with its audio and result (an unfinished one is cancelled)."""
        self._call("DELETE", f"/v1/jobs/{_segment(job_id)}")

    def limits(self) -> Limits:
        """What a file may be: maximum size, part sizes, the formats analysed and the
        largest file of each one processor run finishes, and the cost per GiB."""
        document = self._call("GET", "/v1/limits")
        if not isinstance(document, Mapping):
            raise api_error(200, None, fallback="the limits are not a JSON object")
        return Limits.from_api(document)

    def health(self) -> bool:
        return self._send("GET", "/health").status_code == 200

    # --- uploads ---------------------------------------------------------------------

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        concurrency: int = 8,
        on_progress: ProgressCallback | None = None,
        content_type: str | None = None,
        sha256: str | None = None,
        filename: str | None = None,
        on_created: Callable[[Job], None] | None = None,
    ) -> Job:
        """Upload a file in parallel parts straight to S3 and complete the upload; returns
        the job (processing starts on its own; ``job.wait()`` follows it).

        A file that is not audio in a supported format (told from its first bytes) is
        refused before any request (UnsupportedFormatError). Every part is sent with its
        CRC32C, which S3 checks, and so is the whole file's at completion; the file's
        SHA-256, computed while the parts are read, is declared at completion and checked
        again by the processor
        (``job.verified_sha256``). ``sha256`` is the digest you already hold (e.g. from
        where the file came): declared at creation, and an upload whose bytes do not
        match it is aborted before completion (ChecksumMismatchError).

        ``on_created`` gets the job as soon as it exists (e.g. to remember it for a later
        ``resume``). If the upload stops with an error, the error's ``job_id`` names the
        job to resume."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        expected = _sha256_hex(sha256)
        snapshot = FileSnapshot.take(path)
        audio_format(snapshot)  # before any request: a file that is not audio goes nowhere
        body: dict[str, Any] = {
            "filename": filename or snapshot.path.name,
            "size": snapshot.size,
            "checksum_algorithm": CRC32C,
        }
        if content_type:
            body["content_type"] = content_type
        if expected:
            body["sha256"] = expected
        head_start = HeadStart(
            snapshot.path, snapshot.size, limit=HEAD_START_BYTES, unit=self._chunk_bytes
        ).start()
        try:
            created = self._call("POST", "/v1/uploads", json_body=body)
        finally:
            prefix = head_start.finish()
        job_id = str(created["job_id"])
        job = Job.from_api({**created, **body}, self)
        if on_created is not None:
            on_created(job)
        try:
            plan = PartPlan(snapshot.size, int(created["part_size"]), int(created["part_count"]))
            # The URLs signed at creation carry no checksum (the parts were not hashed
            # yet): every part gets a URL signed for its CRC32C instead.
            return self._transfer(job, plan, snapshot, {}, concurrency, on_progress, prefix)
        except FileChangedError as error:
            error.job_id = job_id
            self._abort_quietly(job_id)  # its parts are useless now
            raise
        except AudioliftError as error:
            error.job_id = job_id
            raise

    def resume(
        self,
        job_id: str,
        path: str | os.PathLike[str],
        *,
        concurrency: int = 8,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Finish an interrupted upload: list the parts S3 holds, keep those of the planned
        size, upload the others, complete. The parts S3 holds are read and hashed again
        from the local file (the SHA-256 declared at completion covers the whole file, and
        a part whose ETag shows other bytes is sent again). A job already past its upload
        is returned."""
        job = self.get_job(job_id)
        if job.status == "cancelled":
            raise ConflictError(
                f"Job {job_id} was cancelled; start a new upload.", code="cancelled", status=409
            )
        if job.status != "awaiting_upload":
            return job
        plan = job.plan()
        snapshot = FileSnapshot.take(path)
        if snapshot.size != job.size:
            raise FileChangedError(
                f"{snapshot.path} is {snapshot.size} bytes but job {job_id} is an upload of "
                f"{job.size} bytes: it is not the same file (or it changed)."
            )
        try:
            kept = {
                part.part_number: part
                for part in self.uploaded_parts(job_id)
                if 1 <= part.part_number <= plan.part_count
                and part.size == plan.part_bytes(part.part_number)
            }
            return self._transfer(job, plan, snapshot, kept, concurrency, on_progress)
        except AudioliftError as error:
            error.job_id = job_id
            raise

    def uploaded_parts(self, job_id: str) -> list[UploadedPart]:
        """The parts S3 holds for an upload in progress."""
        listed = self._call("GET", f"/v1/uploads/{_segment(job_id)}/parts")
        return [
            UploadedPart(int(p["part_number"]), str(p["etag"]), int(p["size"]))
            for p in listed.get("parts") or []
        ]

    def abort_upload(self, job_id: str) -> None:
        self._call("DELETE", f"/v1/uploads/{_segment(job_id)}")

    def _signer(self, job: Job) -> Callable[[Mapping[int, str]], list[SignedUrl]]:
        field = "checksum_crc32c" if job.checksum_algorithm == CRC32C else "content_md5"

        def sign(checksums: Mapping[int, str]) -> list[SignedUrl]:
            signed = self._call(
                "POST",
                f"/v1/uploads/{_segment(job.job_id)}/parts",
                json_body={
                    "part_numbers": sorted(checksums),
                    field: {str(n): checksums[n] for n in sorted(checksums)},
                },
            )
            return [SignedUrl.from_api(p) for p in signed.get("parts") or []]

        return sign

    def _transfer(
        self,
        job: Job,
        plan: PartPlan,
        snapshot: FileSnapshot,
        kept: Mapping[int, UploadedPart],
        concurrency: int,
        on_progress: ProgressCallback | None,
        prefix: HashedPrefix | None = None,
    ) -> Job:
        """Upload the parts not ``kept``, hashing all of them (but for those in ``prefix``,
        hashed already), then complete."""
        prefix = prefix or HashedPrefix.empty(self._chunk_bytes)
        job_id, expected_sha256 = job.job_id, job.sha256
        progress = ProgressCounter(
            job_id,
            plan,
            on_progress,
            resumed_bytes=sum(part.size for part in kept.values()),
            resumed_parts=len(kept),
        )
        progress.add(0)  # the first report: where we start from
        stop = threading.Event()
        uploader = PartUploader(
            s3=self._s3,
            retry=self.retry,
            urls=PartUrls(
                self._signer(job),
                first_batch=min(concurrency, plan.part_count),
                low_water=max(1, concurrency // 2),
                stop=stop,
            ),
            plan=plan,
            snapshot=snapshot,
            progress=progress,
            hasher=OrderedHasher(
                snapshot.size, max_buffered=concurrency * self._chunk_bytes, prefix=prefix
            ),
            prefix=prefix,
            stop=stop,
            chunk_bytes=self._chunk_bytes,
            signs_crc32c=job.checksum_algorithm == CRC32C,
        )
        uploaded = {n: part.etag for n, part in kept.items()}
        etags = upload_parts(uploader, uploaded, concurrency=concurrency)
        snapshot.check()  # changed while being read: neither the parts nor the digest hold
        digest = uploader.hasher.hexdigest()
        if expected_sha256 and digest != expected_sha256:
            self._abort_quietly(job_id)
            raise ChecksumMismatchError(
                f"{snapshot.path.name} does not have the SHA-256 declared for it "
                f"({expected_sha256}; the file's is {digest}); the upload was aborted."
            )
        parts = [{"part_number": n, "etag": etags[n]} for n in sorted(etags)]
        completion: dict[str, Any] = {"parts": parts, "sha256": digest}
        if uploader.signs_crc32c:
            completion["crc32c"] = uploader.whole_crc32c()  # S3 checks it
        done = self._call("POST", f"/v1/uploads/{_segment(job_id)}/complete", json_body=completion)
        # The API answers with the job itself (older ones: only its id and status).
        return Job.from_api(done, self) if "size" in done else self.get_job(job_id)

    def _abort_quietly(self, job_id: str) -> None:
        with contextlib.suppress(AudioliftError):
            self.abort_upload(job_id)


def _api_url(value: str) -> str:
    """The API's base URL, checked before any request: a mistyped one would otherwise be
    retried as if the network had failed."""
    url = (value or "").strip().rstrip("/")
    if not url:
        raise ConfigurationError("The API URL is empty.")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ConfigurationError(f"The API URL {url!r} is not a valid URL: {error}.") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"The API URL must start with http:// or https:// and name a host, not {url!r}."
        )
    return url


def _check_api_key(api_key: str) -> None:
    # An HTTP header carries printable ASCII; never echo the key itself.
    if not (api_key.isascii() and api_key.isprintable()) or any(c.isspace() for c in api_key):
        raise ConfigurationError(
            "The API key has a character no API key has (a space, a line break or a "
            "non-ASCII character): check how it was copied."
        )


def _segment(job_id: str) -> str:
    """A job id as one path segment (ids are hex; anything else cannot escape the path)."""
    from urllib.parse import quote

    if not job_id:
        raise ValueError("job_id is empty")
    return quote(job_id, safe="")


def _sha256_hex(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
        raise ValueError("sha256 must be the file's SHA-256 as 64 hex digits")
    return value.strip().lower()
