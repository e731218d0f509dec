"""The message that continues an analysis from a checkpoint, as an SQS body on the
processing queue: the processor writes it when it hands an analysis on, the sweeper when
it re-drives a job that has a checkpoint, and the processor reads it.

``checkpoint`` is the sequence number of the checkpoint the job record named when the
message was written: a message older than the record's latest hand-on is stale.

A large PCM file's analysis is fanned out into parts: ``range`` names the part a message
runs or continues (0 to N-1: the plan's frame ranges; N: the whole file's SHA-256), its
``checkpoint`` that part's (0: from its start). ``merge`` asks for the parts' merge.
"""

from __future__ import annotations

from typing import Any

CONTINUATION_KIND = "audiolift.continue"


def continuation_message(
    *,
    job_id: str,
    bucket: str,
    key: str,
    etag: str | None,
    checkpoint: int,
    part: int | None = None,
    merge: bool = False,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "kind": CONTINUATION_KIND,
        "job_id": job_id,
        "bucket": bucket,
        "key": key,
        "etag": etag,
        "checkpoint": checkpoint,
    }
    if part is not None:
        message["range"] = part
    if merge:
        message["merge"] = True
    return message
