"""What a client may upload: audio file extensions and content types, and the display
name a declared filename becomes.

Pure code: no AWS here. The processor sniffs the real format from the bytes; this policy
only keeps obvious non-audio out before a byte is uploaded.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from .errors import InvalidRequest, UnsupportedMediaType


@dataclass(frozen=True)
class UploadFormat:
    """An audio format a client may declare: by its extensions or its media types."""

    name: str  # as the format table (formats.json) names it
    label: str
    extensions: tuple[str, ...]
    media_types: tuple[str, ...]  # accepted when declared; the first is recorded


UPLOAD_FORMATS: tuple[UploadFormat, ...] = (
    UploadFormat("wav", "WAV", (".wav", ".wave", ".bwf"),
                 ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave")),
    UploadFormat("rf64", "RF64/BW64", (".rf64",), ("audio/wav", "audio/rf64")),
    UploadFormat("w64", "Sony Wave64", (".w64",), ("audio/x-w64",)),
    UploadFormat("flac", "FLAC", (".flac",), ("audio/flac", "audio/x-flac")),
    UploadFormat("ogg", "Ogg (Vorbis, Opus, FLAC)", (".ogg", ".oga", ".opus"),
                 ("audio/ogg", "audio/opus")),
    UploadFormat("mp3", "MP3", (".mp3",), ("audio/mpeg", "audio/mp3")),
    UploadFormat("aiff", "AIFF", (".aif", ".aiff"), ("audio/aiff", "audio/x-aiff")),
    UploadFormat("aifc", "AIFF-C", (".aifc",), ("audio/aiff", "audio/x-aiff")),
    UploadFormat("caf", "Core Audio (CAF)", (".caf",), ("audio/x-caf",)),
    UploadFormat("au", "Sun/NeXT AU", (".au", ".snd"), ("audio/basic",)),
)  # fmt: skip

AUDIO_EXTENSIONS = frozenset(e for f in UPLOAD_FORMATS for e in f.extensions)
AUDIO_CONTENT_TYPES = frozenset(t for f in UPLOAD_FORMATS for t in f.media_types)
# Browsers send this for files they cannot type; the extension decides then.
GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
EXTENSION_CONTENT_TYPES = {e: f.media_types[0] for f in UPLOAD_FORMATS for e in f.extensions}

MAX_FILENAME_CHARS = 200
_UNSAFE_FILENAME_CHARS = re.compile(r"[/\\<>:\"|?*]+")
# Unicode control (Cc: C0, DEL, C1) and format (Cf: U+202E right-to-left override, U+200B
# zero-width space, ...) characters: invisible, or they make a name display as another.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf"})


def sanitize_filename(raw: str) -> str:
    """A display name: no control or format characters, NFC, the last path component,
    no path or reserved characters, at most MAX_FILENAME_CHARS characters (keeping the
    extension)."""
    visible = "".join(c for c in raw if unicodedata.category(c) not in _HIDDEN_CATEGORIES)
    name = unicodedata.normalize("NFC", visible).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME_CHARS.sub("_", name).strip(" .")
    if not name:
        raise InvalidRequest("The filename is empty once path and control characters are removed.")
    if len(name) > MAX_FILENAME_CHARS:
        suffix = PurePosixPath(name).suffix[:16]
        name = name[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return name


def resolve_content_type(filename: str, declared: str | None) -> str:
    """The content type to record, or UnsupportedMediaType. The processor sniffs the real
    format from the bytes; this only keeps obvious non-audio out early."""
    extension = PurePosixPath(filename).suffix.lower()
    content_type = (declared or "").split(";", 1)[0].strip().lower()
    if content_type in GENERIC_CONTENT_TYPES:
        if extension in AUDIO_EXTENSIONS:
            return EXTENSION_CONTENT_TYPES[extension]
        raise UnsupportedMediaType(
            f"{filename!r} does not have an audio file extension "
            f"({', '.join(sorted(AUDIO_EXTENSIONS))})."
        )
    if content_type not in AUDIO_CONTENT_TYPES:
        raise UnsupportedMediaType(f"Content type {content_type!r} is not an accepted audio type.")
    if extension and extension not in AUDIO_EXTENSIONS:
        raise UnsupportedMediaType(f"{filename!r} does not have an audio file extension.")
    return content_type
