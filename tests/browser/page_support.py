"""What the browser tests share: the stack they get from their fixture, the page's URL,
a log of the page's requests, and test files (a module of its own so that test modules
can import it; conftest modules are not for importing)."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import google_crc32c
import httpx
import numpy as np
import soundfile as sf
from audiolift_devstack.clients import StackClients
from audiolift_devstack.stack import StackInfo

MiB = 1024 * 1024
PART_BYTES = 5 * MiB  # the stack's part size in these tests (S3's minimum)
SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class BrowserStack:
    name: str  # which S3: "moto" or "seaweedfs"
    info: StackInfo
    clients: StackClients

    @property
    def web_origin(self) -> str:
        return origin(self.info.web_url)

    def page_url(self, api_key: str | None = None, page: str = "", **query: str) -> str:
        """The page (or ``page``, e.g. "uppy.html") with the API and key in its query."""
        params = {"api": self.info.api_url, "key": api_key or self.info.api_key, **query}
        return f"{self.web_origin}/{page}?{urlencode(params)}"

    def job_item(self, job_id: str) -> dict[str, Any]:
        item: dict[str, Any] = self.clients.dynamodb.get_item(
            TableName=self.info.table, Key={"job_id": {"S": job_id}}
        )["Item"]
        return item

    def cancel_job(self, job_id: str) -> None:
        """Cancel a job whose analysis the test does not need (the processor skips or
        stops it), so that the stack has nothing left to do when it stops."""
        httpx.post(
            f"{self.info.api_url}/v1/jobs/{job_id}/cancel",
            headers={"Authorization": f"Bearer {self.info.api_key}"},
        )

    def object_sha256(self, key: str) -> str:
        body = self.clients.s3.get_object(Bucket=self.info.bucket, Key=key)["Body"]
        return hashlib.sha256(body.read()).hexdigest()

    def held_parts(self, job_id: str) -> list[int]:
        """The part numbers S3 holds for the job's unfinished upload."""
        s3 = self.clients.s3
        uploads = s3.list_multipart_uploads(Bucket=self.info.bucket, Prefix=f"uploads/{job_id}")
        numbers: set[int] = set()
        for upload in uploads.get("Uploads", []):
            listed = s3.list_parts(
                Bucket=self.info.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            numbers |= {p["PartNumber"] for p in listed.get("Parts", []) if p["Size"] > 0}
        return sorted(numbers)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def part_number(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["partNumber"][0])


class NetworkLog:
    """Every request the page made and how it ended, and how many part PUTs were in
    flight at once (counted from the browser's own request events)."""

    def __init__(self, page: Any, s3_endpoint: str):
        self.s3_origin = origin(s3_endpoint)
        self.entries: list[tuple[str, str, int, int]] = []  # method, url, status, length
        self.requests: list[Any] = []
        self.in_flight = 0
        self.max_in_flight = 0
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)
        page.on("response", self._answered)

    def _is_part_put(self, request: Any) -> bool:
        return bool(request.method == "PUT" and origin(request.url) == self.s3_origin)

    def _started(self, request: Any) -> None:
        self.requests.append(request)
        if self._is_part_put(request):
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _ended(self, request: Any) -> None:
        if self._is_part_put(request):
            self.in_flight -= 1

    def _answered(self, response: Any) -> None:
        request = response.request
        # Playwright does not keep Blob bodies (the part PUTs): the header gives their size.
        length = request.header_value("content-length")
        self.entries.append((request.method, request.url, response.status, int(length or 0)))

    def to(self, target_origin: str, method: str | None = None) -> list[tuple[str, str, int, int]]:
        return [
            e
            for e in self.entries
            if origin(e[1]) == target_origin and (method is None or e[0] == method)
        ]

    def part_puts(self, status: int | None = 200) -> list[tuple[str, str, int, int]]:
        return [e for e in self.to(self.s3_origin, "PUT") if status is None or e[2] == status]

    def clear(self) -> None:
        self.entries.clear()
        self.requests.clear()
        self.max_in_flight = self.in_flight


def write_music_like_wav(path: Path, seconds: int = 60) -> bytes:
    """Stereo: a few harmonic notes with attack/decay envelopes, two seconds of digital
    silence in the middle; returns the file's bytes."""
    t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    note = np.floor(t / 0.5).astype(int)
    freqs = np.array([220.0, 277.18, 329.63, 440.0, 369.99, 293.66])[note % 6]
    phase = 2 * np.pi * np.cumsum(freqs) / SAMPLE_RATE
    envelope = np.exp(-3.0 * (t % 0.5))
    tone = (np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)) * envelope
    stereo = np.stack([0.25 * tone, 0.2 * np.roll(tone, 240)], axis=1)
    middle = seconds // 2
    stereo[(middle - 1) * SAMPLE_RATE : (middle + 1) * SAMPLE_RATE] = 0.0
    sf.write(path, stereo, SAMPLE_RATE, subtype="PCM_16")
    return path.read_bytes()


def wav_header(data_bytes: int) -> bytes:
    """A canonical 48 kHz 16-bit stereo WAV header for ``data_bytes`` of samples."""
    header = b"RIFF" + struct.pack("<I", min(36 + data_bytes, 0xFFFFFFFF)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, SAMPLE_RATE, SAMPLE_RATE * 4, 4, 16)
    return header + b"data" + struct.pack("<I", min(data_bytes, 0xFFFFFFFF))


def write_noise_wav(path: Path, size: int) -> bytes:
    """A WAV of ``size`` bytes whose samples are random; returns its bytes."""
    data = wav_header(size - 44) + os.urandom(size - 44)
    path.write_bytes(data)
    return data


def crc32c_base64(data: bytes) -> str:
    """The CRC32C of ``data`` as S3 writes it: 4 bytes big-endian, base64."""
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def part_crc32cs(data: bytes, part_bytes: int = PART_BYTES) -> dict[str, str]:
    """{"<part number>": base64 CRC32C} as the page sends them when it signs parts."""
    return {
        str(i // part_bytes + 1): crc32c_base64(data[i : i + part_bytes])
        for i in range(0, len(data), part_bytes)
    }
