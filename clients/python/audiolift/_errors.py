"""The SDK's exceptions. Every one carries ``code`` (the server's snake_case code, or the
SDK's own), ``message`` (a sentence a person understands) and ``status`` (the HTTP status,
or None when no response was involved)."""

from __future__ import annotations

from typing import Any


class AudioliftError(Exception):
    """Base of everything the SDK raises on purpose."""

    default_code = "audiolift_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status
        self.details = details or {}
        # The job an upload error belongs to, when there is one (to resume or inspect it).
        self.job_id: str | None = None

    def __str__(self) -> str:
        return self.message


class ConfigurationError(AudioliftError):
    """No API URL or key could be found, or a config file is unreadable."""

    default_code = "configuration"


class APIError(AudioliftError):
    """The API answered with an error status; ``code``/``message`` are the server's."""

    default_code = "api_error"


class BadRequestError(APIError):
    default_code = "invalid_request"


class AuthenticationError(APIError):
    default_code = "unauthorized"


class PermissionDeniedError(APIError):
    default_code = "forbidden"


class NotFoundError(APIError):
    default_code = "not_found"


class ConflictError(APIError):
    default_code = "conflict"


class PayloadTooLargeError(APIError):
    default_code = "upload_too_large"


class UnsupportedMediaTypeError(APIError):
    default_code = "unsupported_media_type"


class UnprocessableEntityError(APIError):
    default_code = "unprocessable"


class RateLimitError(APIError):
    default_code = "rate_limited"


class ServerError(APIError):
    default_code = "server_error"


class TransportError(AudioliftError):
    """No usable answer: the connection failed, dropped or timed out (after retries)."""

    default_code = "transport_error"


class UploadError(AudioliftError):
    """S3 refused a part for a reason a retry or a re-signed URL does not fix."""

    default_code = "upload_failed"


class FileChangedError(AudioliftError):
    """The file changed (size or modification time) while it was being uploaded, or it
    no longer matches the upload being resumed."""

    default_code = "file_changed"


class UnsupportedFormatError(AudioliftError):
    """The file is not audio in a format the service analyses (told from its first
    bytes, before anything is uploaded)."""

    default_code = "unsupported_format"


class ChecksumMismatchError(AudioliftError):
    """The file's SHA-256, computed while it was uploaded, is not the one declared for it."""

    default_code = "checksum_mismatch"


class JobFailedError(AudioliftError):
    """The job ended without a result; ``code``/``message`` are the job's error."""

    default_code = "job_failed"

    def __init__(self, message: str, *, code: str | None = None, job: Any = None):
        super().__init__(message, code=code)
        self.job = job


class JobCancelledError(JobFailedError):
    default_code = "cancelled"


class WaitTimeoutError(AudioliftError, TimeoutError):
    """``Job.wait`` gave up before the job finished (the job itself goes on)."""

    default_code = "wait_timeout"

    def __init__(self, message: str, *, job: Any = None):
        super().__init__(message)
        self.job = job


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def api_error(status: int, body: Any, *, fallback: str = "") -> APIError:
    """The exception for an error response, from its ``{"error": {code, message}}`` body
    (or a generic one when the body is not ours, e.g. from a proxy)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = message = None
    details: dict[str, Any] | None = None
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        details = error.get("details") if isinstance(error.get("details"), dict) else None
    if not message:
        message = f"The API answered {status}{': ' + fallback if fallback else ''}."
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(message, code=code, status=status, details=details)
