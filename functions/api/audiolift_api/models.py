"""Request and response bodies (they also make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from audiolift_core.jobs import JobStatus
from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["No job 'abc'."])
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class CreateUploadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    filename: str = Field(min_length=1, max_length=1024, examples=["concert.wav"])
    size: int = Field(ge=0, description="Bytes. Over the service's limit: 413; 0: 422.")
    content_type: str | None = Field(default=None, max_length=255, examples=["audio/wav"])
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


class SignedPartModel(BaseModel):
    part_number: int
    url: str
    expires_at: str


class CreateUploadResponse(BaseModel):
    job_id: str
    status: str
    part_size: int
    part_count: int
    parts: list[SignedPartModel] = Field(description="The first batch (at most 100).")
    expires_at: str = Field(description="When the first batch's URLs expire.")


class SignPartsRequest(BaseModel):
    part_numbers: list[int] = Field(min_length=1, max_length=1000)


class SignPartsResponse(BaseModel):
    parts: list[SignedPartModel]


class UploadedPartModel(BaseModel):
    part_number: int
    etag: str
    size: int


class ListPartsResponse(BaseModel):
    parts: list[UploadedPartModel]


class CompletedPartModel(BaseModel):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200)


class CompleteRequest(BaseModel):
    parts: list[CompletedPartModel] | None = Field(default=None, max_length=10_000)


class JobStatusResponse(BaseModel):
    job_id: str
    status: str


class JobView(BaseModel):
    """What the API shows a job's owner: built from the job record
    (``JobView.model_validate(job, from_attributes=True)``), the fields named here and no
    others."""

    job_id: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    filename: str
    size: int
    content_type: str
    part_size: int
    part_count: int
    created_at: str
    updated_at: str
    error: ErrorDetail | None = None
    summary: dict[str, Any] | None = None


class JobListResponse(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None


# --- Companion (Uppy @uppy/aws-s3) shapes --------------------------------------------


class CompanionCreateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    filename: str = Field(min_length=1, max_length=1024)
    type: str | None = Field(default=None, max_length=255)
    metadata: dict[str, Any] = Field(default_factory=dict)


class CompanionCreateResponse(BaseModel):
    key: str
    uploadId: str


class CompanionPart(BaseModel):
    PartNumber: int = Field(ge=1, le=10_000)
    ETag: str = Field(min_length=1, max_length=200)


class CompanionListedPart(CompanionPart):
    Size: int


class CompanionSignResponse(BaseModel):
    url: str
    expires: int


class CompanionBatchResponse(BaseModel):
    presignedUrls: dict[str, str]


class CompanionCompleteRequest(BaseModel):
    parts: list[CompanionPart] = Field(min_length=1, max_length=10_000)


class CompanionCompleteResponse(BaseModel):
    location: str
    key: str
    job_id: str
