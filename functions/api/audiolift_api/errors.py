"""The one place where errors become HTTP responses."""

from __future__ import annotations

from typing import Any

from audiolift_core.errors import (
    AudioliftError,
    Conflict,
    EmptyUpload,
    InvalidRequest,
    NotFound,
    RateLimited,
    SizeMismatch,
    TransientError,
    Unauthorized,
    UnsupportedMediaType,
    UploadTooLarge,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

# Most specific first: the first matching class decides.
HTTP_STATUS: list[tuple[type[AudioliftError], int]] = [
    (Unauthorized, 401),
    (NotFound, 404),
    (EmptyUpload, 422),
    (InvalidRequest, 400),
    (UploadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (Conflict, 409),
    (SizeMismatch, 422),
    (RateLimited, 429),
    (TransientError, 503),
]

_STARLETTE_CODES = {
    400: "invalid_request",  # e.g. a body the JSON parser gives up on (nested too deep)
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def status_for(error: AudioliftError) -> int:
    for error_type, status in HTTP_STATUS:
        if isinstance(error, error_type):
            return status
    return 500


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(error: AudioliftError) -> JSONResponse:
    status = status_for(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "2"}
    body = error_body(error.code, error.message, error.details)
    return JSONResponse(body, status_code=status, headers=headers)


def _describe_validation(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors()[:5]:
        location = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        problems.append(f"{location or 'body'}: {item.get('msg', 'invalid')}")
    return "The request is not valid: " + "; ".join(problems) + "."


def install(app: FastAPI) -> None:
    async def on_audiolift_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, AudioliftError)
        return error_response(error)

    async def on_validation_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        details = {"errors": [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in error.errors()[:20]
        ]}  # fmt: skip
        return JSONResponse(
            error_body("validation_error", _describe_validation(error), details), status_code=422
        )

    async def on_http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = _STARLETTE_CODES.get(error.status_code, "http_error")
        message = error.detail if isinstance(error.detail, str) else "Request refused."
        if error.status_code == 404:
            message = "No such route."
        return JSONResponse(
            error_body(code, message), status_code=error.status_code, headers=error.headers
        )

    app.add_exception_handler(AudioliftError, on_audiolift_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
