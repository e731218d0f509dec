"""Companion's S3 multipart routes, as Uppy's @uppy/aws-s3 plugin calls them, backed by
the same jobs: an Uppy upload is a job like any other.

Uppy decides its own part size, so these jobs have no part plan: completion checks that
parts are contiguous, every part but the last meets S3's minimum, and the total is
within the limit.
"""

from __future__ import annotations

from typing import Annotated, Any

from audiolift_core.errors import InvalidRequest, NotFound
from audiolift_core.jobs import Job
from fastapi import APIRouter, Path, Query, Request

from ..dependencies import AuthenticatedRoute, Owner, Service, error_responses
from ..models import (
    CompanionBatchResponse,
    CompanionCompleteRequest,
    CompanionCompleteResponse,
    CompanionCreateRequest,
    CompanionCreateResponse,
    CompanionListedPart,
    CompanionSignResponse,
)

router = APIRouter(prefix="/s3/multipart", tags=["uppy"], route_class=AuthenticatedRoute)

Key = Annotated[str, Query(min_length=1, max_length=1024)]
UploadId = Annotated[str, Path(min_length=1, max_length=2048)]


def _declared_size(metadata: dict[str, Any]) -> int | None:
    raw = metadata.get("size")
    if raw is None:
        return None
    # A JSON integer, or decimal digits (Companion metadata is S3 object metadata, which
    # is text); never true, a float or a sign.
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw)
    raise InvalidRequest("metadata.size must be a whole number of bytes.")


def _job_for(svc: Service, caller: str, key: str, upload_id: str, request: Request) -> Job:
    prefix = svc.settings.storage.upload_prefix
    job_id = key[len(prefix) :] if key.startswith(prefix) else ""
    if not job_id or "/" in job_id:
        raise NotFound("No such upload.")
    request.state.job_id = job_id
    job = svc.get_job(caller, job_id)
    if job.upload_id != upload_id:
        raise NotFound("No such upload.")
    return job


@router.post("", response_model=CompanionCreateResponse, responses=error_responses(400, 413, 415))
def create(body: CompanionCreateRequest, request: Request, svc: Service, caller: Owner) -> Any:
    job = svc.create_upload(
        caller,
        filename=body.filename,
        size=_declared_size(body.metadata),
        content_type=body.type,
        source="uppy",
        client_sized_parts=True,
    )
    request.state.job_id = job.job_id
    request.state.metric = "UploadsCreated"
    return {"key": job.object_key, "uploadId": job.upload_id}


@router.get(
    "/{upload_id}/batch",
    response_model=CompanionBatchResponse,
    responses=error_responses(400, 404, 409),
)
def sign_batch(
    upload_id: UploadId,
    key: Key,
    request: Request,
    svc: Service,
    caller: Owner,
    partNumbers: Annotated[str, Query(min_length=1, max_length=8192)],
) -> Any:
    """Older Uppy versions ask for several part URLs at once."""
    job = _job_for(svc, caller, key, upload_id, request)
    texts = [n.strip() for n in partNumbers.split(",") if n.strip()]
    # ASCII digits only: int() would also read "1_0", "+1" and non-ASCII digits.
    if not all(n.isascii() and n.isdigit() for n in texts):
        raise InvalidRequest("partNumbers must be comma-separated numbers.")
    numbers = [int(n) for n in texts]
    signed = svc.sign_parts(job, numbers)
    return {"presignedUrls": {str(p.part_number): p.url for p in signed}}


@router.get(
    "/{upload_id}/{part_number}",
    response_model=CompanionSignResponse,
    responses=error_responses(400, 404, 409),
)
def sign_part(
    upload_id: UploadId,
    part_number: Annotated[int, Path(ge=1, le=10_000)],
    key: Key,
    request: Request,
    svc: Service,
    caller: Owner,
) -> Any:
    job = _job_for(svc, caller, key, upload_id, request)
    (signed,) = svc.sign_parts(job, [part_number])
    return {
        "url": signed.url,
        "expires": svc.settings.presign_ttl_seconds,
        "headers": dict(signed.headers),
    }


@router.get(
    "/{upload_id}", response_model=list[CompanionListedPart], responses=error_responses(404, 409)
)
def list_parts(upload_id: UploadId, key: Key, request: Request, svc: Service, caller: Owner) -> Any:
    job = _job_for(svc, caller, key, upload_id, request)
    return [
        {"PartNumber": p.part_number, "ETag": p.etag, "Size": p.size} for p in svc.list_parts(job)
    ]


@router.post(
    "/{upload_id}/complete",
    response_model=CompanionCompleteResponse,
    responses=error_responses(400, 404, 409, 413),
)
def complete(
    upload_id: UploadId,
    key: Key,
    body: CompanionCompleteRequest,
    request: Request,
    svc: Service,
    caller: Owner,
) -> Any:
    job = _job_for(svc, caller, key, upload_id, request)
    done = svc.complete(job, [(p.PartNumber, p.ETag) for p in body.parts])
    request.state.metric = "UploadsCompleted"
    return {"location": f"/v1/jobs/{done.job_id}", "key": done.object_key, "job_id": done.job_id}


@router.delete("/{upload_id}", responses=error_responses(404, 409))
def abort(upload_id: UploadId, key: Key, request: Request, svc: Service, caller: Owner) -> Any:
    job = _job_for(svc, caller, key, upload_id, request)
    svc.abort_upload(job)
    request.state.metric = "UploadsAborted"
    return {}
