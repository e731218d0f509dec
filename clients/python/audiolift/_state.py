"""The CLI's memory of unfinished uploads, so that uploading the same file again can
resume: ``uploads.json`` under $AUDIOLIFT_STATE_DIR (else $XDG_CACHE_HOME/audiolift or
~/.cache/audiolift), keyed by absolute path + size + modification time."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "uploads.json"
MAX_ENTRIES = 200


@dataclass(frozen=True)
class PendingUpload:
    job_id: str
    api_url: str
    path: str
    size: int
    mtime_ns: int
    started_at: float


def state_dir(env: Mapping[str, str]) -> Path:
    explicit = env.get("AUDIOLIFT_STATE_DIR", "").strip()
    if explicit:
        return Path(explicit)
    cache = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache) if cache else Path.home() / ".cache") / "audiolift"


def _key(path: Path, size: int, mtime_ns: int) -> str:
    return f"{path}|{size}|{mtime_ns}"


class UploadState:
    def __init__(self, directory: Path):
        self.file = Path(directory) / STATE_FILE

    def _load(self) -> dict[str, Any]:
        try:
            document = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {}
        entries = document.get("uploads") if isinstance(document, dict) else None
        return entries if isinstance(entries, dict) else {}

    def _save(self, entries: dict[str, Any]) -> None:
        if len(entries) > MAX_ENTRIES:
            newest = sorted(entries.items(), key=lambda item: item[1].get("started_at", 0))
            entries = dict(newest[-MAX_ENTRIES:])
        self.file.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash never leaves half a file.
        handle, temporary = tempfile.mkstemp(dir=self.file.parent, prefix=".uploads-")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump({"version": 1, "uploads": entries}, out, indent=1)
            os.replace(temporary, self.file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def find(self, path: Path, size: int, mtime_ns: int, api_url: str) -> PendingUpload | None:
        entry = self._load().get(_key(path, size, mtime_ns))
        if not isinstance(entry, dict) or entry.get("api_url") != api_url:
            return None
        try:
            return PendingUpload(**entry)
        except TypeError:
            return None

    def remember(self, upload: PendingUpload) -> None:
        entries = self._load()
        entries[_key(Path(upload.path), upload.size, upload.mtime_ns)] = asdict(upload)
        self._save(entries)

    def forget(self, path: Path, size: int, mtime_ns: int) -> None:
        entries = self._load()
        if entries.pop(_key(path, size, mtime_ns), None) is not None:
            self._save(entries)


def pending(job_id: str, api_url: str, path: Path, size: int, mtime_ns: int) -> PendingUpload:
    return PendingUpload(job_id, api_url, str(path), size, mtime_ns, time.time())
