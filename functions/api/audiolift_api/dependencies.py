"""What every router shares (FastAPI's "bigger applications" layout): the service, the
caller, the caller's job, and the error responses the OpenAPI document lists."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from audiolift_core.jobs import Job
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from .auth import resolve_owner
from .service import UploadService


def service(request: Request) -> UploadService:
    svc: UploadService = request.app.state.service
    return svc


def authenticate(request: Request) -> str:
    """Who is calling (Unauthorized if nobody we know); remembered on the request."""
    caller = resolve_owner(request, service(request).settings)
    request.state.owner = caller
    return caller


def owner(request: Request) -> str:
    """The caller: already known on an ``AuthenticatedRoute`` (before the body was read)."""
    caller: str | None = getattr(request.state, "owner", None)
    return caller if caller is not None else authenticate(request)


class AuthenticatedRoute(APIRoute):
    """A route that authenticates the caller before FastAPI reads and parses the request
    body: without credentials, any body (malformed or huge) gets 401, never a validation
    error that tells an anonymous caller how the API parses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            authenticate(request)
            return await handle(request)

        return authenticated


def owned_job(
    job_id: str,
    request: Request,
    svc: Annotated[UploadService, Depends(service)],
    caller: Annotated[str, Depends(owner)],
) -> Job:
    request.state.job_id = job_id
    return svc.get_job(caller, job_id)


Service = Annotated[UploadService, Depends(service)]
Owner = Annotated[str, Depends(owner)]
OwnedJob = Annotated[Job, Depends(owned_job)]


# Error responses reference one ErrorResponse schema (create_app adds it to the components)
# instead of naming the model per status: FastAPI builds a pydantic field for every
# (route, status, model), twice on a cold start, which cost ~50 ms for ~100 of them.
ERROR_SCHEMA_REF = {"$ref": "#/components/schemas/ErrorResponse"}
ERROR_DESCRIPTIONS = {
    400: "The request is not valid",
    401: "No valid API key or token",
    404: "No such job (or not the caller's)",
    409: "The job is not in a state that allows this",
    413: "The file, or the request body, is larger than the limit",
    415: "Not an audio file",
    422: "The request body or parameters are malformed, or the sizes do not add up",
    503: "A storage service is temporarily unavailable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: these statuses plus the ones every route can give."""
    return {
        status: {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
        }
        for status in sorted({401, 422, 503, *statuses})
    }
