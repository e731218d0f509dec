"""Helpers of the SDK tests (a module of its own name: ``conftest`` is ambiguous across the
test tree). An in-memory fake of the audiolift API and of S3's presigned part URLs, served through
``httpx.MockTransport`` handlers (no patching): the SDK under test speaks real HTTP
semantics to it — status codes, headers, redirects, streamed bodies — and faults are
injected at the transport, where real networks fail.

``FakeCloud`` keeps what a real deployment would: jobs, each multipart upload's parts
(bytes and ETag), signed URLs with expiry, a record of every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import google_crc32c
import httpx
from audiolift import Client, RetryConfig

API_URL = "https://api.audiolift.test"
S3_HOST = "s3.audiolift.test"
API_KEY = "test-key-alice"
PART_SIZE = 64 * 1024


GiB = 1024**3
LIMITS: dict[str, Any] = {
    "max_upload_bytes": 5 * GiB,
    "min_part_bytes": 5 * 1024**2,
    "max_part_bytes": 5 * GiB,
    "preferred_part_bytes": 16 * 1024**2,
    "max_parts": 10_000,
    "processor_timeout_seconds": 900,
    "formats": [
        {"name": "wav", "label": "WAV", "extensions": [".wav", ".wave", ".bwf"],
         "analysis_mib_per_second": 52.5, "max_analysable_bytes": 38_654_705_664,
         "usd_per_gib_analysed": 0.0021},
        {"name": "flac", "label": "FLAC", "extensions": [".flac"],
         "analysis_mib_per_second": 11.25, "max_analysable_bytes": 8_833_204_224,
         "usd_per_gib_analysed": 0.0098},
    ],
    "cost": {"usd_per_gib_analysed": 0.0021, "price_per_gb_second": 0.0000166667,
             "price_date": "2026-11-30", "memory_mb": 2048, "architecture": "x86_64"},
}  # fmt: skip


@dataclass
class FakeJob:
    job_id: str
    owner: str
    filename: str
    size: int
    content_type: str
    part_size: int
    part_count: int
    sha256: str | None
    status: str = "awaiting_upload"
    completed_sha256: str | None = None  # declared at completion
    checksum_algorithm: str | None = None  # "CRC32C" when declared at creation
    completed_crc32c: str | None = None  # the whole file's, stated at completion
    verified_sha256: str | None = None  # what the processor would compute (set by tests)
    progress: int = 0
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    error: dict[str, str] | None = None
    summary: dict[str, Any] | None = None
    result: Any = None
    result_via_redirect: bool = False
    completed_with: list[dict[str, Any]] | None = None
    object_bytes: bytes | None = None
    created_at: str = ""
    # Statuses a GET /v1/jobs/{id} moves through, one per poll: (status, progress, error).
    script: list[tuple[str, int, dict[str, str] | None]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status,
            "progress": self.progress,
            "filename": self.filename,
            "size": self.size,
            "content_type": self.content_type,
            "part_size": self.part_size,
            "part_count": self.part_count,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }
        if self.sha256 or self.completed_sha256:
            document["sha256"] = self.sha256 or self.completed_sha256
        if self.verified_sha256:
            document["verified_sha256"] = self.verified_sha256
        if self.checksum_algorithm:
            document["checksum_algorithm"] = self.checksum_algorithm
        if self.error:
            document["error"] = self.error
        if self.summary is not None:
            document["summary"] = self.summary
        return document


@dataclass
class Fault:
    """Fires on requests ``matches`` accepts, ``times`` times: raises what ``action``
    raises, or answers what it returns."""

    matches: Callable[[httpx.Request], bool]
    action: Callable[[httpx.Request], httpx.Response]
    times: int = 1
    fired: int = 0


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


def s3_error(status: int, code: str, message: str) -> httpx.Response:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return httpx.Response(
        status, content=body.encode(), headers={"content-type": "application/xml"}
    )


class FakeCloud:
    def __init__(self, *, part_size: int = PART_SIZE, ttl: float = 900.0):
        self.part_size = part_size
        self.ttl = ttl
        self.now = time.time()  # the fake's clock (epoch seconds), moved by tests
        self.jobs: dict[str, FakeJob] = {}
        # signature -> job, part, expiry, the checksum header signed in (None: none)
        self.signatures: dict[str, tuple[str, int, float, tuple[str, str] | None]] = {}
        self.requests: list[httpx.Request] = []
        self.faults: list[Fault] = []
        self.part_puts: list[int] = []  # part numbers of PUTs S3 accepted
        self.bad_digests: list[int] = []  # part numbers of PUTs refused with BadDigest
        self.sign_calls: list[list[int]] = []
        # part number -> the checksum (header, base64 value) last signed into its URL
        self.signed_checksums: dict[int, tuple[str, str]] = {}
        self.put_threads: set[str] = set()
        self.lock = threading.Lock()
        self._ids = 0
        self.first_batch = 100
        self.limits: dict[str, Any] = dict(LIMITS)

    # --- test helpers ----------------------------------------------------------------

    def inject(
        self,
        matches: Callable[[httpx.Request], bool],
        action: Callable[[httpx.Request], httpx.Response],
        times: int = 1,
    ) -> Fault:
        fault = Fault(matches, action, times)
        self.faults.append(fault)
        return fault

    def on_request(
        self, matches: Callable[[httpx.Request], bool], hook: Callable[[], None]
    ) -> None:
        """Run ``hook`` (once) when a matching request arrives, before it is handled."""

        def fire(request: httpx.Request) -> httpx.Response:
            hook()
            return self._route(request)

        self.inject(matches, fire)

    def api_requests(self, method: str, pattern: str) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.url.host != S3_HOST and r.method == method and re.fullmatch(pattern, r.url.path)
        ]

    def add_job(self, status: str = "completed", **fields: Any) -> FakeJob:
        job = self._new_job(
            filename=fields.pop("filename", "take.wav"),
            size=fields.pop("size", 1000),
            content_type="audio/wav",
            sha256=None,
        )
        job.status = status
        for name, value in fields.items():
            setattr(job, name, value)
        return job

    def expire_all_urls(self) -> None:
        self.now += self.ttl + 1

    # --- transports --------------------------------------------------------------------

    def client(self, retry: RetryConfig | None = None, **options: Any) -> Client:
        """A client whose API and S3 are this fake (``options``: Client's keywords)."""
        return Client(
            API_URL,
            API_KEY,
            transport=self.api_transport(),
            s3_transport=self.s3_transport(),
            retry=retry,
            **options,
        )

    def api_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def s3_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a streamed part body, as a server reads it
        with self.lock:
            self.requests.append(request)
            for fault in self.faults:
                if fault.fired < fault.times and fault.matches(request):
                    fault.fired += 1
                    return fault.action(request)
            return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == S3_HOST:
            return self._s3(request)
        return self._api(request)

    # --- S3 ----------------------------------------------------------------------------

    def _s3(self, request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers, "the API key must never reach S3"
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        signed = self.signatures.get(query.get("X-Amz-Signature", ""))
        if request.method == "GET" and request.url.path.startswith("/bucket/results/"):
            job = self.jobs[request.url.path.rsplit("/", 1)[1].removesuffix(".json")]
            return httpx.Response(200, json=job.result)
        if signed is None:
            return s3_error(
                403, "SignatureDoesNotMatch", "The request signature we calculated does not match."
            )
        job_id, part_number, expires, signed_checksum = signed
        if self.now > expires:
            return s3_error(403, "AccessDenied", "Request has expired")
        # A signed header must be sent, with the value signed.
        if signed_checksum is not None and (
            request.headers.get(signed_checksum[0]) != signed_checksum[1]
        ):
            return s3_error(
                403, "SignatureDoesNotMatch", "The request signature we calculated does not match."
            )
        job = self.jobs[job_id]
        if job.status != "awaiting_upload":
            return s3_error(404, "NoSuchUpload", "The specified upload does not exist.")
        if int(query["partNumber"]) != part_number:
            return s3_error(403, "SignatureDoesNotMatch", "signature is for another part")
        body = request.content
        assert int(request.headers["content-length"]) == len(body)
        # S3 checks a checksum header whenever it is sent, signed or not.
        for header, actual in (("content-md5", _content_md5), (CRC32C_HEADER, _crc32c)):
            sent = request.headers.get(header)
            if sent is not None and sent != actual(body):
                self.bad_digests.append(part_number)
                return s3_error(
                    400, "BadDigest", f"The {header} you specified did not match what we received."
                )
        etag = '"' + hashlib.md5(body).hexdigest() + '"'
        job.parts[part_number] = (etag, body)
        self.part_puts.append(part_number)
        self.put_threads.add(threading.current_thread().name)
        return httpx.Response(200, headers={"ETag": etag})

    def _sign(
        self,
        job: FakeJob,
        numbers: list[int],
        checksums: dict[int, tuple[str, str]] | None = None,
    ) -> list[dict[str, Any]]:
        out = []
        expires = self.now + self.ttl
        for n in numbers:
            digest = (checksums or {}).get(n)
            signature = hashlib.sha256(
                f"{job.job_id}/{n}/{expires}/{len(self.signatures)}".encode()
            ).hexdigest()
            self.signatures[signature] = (job.job_id, n, expires, digest)
            url = (
                f"https://{S3_HOST}/bucket/uploads/{job.job_id}?uploadId=u-{job.job_id}"
                f"&partNumber={n}&X-Amz-Expires={int(self.ttl)}&X-Amz-Signature={signature}"
            )
            out.append(
                {
                    "part_number": n,
                    "url": url,
                    "expires_at": _iso(expires),
                    "headers": dict([digest]) if digest else {},
                }
            )
        return out

    # --- the API -------------------------------------------------------------------------

    def _new_job(
        self,
        *,
        filename: str,
        size: int,
        content_type: str,
        sha256: str | None,
        checksum_algorithm: str | None = None,
    ) -> FakeJob:
        self._ids += 1
        job_id = f"{self._ids:032x}"
        part_size = min(self.part_size, size)
        job = FakeJob(
            job_id=job_id,
            owner="alice",
            filename=filename,
            size=size,
            content_type=content_type,
            part_size=part_size,
            part_count=math.ceil(size / part_size) if size else 0,
            sha256=sha256,
            created_at=_iso(self.now + self._ids),
            checksum_algorithm=checksum_algorithm,
        )
        self.jobs[job_id] = job
        return job

    def _api(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return error(
                401, "unauthorized", "Send a valid API key as 'Authorization: Bearer <key>'."
            )
        path = request.url.path
        method = request.method
        body: Any = json.loads(request.content) if request.content else None
        if method == "POST" and path == "/v1/uploads":
            if body["size"] <= 0:
                return error(422, "empty_upload", "The file is empty.")
            job = self._new_job(
                filename=body["filename"],
                size=body["size"],
                content_type=body.get("content_type") or "audio/wav",
                sha256=body.get("sha256"),
                checksum_algorithm=body.get("checksum_algorithm"),
            )
            first = self._sign(job, list(range(1, min(job.part_count, self.first_batch) + 1)))
            return httpx.Response(
                201,
                json={
                    "job_id": job.job_id,
                    "status": job.status,
                    "part_size": job.part_size,
                    "part_count": job.part_count,
                    "parts": first,
                    "expires_at": first[0]["expires_at"],
                },
            )
        if method == "GET" and path == "/v1/limits":
            return httpx.Response(200, json=self.limits)
        if method == "GET" and path == "/v1/jobs":
            params = dict(request.url.params)
            ordered = sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)
            if params.get("status"):
                ordered = [j for j in ordered if j.status == params["status"]]
            start = int(params.get("cursor") or 0)
            limit = int(params.get("limit") or 20)
            page = ordered[start : start + limit]
            more = start + limit < len(ordered)
            return httpx.Response(
                200,
                json={
                    "jobs": [j.view() for j in page],
                    "next_cursor": str(start + limit) if more else None,
                },
            )
        match = re.fullmatch(r"/v1/(uploads|jobs)/([^/]+)(/[a-z]+)?", path)
        if not match:
            return error(404, "not_found", f"No route {path}.")
        kind, job_id, tail = match.group(1), match.group(2), match.group(3) or ""
        found = self.jobs.get(job_id)
        if found is None:
            return error(404, "not_found", f"No job {job_id!r}.")
        job = found
        if kind == "uploads":
            return self._upload_route(method, tail, job, body)
        return self._job_route(method, tail, job)

    def _upload_route(self, method: str, tail: str, job: FakeJob, body: Any) -> httpx.Response:
        if job.status != "awaiting_upload" and (method, tail) != ("POST", "/complete"):
            return error(409, "conflict", f"The upload is closed: the job is {job.status}.")
        if method == "POST" and tail == "/parts":
            numbers = sorted(set(body["part_numbers"]))
            crc32cs = {int(n): d for n, d in (body.get("checksum_crc32c") or {}).items()}
            if crc32cs and job.checksum_algorithm != "CRC32C":
                return error(400, "checksum_not_declared", "Not an upload declared CRC32C.")
            md5s = {int(n): d for n, d in (body.get("content_md5") or {}).items()}
            checksums = {n: ("Content-MD5", d) for n, d in md5s.items()}
            checksums |= {n: (CRC32C_HEADER, d) for n, d in crc32cs.items()}
            well_formed = all(map(_is_md5, md5s.values())) and all(
                _is_digest(d, 4) for d in crc32cs.values()
            )
            if set(checksums) - set(numbers) or not well_formed or set(md5s) & set(crc32cs):
                return error(422, "invalid_request", "One base64 checksum per part.")
            self.sign_calls.append(numbers)
            self.signed_checksums.update(checksums)
            return httpx.Response(200, json={"parts": self._sign(job, numbers, checksums)})
        if method == "GET" and tail == "/parts":
            return httpx.Response(
                200,
                json={
                    "parts": [
                        {"part_number": n, "etag": etag, "size": len(data)}
                        for n, (etag, data) in sorted(job.parts.items())
                    ]
                },
            )
        if method == "POST" and tail == "/complete":
            return self._complete(job, body)
        if method == "DELETE" and tail == "":
            job.status = "cancelled"
            return httpx.Response(204)
        return error(405, "method_not_allowed", "No such method.")

    def _complete(self, job: FakeJob, body: Any) -> httpx.Response:
        if job.status != "awaiting_upload":
            return httpx.Response(200, json={"job_id": job.job_id, "status": job.status})
        missing = [n for n in range(1, job.part_count + 1) if n not in job.parts]
        if missing:
            return error(409, "incomplete_upload", f"{len(missing)} part(s) missing: {missing}.")
        for declared in (body or {}).get("parts") or []:
            if job.parts[declared["part_number"]][0] != declared["etag"]:
                return error(409, "conflict", "ETag differs")
        job.object_bytes = b"".join(job.parts[n][1] for n in range(1, job.part_count + 1))
        if len(job.object_bytes) != job.size:
            return error(422, "size_mismatch", "The parts do not add up to the size.")
        declared = (body or {}).get("sha256")
        if job.sha256 and declared and declared != job.sha256:
            return error(409, "checksum_conflict", "The SHA-256 differs from the declared one.")
        crc = (body or {}).get("crc32c")
        if (crc is not None) != (job.checksum_algorithm == "CRC32C"):
            code = "checksum_not_declared" if crc is not None else "checksum_required"
            return error(400, code, "State the whole file's CRC32C for (only) a CRC32C upload.")
        if crc is not None and crc != _crc32c(job.object_bytes):
            return error(409, "checksum_mismatch", "The parts do not match the file's CRC32C.")
        job.completed_crc32c = crc
        job.completed_with = body["parts"] if body else None
        job.completed_sha256 = declared
        job.status = "uploaded"
        return httpx.Response(200, json={"job_id": job.job_id, "status": job.status})

    def _job_route(self, method: str, tail: str, job: FakeJob) -> httpx.Response:
        if method == "GET" and tail == "":
            if job.script:
                job.status, job.progress, job.error = job.script.pop(0)
            return httpx.Response(200, json=job.view())
        if method == "GET" and tail == "/result":
            if job.status != "completed":
                return error(409, "conflict", f"The job has no result: it is {job.status}.")
            if job.result_via_redirect:
                return httpx.Response(
                    303,
                    headers={
                        "location": f"https://{S3_HOST}/bucket/results/{job.job_id}.json?X-Amz-Signature=r"
                    },
                )
            return httpx.Response(200, json=job.result)
        if method == "POST" and tail == "/cancel":
            if job.status in ("completed", "failed", "cancelled"):
                return error(409, "conflict", f"The job is {job.status}.")
            job.status = "cancelled"
            return httpx.Response(202, json={"job_id": job.job_id, "status": "cancelled"})
        if method == "DELETE" and tail == "":
            if job.status in ("completed", "failed", "cancelled"):
                del self.jobs[job.job_id]
                return httpx.Response(204)
            job.status = "cancelled"
            return httpx.Response(202, json={"job_id": job.job_id, "status": "cancelled"})
        return error(405, "method_not_allowed", "No such method.")


def wav_bytes(size: int, seed: bytes = b"audiolift") -> bytes:
    """``size`` bytes that begin as a WAV file does (48 kHz 16-bit stereo PCM), then
    deterministic, non-repeating bytes: what the SDK's sniffing accepts."""
    header = (
        b"RIFF" + (size - 8).to_bytes(4, "little") + b"WAVE"
        + b"fmt " + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little") + (2).to_bytes(2, "little")  # PCM, 2 channels
        + (48_000).to_bytes(4, "little") + (192_000).to_bytes(4, "little")
        + (4).to_bytes(2, "little") + (16).to_bytes(2, "little")
        + b"data" + (size - 44).to_bytes(4, "little")
    )  # fmt: skip
    return header + hashlib.shake_256(seed).digest(size - len(header))


def _content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


CRC32C_HEADER = "x-amz-checksum-crc32c"


def _crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def _is_digest(value: object, length: int) -> bool:
    try:
        return isinstance(value, str) and len(base64.b64decode(value, validate=True)) == length
    except binascii.Error:
        return False


def _is_md5(value: object) -> bool:
    return _is_digest(value, 16)


def corrupts_body(cloud: FakeCloud) -> Callable[[httpx.Request], httpx.Response]:
    """A PUT whose body changes on the way (one byte flipped), then handled by S3."""

    def action(request: httpx.Request) -> httpx.Response:
        body = bytearray(request.content)
        body[len(body) // 2] ^= 0xFF
        changed = httpx.Request(
            request.method, request.url, headers=request.headers, content=bytes(body)
        )
        return cloud._s3(changed)

    return action


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_part_put(part_number: int | None = None) -> Callable[[httpx.Request], bool]:
    def matches(request: httpx.Request) -> bool:
        if request.url.host != S3_HOST or request.method != "PUT":
            return False
        return part_number is None or f"partNumber={part_number}&" in str(request.url)

    return matches


def is_api(method: str, pattern: str) -> Callable[[httpx.Request], bool]:
    def matches(request: httpx.Request) -> bool:
        return (
            request.url.host != S3_HOST
            and request.method == method
            and re.fullmatch(pattern, request.url.path) is not None
        )

    return matches


def raises(
    error: type[httpx.TransportError], message: str = "dropped"
) -> Callable[[httpx.Request], httpx.Response]:
    def action(request: httpx.Request) -> httpx.Response:
        raise error(message, request=request)

    return action


def answers(response: Callable[[], httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: response()


# --- faults in front of a real transport ----------------------------------------------


@dataclass
class Faulty(httpx.BaseTransport):
    """A real transport with injected faults: ``rules`` are (matches, action, times)."""

    inner: httpx.BaseTransport
    rules: list[list[Any]] = field(default_factory=list)
    seen: list[httpx.Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(
        self,
        matches: Callable[[httpx.Request], bool],
        action: Callable[[httpx.Request], httpx.Response],
        times: int = 1,
    ) -> None:
        self.rules.append([matches, action, times])

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seen.append(request)
            for rule in self.rules:
                if rule[2] > 0 and rule[0](request):
                    rule[2] -= 1
                    action = rule[1]
                    break
            else:
                action = None
        if action is not None:
            request.read()
            return action(request)
        return self.inner.handle_request(request)

    def puts(self, part_number: int | None = None) -> list[httpx.Request]:
        return [r for r in self.seen if is_put(part_number)(r)]


def is_put(part_number: int | None = None) -> Callable[[httpx.Request], bool]:
    def matches(request: httpx.Request) -> bool:
        if request.method != "PUT":
            return False
        return part_number is None or request.url.params.get("partNumber") == str(part_number)

    return matches


def s3_refusal(status: int, code: str, message: str) -> Callable[[httpx.Request], httpx.Response]:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return lambda request: httpx.Response(status, content=body)


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
