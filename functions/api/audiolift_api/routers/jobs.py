"""The /v1/jobs routes: thin — parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from audiolift_core.jobs import JobStatus
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse, RedirectResponse

from ..dependencies import AuthenticatedRoute, OwnedJob, Owner, Service, error_responses
from ..models import JobListResponse, JobStatusResponse, JobView

router = APIRouter(prefix="/v1", route_class=AuthenticatedRoute)


@router.get(
    "/jobs/{job_id}",
    response_model=JobView,
    responses=error_responses(404),
    summary="A job's status, progress and summary",
)
def get_job(job: OwnedJob) -> Any:
    return JobView.model_validate(job, from_attributes=True)


@router.get(
    "/jobs",
    response_model=JobListResponse,
    responses=error_responses(400),
    summary="The caller's jobs, newest first",
)
def list_jobs(
    svc: Service,
    caller: Owner,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Any:
    page = svc.list_jobs(caller, status=status, limit=limit, cursor=cursor)
    return JobListResponse(
        jobs=[JobView.model_validate(j, from_attributes=True) for j in page.jobs],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/jobs/{job_id}/result",
    responses={
        200: {"description": "The analysis document"},
        303: {"description": "A short-lived URL of a large document"},
        **error_responses(404, 409),
    },
    summary="The full analysis document",
)
def get_result(job: OwnedJob, svc: Service) -> Response:
    location = svc.result(job)
    if location.url is not None:
        return RedirectResponse(location.url, status_code=303)
    return JSONResponse(location.document)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobStatusResponse,
    responses=error_responses(404, 409),
    summary="Cancel an unfinished job; 409 for a finished one (which is left as it is)",
)
def cancel_job(job: OwnedJob, svc: Service) -> Any:
    cancelled = svc.cancel(job)
    return {"job_id": cancelled.job_id, "status": cancelled.status.value}


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    responses={202: {"model": JobStatusResponse}, **error_responses(404, 409)},
    summary="Cancel an unfinished job (202) or delete a finished one with its files (204)",
)
def delete_job(job: OwnedJob, svc: Service) -> Response:
    if svc.cancel_or_delete(job):
        return Response(status_code=204)
    return JSONResponse({"job_id": job.job_id, "status": JobStatus.CANCELLED.value}, 202)
