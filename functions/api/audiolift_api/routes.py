"""The /v1 routes: thin — parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from audiolift_core.jobs import Job, JobStatus
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from .auth import resolve_owner
from .models import (
    CompleteRequest,
    CreateUploadRequest,
    CreateUploadResponse,
    JobListResponse,
    JobStatusResponse,
    JobView,
    ListPartsResponse,
    SignPartsRequest,
    SignPartsResponse,
)
from .service import UploadService


def service(request: Request) -> UploadService:
    svc: UploadService = request.app.state.service
    return svc


def owner(request: Request, svc: Annotated[UploadService, Depends(service)]) -> str:
    caller = resolve_owner(request, svc.settings, svc.api_keys)
    request.state.owner = caller
    return caller


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
_ERROR_DESCRIPTIONS = {
    400: "The request is not valid",
    401: "No valid API key or token",
    404: "No such job (or not the caller's)",
    409: "The job is not in a state that allows this",
    413: "The file is larger than the limit",
    415: "Not an audio file",
    422: "The request body or parameters are malformed, or the sizes do not add up",
    503: "A storage service is temporarily unavailable",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
        }
        for status in sorted({401, 422, 503, *statuses})
    }


router = APIRouter(prefix="/v1")


@router.post(
    "/uploads",
    status_code=201,
    response_model=CreateUploadResponse,
    responses=_errors(400, 413, 415),
    summary="Start an upload: a job, a multipart upload and the first part URLs",
)
def create_upload(body: CreateUploadRequest, request: Request, svc: Service, caller: Owner) -> Any:
    job = svc.create_upload(
        caller,
        filename=body.filename,
        size=body.size,
        content_type=body.content_type,
        sha256=body.sha256,
    )
    request.state.job_id = job.job_id
    request.state.metric = "UploadsCreated"
    parts = svc.first_batch(job)
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "part_size": job.part_size,
        "part_count": job.part_count,
        "parts": [p.to_dict() for p in parts],
        "expires_at": parts[0].expires_at if parts else job.created_at,
    }


@router.post(
    "/uploads/{job_id}/parts",
    response_model=SignPartsResponse,
    responses=_errors(400, 404, 409),
    summary="Sign part URLs just in time",
)
def sign_parts(body: SignPartsRequest, job: OwnedJob, svc: Service) -> Any:
    return {"parts": [p.to_dict() for p in svc.sign_parts(job, body.part_numbers)]}


@router.get(
    "/uploads/{job_id}/parts",
    response_model=ListPartsResponse,
    responses=_errors(404, 409),
    summary="The parts S3 holds, for a resuming client",
)
def list_parts(job: OwnedJob, svc: Service) -> Any:
    return {
        "parts": [
            {"part_number": p.part_number, "etag": p.etag, "size": p.size}
            for p in svc.list_parts(job)
        ]
    }


@router.post(
    "/uploads/{job_id}/complete",
    response_model=JobStatusResponse,
    responses=_errors(404, 409, 413),
    summary="Verify the parts (contiguous, sizes as declared) and complete the upload",
)
def complete_upload(
    job: OwnedJob, svc: Service, request: Request, body: CompleteRequest | None = None
) -> Any:
    declared = [(p.part_number, p.etag) for p in (body.parts or [])] if body else []
    done = svc.complete(job, declared)
    if job.status is JobStatus.AWAITING_UPLOAD:
        request.state.metric = "UploadsCompleted"
    return {"job_id": done.job_id, "status": done.status.value}


@router.delete(
    "/uploads/{job_id}",
    status_code=204,
    responses=_errors(404, 409),
    summary="Abort the multipart upload; the job is cancelled",
)
def abort_upload(job: OwnedJob, svc: Service, request: Request) -> Response:
    svc.abort_upload(job)
    request.state.metric = "UploadsAborted"
    return Response(status_code=204)


@router.get(
    "/jobs/{job_id}",
    response_model=JobView,
    responses=_errors(404),
    summary="A job's status, progress and summary",
)
def get_job(job: OwnedJob) -> Any:
    return job.public()


@router.get(
    "/jobs",
    response_model=JobListResponse,
    responses=_errors(400),
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
    return {"jobs": [j.public() for j in page.jobs], "next_cursor": page.next_cursor}


@router.get(
    "/jobs/{job_id}/result",
    responses={
        200: {"description": "The analysis document"},
        303: {"description": "A short-lived URL of a large document"},
        **_errors(404, 409),
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
    responses=_errors(404, 409),
    summary="Cancel an unfinished job; 409 for a finished one (which is left as it is)",
)
def cancel_job(job: OwnedJob, svc: Service) -> Any:
    cancelled = svc.cancel(job)
    return {"job_id": cancelled.job_id, "status": cancelled.status.value}


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    responses={202: {"model": JobStatusResponse}, **_errors(404, 409)},
    summary="Cancel an unfinished job (202) or delete a finished one with its files (204)",
)
def delete_job(job: OwnedJob, svc: Service) -> Response:
    if svc.cancel_or_delete(job):
        return Response(status_code=204)
    return JSONResponse({"job_id": job.job_id, "status": JobStatus.CANCELLED.value}, 202)
