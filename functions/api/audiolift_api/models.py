"""Request and response bodies (they also make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any

from audiolift_core.checksums import ChecksumAlgorithm
from audiolift_core.jobs import JobStatus
from audiolift_core.settings import S3_MAX_PARTS
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictInt, model_validator

# Request numbers are JSON integers only: "10" and true are refused (pydantic's lax mode
# would read them as 10 and 1).
StrictPartNumber = Annotated[StrictInt, Field(ge=1, le=S3_MAX_PARTS)]
# A number the service checks itself against the job (400 with a message naming the
# problem); the document still states the range the API accepts.
RequestedPartNumber = Annotated[
    StrictInt, Field(json_schema_extra={"minimum": 1, "maximum": S3_MAX_PARTS})
]
SHA256_HEX = r"^[0-9a-fA-F]{64}$"
# A part's Content-MD5: the base64 of its 16-byte MD5 digest.
CONTENT_MD5 = r"^[A-Za-z0-9+/]{22}==$"
# A CRC32C as S3 writes it: the base64 of its 4 bytes, big-endian.
CRC32C_BASE64 = r"^[A-Za-z0-9+/]{6}==$"
PartNumberKey = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,4}$")]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["No job 'abc'."])
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class CreateUploadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    filename: str = Field(min_length=1, max_length=1024, examples=["concert.wav"])
    size: StrictInt = Field(
        ge=0,
        # 0 passes validation to get its own error code (422 empty_file); the document
        # says what the API accepts.
        json_schema_extra={"minimum": 1},
        description="Bytes, at least 1. Over the service's limit: 413; 0: 422 empty_file.",
    )
    content_type: str | None = Field(default=None, max_length=255, examples=["audio/wav"])
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_HEX,
        description="The file's SHA-256 (hex); the processor checks the object against it.",
    )
    checksum_algorithm: ChecksumAlgorithm | None = Field(
        default=None,
        description=(
            "CRC32C: each part's PUT may carry its CRC32C (signed into its URL: ask for it "
            "with checksum_crc32c when signing) and completion must state the whole file's "
            "crc32c; S3 checks both. Without it, parts may carry a Content-MD5 instead."
        ),
    )


class SignedPartModel(BaseModel):
    part_number: int
    url: str = Field(
        description=(
            "Presigned PUT URL. It also signs the part's planned length: S3 refuses a body "
            "of any other length (403)."
        )
    )
    expires_at: str
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers the PUT of this part MUST send (its signed checksum).",
        examples=[
            {"x-amz-checksum-crc32c": "AAAAAA=="},
            {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="},
        ],
    )


class CreateUploadResponse(BaseModel):
    job_id: str
    status: str
    part_size: int
    part_count: int
    parts: list[SignedPartModel] = Field(description="The first batch (at most 100).")
    expires_at: str = Field(description="When the first batch's URLs expire.")


class SignPartsRequest(BaseModel):
    part_numbers: list[RequestedPartNumber] = Field(min_length=1, max_length=1000)
    checksum_crc32c: dict[PartNumberKey, Annotated[str, Field(pattern=CRC32C_BASE64)]] | None = (
        Field(
            default=None,
            max_length=1000,
            description=(
                "Base64 CRC32C (4 bytes, big-endian) of a part's bytes, by part number: "
                "signed into that part's URL as its x-amz-checksum-crc32c header, so S3 "
                "refuses a body that changed on the way. Only for an upload created with "
                "checksum_algorithm CRC32C (400 checksum_not_declared otherwise)."
            ),
            examples=[{"1": "AAAAAA=="}],
        )
    )
    content_md5: dict[PartNumberKey, Annotated[str, Field(pattern=CONTENT_MD5)]] | None = Field(
        default=None,
        max_length=1000,
        description=(
            "Base64 MD5 of a part's bytes, by part number: signed into that part's URL as "
            "its Content-MD5 header, so S3 refuses a body that changed on the way. At most "
            "one checksum per part."
        ),
        examples=[{"1": "1B2M2Y8AsgTpgAmY7PhCfg=="}],
    )


class SignPartsResponse(BaseModel):
    parts: list[SignedPartModel]


class UploadedPartModel(BaseModel):
    part_number: int
    etag: str
    size: int


class ListPartsResponse(BaseModel):
    parts: list[UploadedPartModel]


class CompletedPartModel(BaseModel):
    part_number: StrictPartNumber
    etag: str = Field(min_length=1, max_length=200)


class CompleteRequest(BaseModel):
    parts: list[CompletedPartModel] | None = Field(
        default=None,
        max_length=S3_MAX_PARTS,
        description=(
            "The parts as the client uploaded them: must name exactly the parts S3 holds, "
            "with their ETags (409 otherwise). Omitted: S3's own listing is used."
        ),
    )
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_HEX,
        description="The file's SHA-256 (hex), if not declared at creation; 409 "
        "checksum_conflict if it differs from the one declared then.",
    )
    crc32c: str | None = Field(
        default=None,
        pattern=CRC32C_BASE64,
        description=(
            "The whole file's CRC32C (base64 of 4 bytes, big-endian): required for an "
            "upload created with checksum_algorithm CRC32C (400 checksum_required), refused "
            "for others (400 checksum_not_declared). S3 checks it against the object it "
            "assembles: 409 checksum_mismatch, and the upload stays open."
        ),
        examples=["yZRlqg=="],
    )


class JobStatusResponse(BaseModel):
    job_id: str
    status: str


class JobView(BaseModel):
    """What the API shows a job's owner: built from the job record
    (``JobView.model_validate(job, from_attributes=True)``), the fields named here and no
    others."""

    job_id: str
    status: JobStatus
    # A fanned-out analysis's progress is its parts' (Job.overall_progress).
    progress: int = Field(
        ge=0, le=100, validation_alias=AliasChoices("overall_progress", "progress")
    )
    filename: str
    size: int
    content_type: str
    part_size: int
    part_count: int
    created_at: str
    updated_at: str
    sha256: str | None = Field(default=None, description="The SHA-256 the client declared.")
    verified_sha256: str | None = Field(
        default=None, description="The SHA-256 the processor computed from the stored object."
    )
    checksum_algorithm: str | None = Field(
        default=None,
        description="CRC32C when the upload was created with it: its parts may carry "
        "their CRC32C and S3 checked the whole file's at completion.",
    )
    error: ErrorDetail | None = None
    summary: dict[str, Any] | None = None
    phase: str | None = Field(
        default=None,
        description='While processing: "analyzing" (or "merging", when partial analyses are '
        "joined); null otherwise.",
    )
    invocations: int = Field(
        default=0,
        ge=0,
        description="Processor invocations the analysis has used so far: a recording longer "
        "than one invocation can analyse is checkpointed and continued in the next.",
    )
    parts_total: int | None = Field(
        default=None,
        description="A large PCM file is analysed in parallel parts (its frame ranges and "
        "the whole file's checksum), then merged: how many; null when not split.",
    )
    parts_done: int | None = Field(
        default=None, description="Of those parts, how many are done; null when not split."
    )

    @model_validator(mode="after")
    def _phase_only_while_processing(self) -> JobView:
        if self.status is not JobStatus.PROCESSING:
            self.phase = None
        return self


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
    PartNumber: StrictPartNumber
    ETag: str = Field(min_length=1, max_length=200)


class CompanionListedPart(CompanionPart):
    Size: int


class CompanionSignResponse(BaseModel):
    url: str
    expires: int
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers the PUT must send (Uppy sends them)."
    )


class CompanionBatchResponse(BaseModel):
    presignedUrls: dict[str, str]


class CompanionCompleteRequest(BaseModel):
    parts: list[CompanionPart] = Field(min_length=1, max_length=S3_MAX_PARTS)


class CompanionCompleteResponse(BaseModel):
    location: str
    key: str
    job_id: str


# --- GET /v1/limits --------------------------------------------------------------------


class FormatLimitsModel(BaseModel):
    name: str = Field(examples=["flac"])
    label: str = Field(examples=["FLAC"])
    extensions: list[str] = Field(examples=[[".flac"]])
    analysis_mib_per_second: float | None = Field(
        description="Measured analysis speed on the processor's CPU share (null: not measured)."
    )
    max_analysable_bytes: int | None = Field(
        description="The largest file of this format analysed within one invocation of the "
        "processor; a larger one is checkpointed and continued in further invocations."
    )
    usd_per_gib_analysed: float | None = Field(
        default=None, description="Lambda compute cost of analysing one GiB of this format."
    )


class AnalysisCostModel(BaseModel):
    usd_per_gib_analysed: float | None = Field(
        description="For WAV (PCM), the cheapest per GiB; each format states its own."
    )
    price_per_gb_second: float
    price_date: str
    memory_mb: int
    architecture: str
    speed_source: str = Field(description="Where the analysis speeds come from, and when.")


class LimitsResponse(BaseModel):
    max_upload_bytes: int
    min_part_bytes: int
    max_part_bytes: int
    preferred_part_bytes: int
    max_parts: int
    processor_timeout_seconds: int
    formats: list[FormatLimitsModel]
    cost: AnalysisCostModel
