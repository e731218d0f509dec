"""Upload parts: how a file is split (``plan_parts``) and what must hold before S3 is
asked to join the parts (``verify_parts``).

Pure code: no AWS here. The API plans and verifies; clients follow the plan it returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import (
    Conflict,
    EmptyUpload,
    IncompleteUpload,
    InvalidRequest,
    SizeMismatch,
    UploadTooLarge,
)
from .settings import S3_MAX_PART_BYTES, S3_MAX_PARTS

# Error messages and details name at most this many part numbers.
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class UploadedPart:
    """One part as S3 lists it."""

    part_number: int
    etag: str
    size: int
    # The part's CRC32C, when the upload was created with that algorithm and S3 lists it
    # (real S3 does; SeaweedFS does not): completion passes it back.
    checksum_crc32c: str | None = None


@dataclass(frozen=True)
class PartPlan:
    size: int
    part_size: int
    part_count: int

    def part_bytes(self, part_number: int) -> int:
        """Expected size of one part (1-based); the last one may be smaller."""
        if not 1 <= part_number <= self.part_count:
            raise ValueError(f"part {part_number} is outside 1..{self.part_count}")
        if part_number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)

    def part_range(self, part_number: int) -> tuple[int, int]:
        """(offset, length) of a part in the file."""
        return (part_number - 1) * self.part_size, self.part_bytes(part_number)


def plan_parts(
    size: int, *, preferred_part_bytes: int, min_part_bytes: int, max_parts: int = S3_MAX_PARTS
) -> PartPlan:
    """Split ``size`` bytes into at most ``max_parts`` equal parts (the last one smaller),
    none under ``min_part_bytes``, growing past ``preferred_part_bytes`` only when the part
    count would exceed the limit."""
    if size <= 0:
        raise EmptyUpload()
    needed = math.ceil(size / max_parts)
    part_size = max(preferred_part_bytes, min_part_bytes, needed)
    # Round to a MiB once parts are big, so part sizes read well in logs and clients.
    granularity = 1024 * 1024 if part_size >= 1024 * 1024 else 1
    part_size = math.ceil(part_size / granularity) * granularity
    if part_size > S3_MAX_PART_BYTES:
        raise UploadTooLarge(
            f"A file of {size} bytes needs parts larger than S3's 5 GiB part limit."
        )
    part_size = min(part_size, size)
    return PartPlan(size=size, part_size=part_size, part_count=math.ceil(size / part_size))


def listed(numbers: Sequence[int]) -> str:
    """``"1, 2, 3"``: the first MAX_LISTED_PROBLEMS part numbers, "..." if there are more."""
    shown = ", ".join(map(str, numbers[:MAX_LISTED_PROBLEMS]))
    return shown + (" ..." if len(numbers) > MAX_LISTED_PROBLEMS else "")


def verify_parts(
    plan: PartPlan | None,
    parts_in_s3: Sequence[UploadedPart],
    *,
    declared: Sequence[tuple[int, str]] | None = None,
    declared_size: int | None = None,
    max_bytes: int,
    min_part_bytes: int,
) -> list[UploadedPart]:
    """Check the parts S3 holds before completing: contiguous from 1, exactly the parts
    the client ``declared`` (when it sent a list) with the same ETags, every size as
    planned (or, for an upload without a plan, every part but the last at least the
    minimum), the total as planned or ``declared_size`` (a client that sizes its own
    parts may still have said the file's size) and within the limit. Returns the parts to
    complete with, in order."""
    declared_etags = _declared_etags(declared) if declared is not None else None
    by_number = {part.part_number: part for part in parts_in_s3}
    if not by_number:
        raise IncompleteUpload("No part has been uploaded yet.", details={"missing": [1]})
    expected_count = plan.part_count if plan else max(by_number)
    missing = [n for n in range(1, expected_count + 1) if n not in by_number]
    if missing:
        raise IncompleteUpload(
            f"{len(missing)} part(s) missing: {listed(missing)}.",
            details={"missing": missing[:MAX_LISTED_PROBLEMS], "missing_count": len(missing)},
        )
    extra = sorted(n for n in by_number if n > expected_count)
    if extra:
        raise SizeMismatch(
            f"Parts beyond the planned {expected_count} were uploaded: {listed(extra)}.",
            details={"unexpected": extra[:MAX_LISTED_PROBLEMS]},
        )
    if declared_etags is not None:
        _check_declared(declared_etags, by_number)
    ordered = [by_number[n] for n in range(1, expected_count + 1)]
    _check_sizes(plan, ordered, min_part_bytes=min_part_bytes)
    total = sum(p.size for p in ordered)
    expected_size = plan.size if plan is not None else declared_size
    if expected_size is not None and total != expected_size:
        raise SizeMismatch(
            f"The parts hold {total} bytes, but {expected_size} were declared.",
            details={"declared": expected_size, "uploaded": total},
        )
    if total > max_bytes:
        raise UploadTooLarge(f"The parts hold {total} bytes; the limit is {max_bytes}.")
    return ordered


def _declared_etags(declared: Sequence[tuple[int, str]]) -> dict[int, str]:
    seen: set[int] = set()
    repeated_numbers: set[int] = set()
    for number, _ in declared:
        (repeated_numbers if number in seen else seen).add(number)
    if repeated_numbers:
        repeated = sorted(repeated_numbers)
        raise InvalidRequest(
            f"The part list names part(s) {listed(repeated)} more than once.",
            details={"repeated": repeated[:MAX_LISTED_PROBLEMS]},
        )
    return {n: _etag(etag) for n, etag in declared}


def _check_declared(etags: dict[int, str], by_number: dict[int, UploadedPart]) -> None:
    """The client's list against S3's: the same part numbers, the same ETags."""
    not_in_s3 = sorted(set(etags) - set(by_number))
    not_declared = sorted(set(by_number) - set(etags))
    if not_in_s3 or not_declared:
        problems = []
        if not_in_s3:
            problems.append(f"S3 holds no part {listed(not_in_s3)}")
        if not_declared:
            problems.append(f"the list omits part(s) {listed(not_declared)} that S3 holds")
        raise Conflict(
            f"The part list does not match the uploaded parts: {'; '.join(problems)}.",
            details={
                "not_in_s3": not_in_s3[:MAX_LISTED_PROBLEMS],
                "not_declared": not_declared[:MAX_LISTED_PROBLEMS],
            },
        )
    mismatched = sorted(n for n, etag in etags.items() if etag != _etag(by_number[n].etag))
    if mismatched:
        raise Conflict(
            f"Part(s) {listed(mismatched)} in S3 are not the ones the client uploaded "
            "(ETag differs); upload them again.",
            details={"etag_mismatch": mismatched[:MAX_LISTED_PROBLEMS]},
        )


def _check_sizes(
    plan: PartPlan | None, ordered: Sequence[UploadedPart], *, min_part_bytes: int
) -> None:
    if plan is not None:
        wrong = [p.part_number for p in ordered if p.size != plan.part_bytes(p.part_number)]
        if wrong:
            last = plan.part_bytes(plan.part_count)
            raise SizeMismatch(
                f"Part(s) {listed(wrong)} do not have the planned size "
                f"({plan.part_size} bytes, the last {last}).",
                details={"wrong_size": wrong[:MAX_LISTED_PROBLEMS]},
            )
        return
    small = [p.part_number for p in ordered[:-1] if p.size < min_part_bytes]
    if small:
        raise SizeMismatch(
            f"Part(s) {listed(small)} are smaller than the {min_part_bytes}-byte minimum "
            "(only the last part may be smaller).",
            details={"too_small": small[:MAX_LISTED_PROBLEMS]},
        )


def _etag(value: str) -> str:
    return value.strip().strip('"')
