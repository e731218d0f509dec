"""audiolift's own exceptions.

Adapters translate botocore errors into these at their boundary; the API maps them to
HTTP statuses in one place (``audiolift_api.errors``), the processor maps them to a job
failure code. Every error carries a stable snake_case ``code`` and a message a person
can read.
"""

from __future__ import annotations

from typing import Any


class AudioliftError(Exception):
    """Base of every error this project raises on purpose."""

    code: str = "internal"
    default_message: str = "Something went wrong on our side."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


# --- caller errors (the API answers these with a 4xx) --------------------------------


class Unauthorized(AudioliftError):
    code = "unauthorized"
    default_message = "This request needs a valid API key or token."


class NotFound(AudioliftError):
    code = "not_found"
    default_message = "No such job."


class InvalidRequest(AudioliftError):
    code = "invalid_request"
    default_message = "The request is not valid."


class EmptyUpload(InvalidRequest):
    code = "empty_file"
    default_message = "The file is empty: there is nothing to analyse."


class UploadTooLarge(AudioliftError):
    code = "too_large"
    default_message = "The file is larger than this service accepts."


class UnsupportedMediaType(AudioliftError):
    code = "unsupported_media_type"
    default_message = "Only audio files can be uploaded."


class Conflict(AudioliftError):
    """The job is not in a state that allows this action."""

    code = "conflict"
    default_message = "The job is not in a state that allows this."


class UploadClosed(Conflict):
    """S3 holds no open multipart upload by that id: it was completed (maybe by a
    concurrent request) or aborted."""

    default_message = "The upload is no longer open."


class IncompleteUpload(Conflict):
    code = "incomplete_upload"
    default_message = "Some parts of the upload are missing."


class ChecksumConflict(Conflict):
    code = "checksum_conflict"
    default_message = "The checksum differs from the one declared for this upload."


class UploadChecksumMismatch(Conflict):
    """S3 refused to complete: the object it assembled does not have the whole-file
    checksum the client stated. The upload stays open."""

    code = "checksum_mismatch"
    default_message = "The uploaded parts do not match the file's checksum."


class ChecksumRequired(InvalidRequest):
    code = "checksum_required"
    default_message = (
        "This upload was created with a checksum algorithm: state the file's checksum."
    )


class ChecksumNotDeclared(InvalidRequest):
    code = "checksum_not_declared"
    default_message = "This upload was not created with that checksum algorithm."


class SizeMismatch(AudioliftError):
    code = "size_mismatch"
    default_message = "The uploaded parts do not add up to the declared size."


class RateLimited(AudioliftError):
    code = "rate_limited"
    default_message = "Too many requests; slow down and retry."


# --- infrastructure errors ------------------------------------------------------------


class TransientError(AudioliftError):
    """A dependency failed in a way that may pass (throttling, 5xx, a dropped
    connection). The API answers 503; the processor lets SQS redeliver."""

    code = "service_unavailable"
    default_message = "A storage service is temporarily unavailable; retry shortly."


class ConfigurationError(AudioliftError):
    """A required setting is missing or malformed. Raised at start-up."""

    code = "configuration_error"


# --- processing failures (a job ends ``failed`` with this code) ------------------------


class ProcessingFailure(AudioliftError):
    """A permanent failure of one object's analysis: the job ends ``failed`` with
    ``code`` and the SQS message is acknowledged (retrying cannot help)."""

    code = "internal"
    default_message = "The recording could not be analysed."


class UnsupportedFormat(ProcessingFailure):
    code = "unsupported_format"
    default_message = "The file is not in an audio format we can read."


class CorruptAudio(ProcessingFailure):
    code = "corrupt_audio"
    default_message = "The audio file is damaged or truncated."


class AudioTooLarge(ProcessingFailure):
    code = "too_large"
    default_message = "The recording is larger than this service analyses."


class ObjectChanged(ProcessingFailure):
    code = "object_changed"
    default_message = "The file was replaced while it was being analysed."


class ObjectMissing(ProcessingFailure):
    code = "object_missing"
    default_message = "The uploaded file is gone: it was deleted before it could be analyzed."


class ChecksumMismatch(ProcessingFailure):
    code = "checksum_mismatch"
    default_message = "The file's SHA-256 differs from the one declared for the upload."


class ProcessingTimeout(ProcessingFailure):
    code = "timeout"
    default_message = "The analysis did not finish within the time allowed."


class JobCancelled(AudioliftError):
    """The job was cancelled while it was being processed; stop quietly."""

    code = "cancelled"
    default_message = "The job was cancelled."
