"""audiolift: upload very large audio files to the audiolift pipeline and get their
analysis back.

    from audiolift import Client

    client = Client.from_env()
    job = client.upload("concert.wav", concurrency=8).wait()
    print(job.result()["loudness"])
"""

from ._client import Client
from ._errors import (
    APIError,
    AudioliftError,
    AuthenticationError,
    BadRequestError,
    ChecksumMismatchError,
    ConfigurationError,
    ConflictError,
    FileChangedError,
    JobCancelledError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
    UnprocessableEntityError,
    UnsupportedFormatError,
    UnsupportedMediaTypeError,
    UploadError,
    WaitTimeoutError,
)
from ._models import (
    AnalysisCost,
    FormatLimits,
    Job,
    Limits,
    PartPlan,
    UploadedPart,
    UploadProgress,
)
from ._retry import RetryConfig
from ._version import __version__

__all__ = [
    "APIError",
    "AnalysisCost",
    "AudioliftError",
    "AuthenticationError",
    "BadRequestError",
    "ChecksumMismatchError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "FileChangedError",
    "FormatLimits",
    "Job",
    "JobCancelledError",
    "JobFailedError",
    "Limits",
    "NotFoundError",
    "PartPlan",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryConfig",
    "ServerError",
    "TransportError",
    "UnprocessableEntityError",
    "UnsupportedFormatError",
    "UnsupportedMediaTypeError",
    "UploadError",
    "UploadProgress",
    "UploadedPart",
    "WaitTimeoutError",
    "__version__",
]
