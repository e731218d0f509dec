"""What the upload API does, free of HTTP: used by the /v1 routes and the Uppy
(Companion-compatible) routes alike, so an Uppy upload is a job like any other."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audiolift_core.api_keys import ApiKeyStore
from audiolift_core.errors import (
    Conflict,
    IncompleteUpload,
    InvalidRequest,
    NotFound,
    SizeMismatch,
    UploadTooLarge,
)
from audiolift_core.job_events import JobEvents
from audiolift_core.jobs import (
    UNFINISHED,
    Job,
    JobStatus,
    PartPlan,
    isoformat,
    new_job_id,
    plan_parts,
    resolve_content_type,
    sanitize_filename,
    utc_now,
)
from audiolift_core.jobs_table import JobPage, JobsTable
from audiolift_core.settings import S3_MIN_PART_BYTES, ApiSettings
from audiolift_core.storage import UploadedPart, UploadStore, result_key, upload_key

MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class SignedPart:
    part_number: int
    url: str
    expires_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"part_number": self.part_number, "url": self.url, "expires_at": self.expires_at}


@dataclass(frozen=True)
class ResultLocation:
    """Either the document itself or a short-lived URL to it."""

    document: Any | None = None
    url: str | None = None


def verify_parts(
    plan: PartPlan | None,
    listed: Sequence[UploadedPart],
    *,
    declared: Iterable[tuple[int, str]] = (),
    max_bytes: int,
    min_part_bytes: int,
) -> list[UploadedPart]:
    """Check the parts S3 holds before completing: contiguous from 1, every size as
    planned (or, for an upload of unknown size, every part but the last at least the
    minimum), the total as declared and within the limit, and any ETags the client
    sent equal to S3's. Returns the parts to complete with, in order."""
    by_number = {part.part_number: part for part in listed}
    if not by_number:
        raise IncompleteUpload("No part has been uploaded yet.", details={"missing": [1]})
    expected_count = plan.part_count if plan else max(by_number)
    missing = [n for n in range(1, expected_count + 1) if n not in by_number]
    if missing:
        shown = missing[:MAX_LISTED_PROBLEMS]
        raise IncompleteUpload(
            f"{len(missing)} part(s) missing: {', '.join(map(str, shown))}"
            + (" ..." if len(missing) > len(shown) else "")
            + ".",
            details={"missing": shown, "missing_count": len(missing)},
        )
    extra = sorted(n for n in by_number if n > expected_count)
    if extra:
        raise SizeMismatch(
            f"Parts beyond the planned {expected_count} were uploaded: "
            f"{', '.join(map(str, extra[:MAX_LISTED_PROBLEMS]))}.",
            details={"unexpected": extra[:MAX_LISTED_PROBLEMS]},
        )
    ordered = [by_number[n] for n in range(1, expected_count + 1)]
    if plan is not None:
        wrong = [p.part_number for p in ordered if p.size != plan.part_bytes(p.part_number)]
        if wrong:
            last = plan.part_bytes(plan.part_count)
            raise SizeMismatch(
                f"Part(s) {', '.join(map(str, wrong[:MAX_LISTED_PROBLEMS]))} do not have the "
                f"planned size ({plan.part_size} bytes, the last {last}).",
                details={"wrong_size": wrong[:MAX_LISTED_PROBLEMS]},
            )
    else:
        small = [p.part_number for p in ordered[:-1] if p.size < min_part_bytes]
        if small:
            raise SizeMismatch(
                f"Part(s) {', '.join(map(str, small[:MAX_LISTED_PROBLEMS]))} are smaller than "
                f"the {min_part_bytes}-byte minimum (only the last part may be smaller).",
                details={"too_small": small[:MAX_LISTED_PROBLEMS]},
            )
    total = sum(p.size for p in ordered)
    if plan is not None and total != plan.size:
        raise SizeMismatch(f"The parts hold {total} bytes, but {plan.size} were declared.")
    if total > max_bytes:
        raise UploadTooLarge(f"The parts hold {total} bytes; the limit is {max_bytes}.")
    mismatched = [
        n for n, etag in declared if n in by_number and _etag(etag) != _etag(by_number[n].etag)
    ]
    if mismatched:
        raise Conflict(
            f"Part(s) {', '.join(map(str, mismatched[:MAX_LISTED_PROBLEMS]))} in S3 are not the "
            "ones the client uploaded (ETag differs); upload them again.",
            details={"etag_mismatch": mismatched[:MAX_LISTED_PROBLEMS]},
        )
    return ordered


def _etag(value: str) -> str:
    return value.strip().strip('"')


class UploadService:
    def __init__(
        self,
        settings: ApiSettings,
        jobs: JobsTable,
        store: UploadStore,
        *,
        clock: Any = time.time,
        api_keys: ApiKeyStore | None = None,
        events: JobEvents | None = None,
    ):
        self.settings = settings
        self.jobs = jobs
        self.store = store
        self._clock = clock
        self.api_keys = api_keys  # None: only settings.api_key_hashes (or JWT mode)
        self.events = events  # None: no job events are published

    # --- uploads ---------------------------------------------------------------------

    def create_upload(
        self,
        owner: str,
        *,
        filename: str,
        size: int | None,
        content_type: str | None,
        sha256: str | None = None,
        source: str = "api",
    ) -> Job:
        """Record the job and open the multipart upload. Every check that can fail runs
        before any S3 call. ``size`` None: unknown until complete (Uppy)."""
        display_name = sanitize_filename(filename)
        if size is not None and size > self.settings.max_upload_bytes:
            raise UploadTooLarge(
                f"The file is {size} bytes; the limit is {self.settings.max_upload_bytes}."
            )
        resolved_type = resolve_content_type(display_name, content_type)
        plan = (
            plan_parts(
                size,
                preferred_part_bytes=self.settings.preferred_part_bytes,
                min_part_bytes=self.settings.part_min_bytes,
            )
            if size is not None
            else None
        )
        job_id = new_job_id()
        key = upload_key(self.settings.storage.upload_prefix, job_id)
        upload_id = self.store.create_multipart(
            key, content_type=resolved_type, metadata={"job-id": job_id}
        )
        now = isoformat(utc_now())
        job = Job(
            job_id=job_id,
            owner=owner,
            status=JobStatus.AWAITING_UPLOAD,
            filename=display_name,
            size=size or 0,
            content_type=resolved_type,
            object_key=key,
            created_at=now,
            updated_at=now,
            part_size=plan.part_size if plan else 0,
            part_count=plan.part_count if plan else 0,
            upload_id=upload_id,
            sha256=sha256.lower() if sha256 else None,
            purge_at=int(self._clock()) + self.settings.job_ttl_days * 86400,
            source=source,
        )
        try:
            return self.jobs.create(job)
        except Exception:
            self.store.abort(key, upload_id)  # leave nothing half-made
            raise

    def sign_parts(self, job: Job, part_numbers: Iterable[int]) -> list[SignedPart]:
        numbers = sorted(set(part_numbers))
        if not numbers:
            raise InvalidRequest("Ask for at least one part number.")
        if len(numbers) > self.settings.max_parts_per_sign:
            raise InvalidRequest(
                f"At most {self.settings.max_parts_per_sign} parts can be signed at once."
            )
        limit = job.part_count or 10_000
        outside = [n for n in numbers if not 1 <= n <= limit]
        if outside:
            raise InvalidRequest(
                f"Part numbers must be between 1 and {limit}; got {outside[:MAX_LISTED_PROBLEMS]}."
            )
        self._require_open(job)
        ttl = self.settings.presign_ttl_seconds
        expires_at = isoformat(datetime.fromtimestamp(self._clock() + ttl, tz=UTC))
        assert job.upload_id is not None
        urls = self.store.presign_parts(job.object_key, job.upload_id, numbers, ttl)
        return [SignedPart(n, urls[n], expires_at) for n in numbers]

    def first_batch(self, job: Job) -> list[SignedPart]:
        count = min(job.part_count, self.settings.first_batch_parts)
        return self.sign_parts(job, range(1, count + 1)) if count else []

    def list_parts(self, job: Job) -> list[UploadedPart]:
        self._require_open(job)
        assert job.upload_id is not None
        return self.store.list_parts(job.object_key, job.upload_id)

    def complete(self, job: Job, declared: Iterable[tuple[int, str]] = ()) -> Job:
        """Verify the parts and complete. Idempotent: completing a completed upload
        answers with the job as it is."""
        if job.status is not JobStatus.AWAITING_UPLOAD:
            if job.status is JobStatus.CANCELLED:
                raise Conflict("The upload was cancelled.", details={"status": job.status.value})
            return job  # already completed (a retry), maybe already being processed
        assert job.upload_id is not None
        try:
            listed = self.store.list_parts(job.object_key, job.upload_id)
        except Conflict:
            # The upload is closed. If S3 holds the object, an earlier complete succeeded
            # and only the record is behind (e.g. a retry after a lost response).
            return self._recover_completed(job)
        parts = verify_parts(
            job.plan if job.part_count else None,
            listed,
            declared=declared,
            max_bytes=self.settings.max_upload_bytes,
            min_part_bytes=min(self.settings.part_min_bytes, S3_MIN_PART_BYTES),
        )
        self.store.complete(job.object_key, job.upload_id, parts)
        total = sum(p.size for p in parts)
        return self._mark_uploaded(job, total)

    def _recover_completed(self, job: Job) -> Job:
        try:
            size = self.store.object_size(job.object_key)
        except NotFound:
            raise Conflict("The upload is no longer open (it was aborted).") from None
        return self._mark_uploaded(job, size)

    def _mark_uploaded(self, job: Job, total: int) -> Job:
        fields: dict[str, Any] = {}
        if not job.part_count:
            fields["size"] = total  # an upload of unknown size learns it now
        try:
            return self.jobs.transition(
                job.job_id,
                JobStatus.UPLOADED,
                owner=job.owner,
                sources={JobStatus.AWAITING_UPLOAD},
                set_fields=fields,
            )
        except Conflict:
            current = self.jobs.get_owned(job.job_id, job.owner)
            if current.status is JobStatus.CANCELLED:
                # Cancel won the race after S3 completed: don't keep the audio.
                self.store.delete(job.object_key)
                raise Conflict(
                    "The upload was cancelled while it was being completed.",
                    details={"status": current.status.value},
                ) from None
            return current  # the processor got there first (S3's event won the race)

    def abort_upload(self, job: Job) -> Job:
        """Abort the multipart upload and cancel the job."""
        if job.status is not JobStatus.AWAITING_UPLOAD:
            raise Conflict(
                f"The upload can no longer be aborted: the job is {job.status.value}.",
                details={"status": job.status.value},
            )
        cancelled = self.jobs.transition(
            job.job_id, JobStatus.CANCELLED, owner=job.owner, sources={JobStatus.AWAITING_UPLOAD}
        )
        self._announce(cancelled)  # the job is cancelled whatever the abort below does
        if job.upload_id:
            self.store.abort(job.object_key, job.upload_id)
        return cancelled

    # --- jobs ------------------------------------------------------------------------

    def get_job(self, owner: str, job_id: str) -> Job:
        return self.jobs.get_owned(job_id, owner)

    def list_jobs(
        self, owner: str, *, status: JobStatus | None, limit: int, cursor: str | None
    ) -> JobPage:
        return self.jobs.list_by_owner(owner, status=status, limit=limit, cursor=cursor)

    def result(self, job: Job) -> ResultLocation:
        if job.status is not JobStatus.COMPLETED or not job.result_key:
            raise Conflict(
                f"The job has no result: it is {job.status.value}.",
                details={"status": job.status.value},
            )
        size = self.store.object_size(job.result_key)
        if size <= self.settings.result_inline_max_bytes:
            return ResultLocation(document=self.store.get_json(job.result_key))
        return ResultLocation(url=self.store.presign_get(job.result_key, 300))

    def cancel(self, job: Job) -> Job:
        """Cancel an unfinished job, aborting its upload if one is open. A finished job
        is a Conflict, never deleted: the check and the move are one conditional write."""
        cancelled = self.jobs.transition(job.job_id, JobStatus.CANCELLED, owner=job.owner)
        self._announce(cancelled)
        if job.status is JobStatus.AWAITING_UPLOAD and job.upload_id:
            self.store.abort(job.object_key, job.upload_id)
        return cancelled

    def cancel_or_delete(self, job: Job) -> bool:
        """Cancel an unfinished job (returns False), or delete a finished one with its
        audio and result (returns True)."""
        if job.status in UNFINISHED:
            self.cancel(job)
            return False
        keys = [job.object_key, result_key(self.settings.storage.result_prefix, job.job_id)]
        self.store.delete(*keys)
        self.jobs.delete(job.job_id, owner=job.owner)
        return True

    # --- helpers ---------------------------------------------------------------------

    def _announce(self, job: Job) -> None:
        if self.events is not None:
            self.events.publish(job)  # logs and counts its own failures; never raises

    def _require_open(self, job: Job) -> None:
        if job.status is not JobStatus.AWAITING_UPLOAD or not job.upload_id:
            raise Conflict(
                f"The upload is closed: the job is {job.status.value}.",
                details={"status": job.status.value},
            )
