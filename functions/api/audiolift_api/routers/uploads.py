"""The /v1/uploads routes: thin — parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Any

from audiolift_core.checksums import PartChecksum
from audiolift_core.errors import InvalidRequest
from audiolift_core.jobs import JobStatus
from fastapi import APIRouter, Request, Response

from ..dependencies import AuthenticatedRoute, OwnedJob, Owner, Service, error_responses
from ..models import (
    CompleteRequest,
    CreateUploadRequest,
    CreateUploadResponse,
    JobView,
    ListPartsResponse,
    SignPartsRequest,
    SignPartsResponse,
)

router = APIRouter(prefix="/v1", route_class=AuthenticatedRoute)


@router.post(
    "/uploads",
    status_code=201,
    response_model=CreateUploadResponse,
    responses=error_responses(400, 413, 415),
    summary="Start an upload: a job, a multipart upload and the first part URLs",
)
def create_upload(body: CreateUploadRequest, request: Request, svc: Service, caller: Owner) -> Any:
    job = svc.create_upload(
        caller,
        filename=body.filename,
        size=body.size,
        content_type=body.content_type,
        sha256=body.sha256,
        checksum_algorithm=body.checksum_algorithm,
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
    responses=error_responses(400, 404, 409, 413),
    summary="Sign part URLs just in time (with a signed checksum header where given)",
)
def sign_parts(body: SignPartsRequest, job: OwnedJob, svc: Service) -> Any:
    return {
        "parts": [p.to_dict() for p in svc.sign_parts(job, body.part_numbers, _checksums(body))]
    }


def _checksums(body: SignPartsRequest) -> dict[int, PartChecksum]:
    crc32cs = {int(n): PartChecksum.crc32c(v) for n, v in (body.checksum_crc32c or {}).items()}
    md5s = {int(n): PartChecksum.content_md5(v) for n, v in (body.content_md5 or {}).items()}
    both = sorted(set(crc32cs) & set(md5s))
    if both:
        raise InvalidRequest(
            f"Give each part one checksum, not two (parts {both[:10]}).",
            details={"parts": both[:10]},
        )
    return crc32cs | md5s


@router.get(
    "/uploads/{job_id}/parts",
    response_model=ListPartsResponse,
    responses=error_responses(404, 409),
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
    response_model=JobView,
    responses=error_responses(400, 404, 409, 413),
    summary="Verify the parts (contiguous, sizes as declared) and complete the upload",
)
def complete_upload(
    job: OwnedJob, svc: Service, request: Request, body: CompleteRequest | None = None
) -> Any:
    declared = (
        [(p.part_number, p.etag) for p in body.parts] if body and body.parts is not None else None
    )
    done = svc.complete(
        job,
        declared,
        sha256=body.sha256 if body else None,
        crc32c=body.crc32c if body else None,
    )
    if job.status is JobStatus.AWAITING_UPLOAD:
        request.state.metric = "UploadsCompleted"
    # The job as it now is: a client needs no second request to show it.
    return JobView.model_validate(done, from_attributes=True)


@router.delete(
    "/uploads/{job_id}",
    status_code=204,
    responses=error_responses(404, 409),
    summary="Abort the multipart upload; the job is cancelled",
)
def abort_upload(job: OwnedJob, svc: Service, request: Request) -> Response:
    svc.abort_upload(job)
    request.state.metric = "UploadsAborted"
    return Response(status_code=204)
