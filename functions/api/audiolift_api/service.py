"""What the upload API does, free of HTTP: used by the /v1 routes and the Uppy
(Companion-compatible) routes alike, so an Uppy upload is a job like any other."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audiolift_core.api_keys import ApiKeyStore
from audiolift_core.checksums import CRC32C_HEADER, ChecksumAlgorithm, PartChecksum
from audiolift_core.errors import (
    ChecksumConflict,
    ChecksumNotDeclared,
    ChecksumRequired,
    Conflict,
    EmptyUpload,
    InvalidRequest,
    NotFound,
    UploadClosed,
    UploadTooLarge,
)
from audiolift_core.job_events import JobEvents
from audiolift_core.jobs import UNFINISHED, Job, JobStatus, isoformat, new_job_id, utc_now
from audiolift_core.jobs_table import JobPage, JobsTable
from audiolift_core.parts import (
    MAX_LISTED_PROBLEMS,
    UploadedPart,
    listed,
    plan_parts,
    verify_parts,
)
from audiolift_core.presign import SignedPartHeaders
from audiolift_core.settings import S3_MIN_PART_BYTES, ApiSettings
from audiolift_core.storage import UploadStore, result_key, upload_key
from audiolift_core.uploads import resolve_content_type, sanitize_filename


@dataclass(frozen=True)
class SignedPart:
    part_number: int
    url: str
    expires_at: str
    # What the PUT must send: the checksum header signed into the URL, when there is one.
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "part_number": self.part_number,
            "url": self.url,
            "expires_at": self.expires_at,
            "headers": dict(self.headers),
        }


@dataclass(frozen=True)
class ResultLocation:
    """Either the document itself or a short-lived URL to it."""

    document: Any | None = None
    url: str | None = None


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
        checksum_algorithm: ChecksumAlgorithm | None = None,
        source: str = "api",
        client_sized_parts: bool = False,
    ) -> Job:
        """Record the job and open the multipart upload. Every check that can fail runs
        before any S3 call. ``size`` None: unknown until complete. ``client_sized_parts``
        (Uppy): the client picks its part size, so the job gets no part plan and
        completion checks the parts S3 holds against S3's rules instead.
        ``checksum_algorithm``: the parts will carry that checksum and completion will
        state the whole file's (``audiolift_core.checksums``)."""
        display_name = sanitize_filename(filename)
        if size is not None:
            if size > self.settings.max_upload_bytes:
                raise UploadTooLarge(
                    f"The file is {size} bytes; the limit is {self.settings.max_upload_bytes}."
                )
            if size <= 0:
                raise EmptyUpload()
        resolved_type = resolve_content_type(display_name, content_type)
        plan = (
            plan_parts(
                size,
                preferred_part_bytes=self.settings.preferred_part_bytes,
                min_part_bytes=self.settings.part_min_bytes,
            )
            if size is not None and not client_sized_parts
            else None
        )
        job_id = new_job_id()
        key = upload_key(self.settings.storage.upload_prefix, job_id)
        upload_id = self.store.create_multipart(
            key,
            content_type=resolved_type,
            metadata={"job-id": job_id},
            checksum_algorithm=checksum_algorithm,
        )
        now = isoformat(utc_now())
        job = Job(
            job_id=job_id,
            owner=owner,
            status=JobStatus.AWAITING_UPLOAD,
            filename=display_name,
            size=plan.size if plan else (size or 0),  # Uppy's declared size, if any
            content_type=resolved_type,
            object_key=key,
            created_at=now,
            updated_at=now,
            part_size=plan.part_size if plan else 0,
            part_count=plan.part_count if plan else 0,
            upload_id=upload_id,
            sha256=sha256.lower() if sha256 else None,
            checksum_algorithm=checksum_algorithm.value if checksum_algorithm else None,
            purge_at=int(self._clock()) + self.settings.job_ttl_days * 86400,
            source=source,
        )
        try:
            return self.jobs.create(job)
        except Exception:
            self.store.abort(key, upload_id)  # leave nothing half-made
            raise

    def sign_parts(
        self,
        job: Job,
        part_numbers: Iterable[int],
        checksums: Mapping[int, PartChecksum] | None = None,
    ) -> list[SignedPart]:
        """URLs for these parts; a part with a checksum gets a URL that is valid only with
        that checksum header (returned in the part's ``headers``), so S3 itself refuses a
        body that changed on the way (BadDigest)."""
        numbers = sorted(set(part_numbers))
        checksums = dict(checksums or {})
        unrequested = sorted(set(checksums) - set(numbers))
        if unrequested:
            raise InvalidRequest(
                f"Checksums name part(s) not asked for: {listed(unrequested)}.",
                details={"unrequested": unrequested[:MAX_LISTED_PROBLEMS]},
            )
        if job.checksum_algorithm != ChecksumAlgorithm.CRC32C and any(
            c.header == CRC32C_HEADER for c in checksums.values()
        ):
            # S3 refuses such a part ("checksum type mismatch") after it was sent.
            raise ChecksumNotDeclared(
                "Part CRC32Cs need an upload created with checksum_algorithm CRC32C."
            )
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
        # A planned part's URL also binds its length: S3 refuses a body of any other
        # size, so a URL cannot carry more than the part it was made for. (Uppy's jobs
        # have no plan: Uppy sizes its own parts.)
        plan = job.plan if job.part_count else None
        bound = {
            n: SignedPartHeaders(
                content_length=plan.part_bytes(n) if plan else None, checksum=checksums.get(n)
            )
            for n in numbers
        }
        urls = self.store.presign_parts(job.object_key, job.upload_id, numbers, ttl, bound)
        return [
            SignedPart(
                n,
                urls[n],
                expires_at,
                {checksums[n].header: checksums[n].value} if n in checksums else {},
            )
            for n in numbers
        ]

    def first_batch(self, job: Job) -> list[SignedPart]:
        count = min(job.part_count, self.settings.first_batch_parts)
        return self.sign_parts(job, range(1, count + 1)) if count else []

    def list_parts(self, job: Job) -> list[UploadedPart]:
        self._require_open(job)
        assert job.upload_id is not None
        return self.store.list_parts(job.object_key, job.upload_id)

    def complete(
        self,
        job: Job,
        declared: Sequence[tuple[int, str]] | None = None,
        *,
        sha256: str | None = None,
        crc32c: str | None = None,
    ) -> Job:
        """Verify the parts and complete. ``declared``: the client's (part number, ETag)
        list, which must name exactly the parts S3 holds (None: S3's listing is used).
        ``sha256``: the file's hash, if the client declares it only now; recorded before
        S3 is asked, so the processor, however early S3's event reaches it, checks the
        object against it. ``crc32c``: the whole file's CRC32C, required for (and only
        for) an upload created with that algorithm; S3 checks it. Idempotent: completing
        a completed upload answers with the job as it is."""
        whole_crc32c = self._whole_crc32c(job, crc32c)
        if sha256 is not None:
            job = self._declare_sha256(job, sha256.lower())
        if job.status is not JobStatus.AWAITING_UPLOAD:
            if job.status is JobStatus.CANCELLED:
                raise Conflict("The upload was cancelled.", details={"status": job.status.value})
            return job  # already completed (a retry), maybe already being processed
        assert job.upload_id is not None
        try:
            in_s3 = self.store.list_parts(job.object_key, job.upload_id)
            parts = verify_parts(
                job.plan if job.part_count else None,
                in_s3,
                declared=declared,
                declared_size=job.size or None,
                max_bytes=self.settings.max_upload_bytes,
                min_part_bytes=min(self.settings.part_min_bytes, S3_MIN_PART_BYTES),
            )
            self.store.complete(job.object_key, job.upload_id, parts, whole_crc32c=whole_crc32c)
        except UploadClosed:
            # If S3 holds the object, another complete succeeded and only the record is
            # behind: a retry after a lost response, or one racing the first request.
            return self._recover_completed(job)
        total = sum(p.size for p in parts)
        return self._mark_uploaded(job, total)

    @staticmethod
    def _whole_crc32c(job: Job, crc32c: str | None) -> str | None:
        if job.checksum_algorithm != ChecksumAlgorithm.CRC32C:
            if crc32c is not None:
                raise ChecksumNotDeclared(
                    "A whole-file CRC32C needs an upload created with checksum_algorithm CRC32C."
                )
            return None
        if crc32c is None and job.status is JobStatus.AWAITING_UPLOAD:
            raise ChecksumRequired(
                "This upload was created with checksum_algorithm CRC32C: "
                "complete it with the file's crc32c."
            )
        return crc32c

    def _declare_sha256(self, job: Job, sha256: str) -> Job:
        if job.sha256 == sha256:
            return job
        if job.sha256 is None and job.status is JobStatus.AWAITING_UPLOAD:
            return self.jobs.declare_sha256(job.job_id, sha256, owner=job.owner)
        if job.sha256 is None:
            return job  # completed already (a retry): too late to record, nothing to refuse
        raise ChecksumConflict(
            "The SHA-256 differs from the one declared when the upload was created.",
            details={"declared": job.sha256},
        )

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
        try:
            size = self.store.object_size(job.result_key)
            if size <= self.settings.result_inline_max_bytes:
                return ResultLocation(document=self.store.get_json(job.result_key))
        except NotFound:
            # The bucket's lifecycle expired it; the table's TTL removes the job later.
            raise NotFound(
                f"The result of job {job.job_id} is no longer stored (results are kept "
                f"{self.settings.job_ttl_days} days)."
            ) from None
        return ResultLocation(url=self.store.presign_get(job.result_key, 300))

    def cancel(self, job: Job) -> Job:
        """Cancel an unfinished job: abort its upload if one is open and delete its audio
        (a cancelled job keeps nothing in S3; an analysis still reading it stops). A
        finished job is a Conflict, never deleted: the check and the move are one
        conditional write."""
        cancelled = self.jobs.transition(job.job_id, JobStatus.CANCELLED, owner=job.owner)
        self._announce(cancelled)
        if job.status is JobStatus.AWAITING_UPLOAD and job.upload_id:
            self.store.abort(job.object_key, job.upload_id)
        # Also when the job looked unfinished-and-open: S3 may have completed the upload
        # between our read and the cancel.
        self.store.delete(job.object_key)
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
