"""The DynamoDB jobs table: the only module that talks to it.

Every status change is one conditional UpdateItem whose condition comes from
``jobs.ALLOWED_SOURCES``: no lost update, no move backwards. botocore errors become
audiolift errors here.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .aws import IGNORE, Meaning, translated
from .errors import (
    AudioliftError,
    ChecksumConflict,
    Conflict,
    InvalidRequest,
    JobCancelled,
    NotFound,
)
from .jobs import ALLOWED_SOURCES, Job, JobStatus, isoformat, utc_now

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from mypy_boto3_dynamodb import DynamoDBClient

OWNER_INDEX = "by_owner"
SWEEP_INDEX = "by_status"  # sweep_status + updated_at, keys and lease only: the sweeper's
# The sweep index's key: the status while the job is unfinished, absent once it finished,
# so the index is sparse (finished jobs, the vast majority, are not in it).
SWEEP_KEY = "sweep_status"
# DynamoDB's largest partition key, in UTF-8 bytes.
MAX_KEY_BYTES = 2048
_CONDITION_FAILED = "ConditionalCheckFailedException"


@functools.cache
def _codecs() -> tuple[TypeSerializer, TypeDeserializer]:
    # Imported on first use: ``boto3.dynamodb`` imports all of boto3 (~120 ms of a cold
    # start), which an API request that touches no table need not pay.
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


_JOB_FIELDS = {f.name for f in fields(Job)} - {"extra"}


def to_dynamo(value: Any) -> Any:
    """Python -> DynamoDB attribute value. Floats become Decimals (DynamoDB has no float);
    non-finite numbers are refused by Decimal's context, which is what we want."""
    normalised = json.loads(json.dumps(value, allow_nan=False), parse_float=Decimal)
    return _codecs()[0].serialize(normalised)


def from_dynamo(value: Mapping[str, Any]) -> Any:
    return _plain(_codecs()[1].deserialize(value))  # type: ignore[arg-type]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return value


def job_to_item(job: Job) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name in _JOB_FIELDS:
        value = getattr(job, name)
        if value is None:
            continue
        item[name] = to_dynamo(value.value if isinstance(value, JobStatus) else value)
    if not job.status.finished:
        item[SWEEP_KEY] = {"S": job.status.value}
    return item


def job_from_item(item: Mapping[str, Any]) -> Job:
    plain = {name: from_dynamo(value) for name, value in item.items()}
    known = {k: v for k, v in plain.items() if k in _JOB_FIELDS}
    known["status"] = JobStatus(known["status"])
    job = Job(**known)
    # The sweep key is derived from the status (job_to_item writes it), not data.
    job.extra = {k: v for k, v in plain.items() if k not in _JOB_FIELDS and k != SWEEP_KEY}
    return job


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class ClaimRefused(AudioliftError):
    """The processor may not start on this job now; ``job`` says why (None: no record)."""

    code = "claim_refused"

    def __init__(self, job: Job | None, reason: str):
        super().__init__(reason)
        self.job = job


def claim_condition(now: float) -> tuple[str, dict[str, Any]]:
    """The condition under which the processor may claim a job, and its values: the job
    is in a state ``ALLOWED_SOURCES`` lets PROCESSING be entered from, or it is already
    PROCESSING under a lease that ran out at ``now`` (a crashed invocation's job)."""
    values: dict[str, Any] = {":processing": {"S": JobStatus.PROCESSING.value}}
    names = []
    for index, source in enumerate(sorted(ALLOWED_SOURCES[JobStatus.PROCESSING])):
        values[f":claimable{index}"] = {"S": source.value}
        names.append(f":claimable{index}")
    values[":now"] = to_dynamo(now)
    condition = (
        f"attribute_exists(job_id) AND (#status IN ({', '.join(names)}) OR "
        "(#status = :processing AND lease_expires_at < :now))"
    )
    return condition, values


class JobsTable:
    def __init__(self, client: DynamoDBClient, table_name: str, *, clock: Any = time.time):
        self._client = client
        self._table = table_name
        self._clock = clock

    # --- reads -----------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        if len(job_id.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            return None  # DynamoDB refuses such a key (ValidationException): no job has it
        with translated("Reading the job"):
            response = self._client.get_item(
                TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
            )
        item = response.get("Item")
        return job_from_item(item) if item else None

    def get_owned(self, job_id: str, owner: str) -> Job:
        """The job, if ``owner`` owns it. Another owner's job is NotFound, never
        Forbidden: callers must not learn that it exists."""
        job = self.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound(f"No job {job_id!r}.")
        return job

    def list_by_owner(
        self,
        owner: str,
        *,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """The owner's jobs, newest first, ``limit`` at most, resumable with ``cursor``."""
        start_key = _decode_cursor(cursor, owner) if cursor else None
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": {"S": owner}},
            "ScanIndexForward": False,
        }
        if status is not None:
            request["FilterExpression"] = "#status = :status"
            request["ExpressionAttributeNames"]["#status"] = "status"
            request["ExpressionAttributeValues"][":status"] = {"S": status.value}
        jobs: list[Job] = []
        last_key: dict[str, Any] | None = start_key
        # Limit counts items read before the filter: keep reading until the page is full.
        while True:
            page_request = dict(request, Limit=limit - len(jobs))
            if last_key:
                page_request["ExclusiveStartKey"] = last_key
            with translated("Listing jobs"):
                response = self._client.query(**page_request)
            jobs.extend(job_from_item(item) for item in response.get("Items", []))
            last_key = response.get("LastEvaluatedKey")
            if not last_key or len(jobs) >= limit:
                break
        return JobPage(jobs=jobs, next_cursor=_encode_cursor(last_key) if last_key else None)

    # --- writes ----------------------------------------------------------------------

    def create(self, job: Job) -> Job:
        exists = Conflict(f"A job {job.job_id!r} exists already.")
        with translated("Recording the job", codes={_CONDITION_FAILED: exists}):
            self._client.put_item(
                TableName=self._table,
                Item=job_to_item(job),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        return job

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        owner: str | None = None,
        sources: Iterable[JobStatus] | None = None,
        set_fields: Mapping[str, Any] | None = None,
        remove_fields: Iterable[str] = (),
        lease_token: str | None = None,
        part: int | None = None,
    ) -> Job:
        """Move the job to ``target`` if its status is one the state machine allows
        (narrowed by ``sources``), it belongs to ``owner`` and, when given, the caller
        still holds the processing lease (of the fanned-out analysis's ``part``, when
        given). Raises NotFound or Conflict otherwise."""
        allowed = set(ALLOWED_SOURCES[target])
        if sources is not None:
            allowed &= set(sources)
        if not allowed:
            raise Conflict(f"No job can move to {target.value} from {sorted(sources or [])}.")
        updates = dict(set_fields or {})
        updates["status"] = target.value
        updates["updated_at"] = isoformat(utc_now())
        conditions = ["attribute_exists(job_id)"]
        values: dict[str, Any] = {}
        source_names = []
        for index, source in enumerate(sorted(allowed)):
            values[f":from{index}"] = {"S": source.value}
            source_names.append(f":from{index}")
        conditions.append(f"#status IN ({', '.join(source_names)})")
        if owner is not None:
            conditions.append("#owner = :owner")
            values[":owner"] = {"S": owner}
        names: dict[str, str] = {}
        if lease_token is not None and part is not None:
            conditions.append("fanout_tasks.#part.lease_token = :lease")
            values[":lease"] = {"S": lease_token}
            names["#part"] = str(part)
        elif lease_token is not None:
            conditions.append("lease_token = :lease")
            values[":lease"] = {"S": lease_token}
        return self._update(
            job_id,
            updates,
            remove_fields,
            " AND ".join(conditions),
            values,
            owner=owner,
            names=names,
            what=f"Moving the job to {target.value}",
        )

    def claim(
        self,
        job_id: str,
        *,
        object_etag: str,
        lease_token: str,
        lease_seconds: float,
        keep_progress: bool = False,
        phase: str | None = None,
        message_checkpoint: int | None = None,
        parts_done: int | None = None,
    ) -> Job:
        """Take the job for processing: from awaiting_upload or uploaded, or from
        processing whose lease has run out (a crashed invocation, or one that handed the
        job on). Refused (ClaimRefused) when the job is finished, cancelled, or held by a
        live lease, and, given the checkpoint a message continues from, when a later
        checkpoint was handed on (its own message exists: this one is stale).
        ``keep_progress``: the analysis continues from a checkpoint.

        A job whose analysis was fanned out into parts (all their messages sent) is only
        claimed to merge them, with ``parts_done``: when that many parts are done."""
        now = self._clock()
        updates: dict[str, Any] = {
            "status": JobStatus.PROCESSING.value,
            "lease_token": lease_token,
            "lease_expires_at": now + lease_seconds,
            "object_etag": object_etag,
            "updated_at": isoformat(utc_now()),
        }
        if not keep_progress:
            updates["progress"] = 0
        if phase is not None:
            updates["phase"] = phase
        condition, values = claim_condition(now)
        values[":one"] = {"N": "1"}
        if message_checkpoint is not None:
            condition += (
                " AND (attribute_not_exists(checkpoint.handed_on) OR "
                "checkpoint.seq <= :message_checkpoint)"
            )
            values[":message_checkpoint"] = {"N": str(int(message_checkpoint))}
        if parts_done is None:
            condition += " AND attribute_not_exists(fanout.sent)"
        else:
            condition += " AND size(fanout_done) = :parts"
            values[":parts"] = {"N": str(int(parts_done))}
        try:
            return self._update(
                job_id,
                updates,
                ("error",),
                condition,
                values,
                add_attempt=True,
                what="Claiming the job",
            )
        except (Conflict, NotFound) as refused:
            job = self.get(job_id)
            raise ClaimRefused(job, str(refused)) from None

    def heartbeat(
        self,
        job_id: str,
        *,
        lease_token: str,
        progress: int,
        lease_seconds: float,
        set_fields: Mapping[str, Any] | None = None,
        remove_fields: Iterable[str] = (),
    ) -> Job:
        """Record progress (and ``set_fields``, e.g. a checkpoint) and extend the lease
        (a negative ``lease_seconds`` releases it). JobCancelled if the job was cancelled
        meanwhile; Conflict if another invocation took the lease."""
        values = {":processing": {"S": JobStatus.PROCESSING.value}, ":lease": {"S": lease_token}}
        try:
            return self._update(
                job_id,
                {
                    **(set_fields or {}),
                    "progress": max(0, min(99, int(progress))),
                    "lease_expires_at": self._clock() + lease_seconds,
                    "updated_at": isoformat(utc_now()),
                },
                remove_fields,
                "#status = :processing AND lease_token = :lease",
                values,
                what="Recording progress",
            )
        except (Conflict, NotFound) as refused:
            job = self.get(job_id)
            if job is not None and job.status is JobStatus.CANCELLED:
                raise JobCancelled() from None
            raise Conflict(f"The job's processing lease was lost: {refused}") from None

    def mark_handed_on(self, job_id: str, seq: int) -> None:
        """Record that the message continuing from checkpoint ``seq`` was sent (if that
        is still the job's checkpoint): older messages are stale from now on."""
        # The job moved on (cancelled, or already claimed and checkpointed again): then
        # there is nothing to record.
        with translated("Recording the hand-on", codes={_CONDITION_FAILED: IGNORE}):
            self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET checkpoint.handed_on = :true",
                ConditionExpression="#status = :processing AND checkpoint.seq = :seq",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":processing": {"S": JobStatus.PROCESSING.value},
                    ":seq": {"N": str(int(seq))},
                },
            )

    # --- the parts of a fanned-out analysis -------------------------------------------

    def plan_fanout(self, job_id: str, *, lease_token: str, plan: Mapping[str, Any]) -> Job:
        """Record the parts an analysis is split into (under the job's lease): one entry
        per part, none done yet."""
        parts = len(plan["ranges"]) + 1
        return self._write(
            job_id,
            "SET fanout = :plan, fanout_tasks = :tasks, updated_at = :now REMOVE fanout_done",
            "#status = :processing AND lease_token = :lease",
            {
                ":plan": to_dynamo(dict(plan)),
                ":tasks": to_dynamo({str(part): {} for part in range(parts)}),
                ":lease": {"S": lease_token},
            },
            what="Planning the analysis's parts",
        )

    def mark_fanout_sent(self, job_id: str, *, lease_token: str) -> Job:
        """Every part's message went out: the parts carry the job from here (announcements
        of the object are stale), and the job's own lease is released."""
        return self._write(
            job_id,
            "SET fanout.sent = :true, lease_expires_at = :released, updated_at = :now",
            "#status = :processing AND lease_token = :lease",
            {
                ":true": {"BOOL": True},
                ":released": to_dynamo(self._clock() - 1.0),
                ":lease": {"S": lease_token},
            },
            what="Handing the analysis to its parts",
        )

    def claim_part(
        self,
        job_id: str,
        part: int,
        *,
        lease_token: str,
        lease_seconds: float,
        message_checkpoint: int,
    ) -> Job:
        """Take one part of a fanned-out analysis: not done, its lease free or run out, and
        no later checkpoint of it handed on than the message's. ClaimRefused otherwise.
        Counts the invocation."""
        now = self._clock()
        condition = (
            "#status = :processing AND attribute_exists(fanout_tasks.#part) AND "
            "NOT contains(fanout_done, :number) AND "
            "(attribute_not_exists(fanout_tasks.#part.lease_expires_at) OR "
            "fanout_tasks.#part.lease_expires_at < :clock) AND "
            "(attribute_not_exists(fanout_tasks.#part.checkpoint.handed_on) OR "
            "fanout_tasks.#part.checkpoint.seq <= :message_checkpoint)"
        )
        try:
            return self._write(
                job_id,
                "SET fanout_tasks.#part.lease_token = :lease, "
                "fanout_tasks.#part.lease_expires_at = :expires, phase = :phase, "
                "updated_at = :now ADD attempts :one",
                condition,
                {
                    ":number": {"N": str(part)},
                    ":clock": to_dynamo(now),
                    ":message_checkpoint": {"N": str(int(message_checkpoint))},
                    ":lease": {"S": lease_token},
                    ":expires": to_dynamo(now + lease_seconds),
                    ":phase": {"S": "analyzing"},
                    ":one": {"N": "1"},
                },
                part=part,
                what="Claiming a part of the analysis",
            )
        except (Conflict, NotFound) as refused:
            raise ClaimRefused(self.get(job_id), str(refused)) from None

    def part_heartbeat(
        self,
        job_id: str,
        part: int,
        *,
        lease_token: str,
        progress: int,
        lease_seconds: float,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> Job:
        """A part's progress (and checkpoint), extending its lease (negative
        ``lease_seconds``: released). JobCancelled if the job was cancelled; Conflict if
        it ended otherwise or another invocation took the part."""
        update = (
            "SET fanout_tasks.#part.progress = :progress, "
            "fanout_tasks.#part.lease_expires_at = :expires, updated_at = :now"
        )
        values: dict[str, Any] = {
            ":progress": {"N": str(max(0, min(99, int(progress))))},
            ":expires": to_dynamo(self._clock() + lease_seconds),
            ":lease": {"S": lease_token},
        }
        if checkpoint is not None:
            # progress was made: the sweeper's count of fruitless re-drives starts over
            update += ", fanout_tasks.#part.checkpoint = :checkpoint REMOVE redrives"
            values[":checkpoint"] = to_dynamo(dict(checkpoint))
        return self._part_write(job_id, part, update, values, what="Recording a part's progress")

    def mark_part_handed_on(self, job_id: str, part: int, seq: int) -> None:
        """As `mark_handed_on`, for one part of a fanned-out analysis."""
        with translated("Recording the hand-on", codes={_CONDITION_FAILED: IGNORE}):
            self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET fanout_tasks.#part.checkpoint.handed_on = :true",
                ConditionExpression=(
                    "#status = :processing AND fanout_tasks.#part.checkpoint.seq = :seq"
                ),
                ExpressionAttributeNames={"#status": "status", "#part": str(part)},
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":processing": {"S": JobStatus.PROCESSING.value},
                    ":seq": {"N": str(int(seq))},
                },
            )

    def complete_part(
        self, job_id: str, part: int, *, lease_token: str, result: Mapping[str, Any]
    ) -> Job:
        """Record a part's result and count it done, once: the write is conditional on the
        part not being counted yet, so a duplicated part cannot count twice. The job as
        it is then: the write that makes the count complete is the one that sees it so.
        JobCancelled / Conflict as `part_heartbeat`."""
        return self._part_write(
            job_id,
            part,
            "SET fanout_tasks.#part.#result = :result, fanout_tasks.#part.progress = :full, "
            "updated_at = :now REMOVE fanout_tasks.#part.lease_token, "
            "fanout_tasks.#part.lease_expires_at, fanout_tasks.#part.checkpoint, redrives "
            "ADD fanout_done :numbers",
            {
                ":result": to_dynamo(dict(result)),
                ":full": {"N": "100"},
                ":numbers": {"NS": [str(part)]},
                ":number": {"N": str(part)},
                ":lease": {"S": lease_token},
            },
            extra_condition=" AND NOT contains(fanout_done, :number)",
            names={"#result": "result"},
            what="Counting a part of the analysis done",
        )

    def _part_write(
        self,
        job_id: str,
        part: int,
        update: str,
        values: dict[str, Any],
        *,
        extra_condition: str = "",
        names: Mapping[str, str] | None = None,
        what: str,
    ) -> Job:
        condition = "#status = :processing AND fanout_tasks.#part.lease_token = :lease"
        try:
            return self._write(
                job_id,
                update,
                condition + extra_condition,
                values,
                part=part,
                names=names,
                what=what,
            )
        except (Conflict, NotFound) as refused:
            job = self.get(job_id)
            if job is not None and job.status is JobStatus.CANCELLED:
                raise JobCancelled() from None
            raise Conflict(f"The part's processing lease was lost: {refused}") from None

    def _write(
        self,
        job_id: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        *,
        part: int | None = None,
        names: Mapping[str, str] | None = None,
        what: str,
    ) -> Job:
        """One conditional UpdateItem written out (document paths the generic `_update`
        cannot name); ``:now`` and ``:processing`` are provided."""
        attribute_names = {"#status": "status", **(names or {})}
        if part is not None:
            attribute_names["#part"] = str(part)
        values = {
            ":now": {"S": isoformat(utc_now())},
            ":processing": {"S": JobStatus.PROCESSING.value},
            **values,
        }
        used = {name: value for name, value in values.items() if name in update + condition}
        meanings: dict[str, Meaning] = {
            _CONDITION_FAILED: functools.partial(self._refusal, job_id, None, what),
            "ValidationException": InvalidRequest(f"{what} was refused by the table."),
        }
        with translated(what, codes=meanings):
            response = self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    key: value
                    for key, value in attribute_names.items()
                    if key in update + condition
                },
                ExpressionAttributeValues=used,
                ReturnValues="ALL_NEW",
            )
        return job_from_item(response["Attributes"])

    def declare_sha256(self, job_id: str, sha256: str, *, owner: str) -> Job:
        """Record the file's SHA-256 declared at completion: only while the upload is
        open and no other hash was declared (ChecksumConflict if one was)."""
        values = {
            ":awaiting": {"S": JobStatus.AWAITING_UPLOAD.value},
            ":owner": {"S": owner},
            ":sha": {"S": sha256},
        }
        condition = (
            "#status = :awaiting AND #owner = :owner AND "
            "(attribute_not_exists(sha256) OR sha256 = :sha)"
        )
        try:
            return self._update(
                job_id,
                {"sha256": sha256, "updated_at": isoformat(utc_now())},
                (),
                condition,
                values,
                owner=owner,
                what="Recording the checksum",
            )
        except Conflict:
            job = self.get_owned(job_id, owner)
            if job.sha256 is not None and job.sha256 != sha256:
                raise ChecksumConflict(
                    "The SHA-256 differs from the one declared for this upload.",
                    details={"declared": job.sha256},
                ) from None
            raise

    def delete(self, job_id: str, *, owner: str) -> None:
        """Delete a finished job's record."""
        values = {":owner": {"S": owner}}
        names = []
        for index, status in enumerate(sorted(s.value for s in JobStatus if s.finished)):
            values[f":done{index}"] = {"S": status}
            names.append(f":done{index}")
        refusal = functools.partial(self._refusal, job_id, owner, "Deleting the job")
        with translated("Deleting the job", codes={_CONDITION_FAILED: refusal}):
            self._client.delete_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                ConditionExpression=f"#owner = :owner AND #status IN ({', '.join(names)})",
                ExpressionAttributeNames={"#owner": "owner", "#status": "status"},
                ExpressionAttributeValues=values,
            )

    # --- internals -------------------------------------------------------------------

    def _update(
        self,
        job_id: str,
        updates: Mapping[str, Any],
        remove_fields: Iterable[str],
        condition: str,
        values: dict[str, Any],
        *,
        owner: str | None = None,
        add_attempt: bool = False,
        names: Mapping[str, str] | None = None,
        what: str,
    ) -> Job:
        updates, remove_fields = _with_sweep_key(updates, remove_fields)
        names = {"#status": "status", **(names or {})}
        if "#owner" in condition:
            names["#owner"] = "owner"
        assignments = []
        for index, (name, value) in enumerate(updates.items()):
            names[f"#f{index}"] = name
            values[f":v{index}"] = to_dynamo(value)
            assignments.append(f"#f{index} = :v{index}")
        expression = "SET " + ", ".join(assignments)
        if add_attempt:
            expression += " ADD attempts :one"
        removals = []
        for index, name in enumerate(remove_fields):
            names[f"#r{index}"] = name
            removals.append(f"#r{index}")
        if removals:
            expression += " REMOVE " + ", ".join(removals)
        meanings: dict[str, Meaning] = {
            _CONDITION_FAILED: functools.partial(self._refusal, job_id, owner, what),
            "ValidationException": InvalidRequest(f"{what} was refused by the table."),
        }
        with translated(what, codes=meanings):
            response = self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        return job_from_item(response["Attributes"])

    def _refusal(self, job_id: str, owner: str | None, what: str) -> AudioliftError:
        job = self.get(job_id)
        if job is None or (owner is not None and job.owner != owner):
            return NotFound(f"No job {job_id!r}.")
        return Conflict(
            f"{what} is not possible: the job is {job.status.value}.",
            details={"status": job.status.value},
        )

    # --- the sweeper's queries and writes ---------------------------------------------

    def quiet_job_ids(
        self,
        status: JobStatus,
        *,
        updated_before: str,
        limit: int,
        lease_expired_at: float | None = None,
        redriven_before: float | None = None,
        start_key: Mapping[str, Any] | None = None,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Ids of ``status`` jobs not updated since ``updated_before``, oldest first, from
        the sweep index (eventually consistent: read each job again before acting), and
        the key to continue from. ``lease_expired_at``: only jobs whose lease ran out by
        then; ``redriven_before``: only jobs not re-driven since."""
        values: dict[str, Any] = {
            ":status": {"S": status.value},
            ":before": {"S": updated_before},
        }
        filters = []
        if lease_expired_at is not None:
            filters.append("(attribute_not_exists(lease_expires_at) OR lease_expires_at < :now)")
            values[":now"] = to_dynamo(lease_expired_at)
        if redriven_before is not None:
            filters.append("(attribute_not_exists(redriven_at) OR redriven_at < :redriven)")
            values[":redriven"] = to_dynamo(redriven_before)
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": SWEEP_INDEX,
            "KeyConditionExpression": "#sweep = :status AND updated_at < :before",
            "ExpressionAttributeNames": {"#sweep": SWEEP_KEY},
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        if start_key:
            request["ExclusiveStartKey"] = dict(start_key)
        with translated("Looking for stuck jobs"):
            response = self._client.query(**request)
        ids = [item["job_id"]["S"] for item in response.get("Items", [])]
        return ids, response.get("LastEvaluatedKey")

    def mark_redriven(self, job: Job, *, now: float) -> Job:
        """Record that the sweeper re-drives ``job``, if nothing touched it since it was
        read (same status and updated_at; for processing, the lease still expired).
        Conflict otherwise: another sweeper or the processor got there first."""
        condition, values = self._unchanged_since_read(job, now)
        redrives = int(job.extra.get("redrives", 0)) + 1
        updates = {"updated_at": isoformat(utc_now()), "redriven_at": now, "redrives": redrives}
        return self._update(job.job_id, updates, (), condition, values, what="Re-driving the job")

    def fail_stuck(self, job: Job, error: Mapping[str, str], *, now: float) -> Job:
        """End a stuck ``job`` failed with ``error`` ({code, message}), if nothing touched
        it since it was read. Conflict otherwise."""
        condition, values = self._unchanged_since_read(job, now)
        updates = {
            "status": JobStatus.FAILED.value,
            "updated_at": isoformat(utc_now()),
            "error": dict(error),
        }
        return self._update(
            job.job_id,
            updates,
            ("lease_token", "lease_expires_at"),
            condition,
            values,
            what="Ending the stuck job",
        )

    def _unchanged_since_read(self, job: Job, now: float) -> tuple[str, dict[str, Any]]:
        condition = "#status = :seen_status AND updated_at = :seen_updated"
        values = {":seen_status": {"S": job.status.value}, ":seen_updated": {"S": job.updated_at}}
        if job.status is JobStatus.PROCESSING:
            condition += " AND lease_expires_at < :now"
            values[":now"] = to_dynamo(now)
        return condition, values


def _with_sweep_key(
    updates: Mapping[str, Any], remove_fields: Iterable[str]
) -> tuple[Mapping[str, Any], Iterable[str]]:
    """A status change keeps the sweep index's key in step: set while unfinished,
    removed when finished."""
    status = updates.get("status")
    if status is None:
        return updates, remove_fields
    if JobStatus(status).finished:
        return updates, (*remove_fields, SWEEP_KEY)
    return {**updates, SWEEP_KEY: status}, remove_fields


def _encode_cursor(key: Mapping[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_CURSOR_ATTRIBUTES = frozenset({"job_id", "owner", "created_at"})


def _decode_cursor(cursor: str, owner: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error):
        raise InvalidRequest("The cursor is not one this API handed out.") from None
    # Exactly the index's key (table key + GSI key, all strings): anything else would reach
    # DynamoDB as a malformed ExclusiveStartKey and come back as a 5xx.
    if (
        not isinstance(key, dict)
        or set(key) != _CURSOR_ATTRIBUTES
        or not all(
            isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str)
            for v in key.values()
        )
        # A cursor from another owner's listing must not become a way into it.
        or key["owner"]["S"] != owner
    ):
        raise InvalidRequest("The cursor is not one this API handed out.")
    return key
