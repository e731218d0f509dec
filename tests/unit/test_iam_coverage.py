"""Every AWS call the functions' code makes is allowed by that function's role in
template.yaml. The code runs in process against moto (which enforces no IAM); a botocore
hook records each S3 and DynamoDB operation, presigned ones included (a presigned URL is
used with the role's permissions), and each is checked against the role's statements.

A role that misses a permission fails only in AWS, with AccessDenied at run time; this
catches it here. Unknown operations fail the test until they are mapped to IAM actions.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pytest
from audiolift_devstack.template_resources import Resolver, load_template, resource_properties
from audiolift_testkit import SMALL_PART_BYTES, Api, tone_wav

if TYPE_CHECKING:
    from audiolift_core.jobs import Job

ACCOUNT = "123456789012"
REGION = "us-east-1"
EVENT_BUS = "audiolift-dev-jobs"

# S3 operation -> the IAM action that authorises it (the S3 docs' "Permissions" sections).
S3_OBJECT_ACTIONS = {
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "PutObject": "s3:PutObject",
    "ListParts": "s3:ListMultipartUploadParts",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "GetObjectAttributes": "s3:GetObjectAttributes",
    "DeleteObject": "s3:DeleteObject",
}
S3_BUCKET_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}
DYNAMODB_OPERATIONS = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "ConditionCheckItem",
}


@dataclass
class CallRecorder:
    """Records (service, operation, API parameters) of every call made by hooked clients,
    including ``generate_presigned_url`` (botocore builds its parameters the same way)."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    paused: bool = False

    def attach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-parameter-build", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.paused:
            self.calls.append((model.service_model.service_name, model.name, dict(params)))

    @contextmanager
    def pause(self) -> Iterator[None]:
        """For what the test does as the client or as another function."""
        self.paused = True
        try:
            yield
        finally:
            self.paused = False


def required_permissions(
    service: str, operation: str, params: dict[str, Any]
) -> list[tuple[str, str]]:
    if service == "s3":
        bucket = params["Bucket"]
        if operation in S3_OBJECT_ACTIONS:
            return [(S3_OBJECT_ACTIONS[operation], f"arn:aws:s3:::{bucket}/{params['Key']}")]
        if operation == "DeleteObjects":
            return [
                ("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}")
                for o in params["Delete"]["Objects"]
            ]
        if operation in S3_BUCKET_ACTIONS:
            return [(S3_BUCKET_ACTIONS[operation], f"arn:aws:s3:::{bucket}")]
    if service == "ssm" and operation == "GetParametersByPath":
        # The path itself is the resource (and Recursive would reach below it).
        assert not params.get("Recursive"), "keys are read from their own path only"
        return [
            ("ssm:GetParametersByPath", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{params['Path']}")
        ]
    if service == "events" and operation == "PutEvents":
        return [
            ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{e['EventBusName']}")
            for e in params["Entries"]
        ]
    if service == "sqs" and operation == "SendMessage":
        name = params["QueueUrl"].rsplit("/", 1)[-1]
        return [("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")]
    if service == "dynamodb" and operation in DYNAMODB_OPERATIONS:
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}"
        if params.get("IndexName"):
            arn += f"/index/{params['IndexName']}"
        return [(f"dynamodb:{operation}", arn)]
    raise AssertionError(f"map {service}:{operation} to its IAM action in this test")


def role_statements(role_id: str, bucket: str, table: str) -> list[dict[str, Any]]:
    resolver = Resolver.for_template(load_template())
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    resolver.refs.update({"UploadsBucket": bucket, "JobsTable": table, "JobEventsBus": EVENT_BUS})
    resolver.attrs.update(
        {
            ("JobsTable", "Arn"): table_arn,
            ("UploadsBucket", "Arn"): f"arn:aws:s3:::{bucket}",
            ("ProcessingQueue", "Arn"): f"arn:aws:sqs:{REGION}:{ACCOUNT}:processing",
            ("ApiLogGroup", "Arn"): "arn:aws:logs:::log-group:api:*",
            ("ProcessorLogGroup", "Arn"): "arn:aws:logs:::log-group:processor:*",
            ("JobEventsBus", "Arn"): f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{EVENT_BUS}",
        }
    )
    role = resource_properties(resolver, role_id)
    return [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def denied(recorder: CallRecorder, role_id: str, bucket: str, table: str) -> list[str]:
    statements = role_statements(role_id, bucket, table)

    def allowed(action: str, resource: str) -> bool:
        return any(
            s["Effect"] == "Allow"
            and any(fnmatch.fnmatchcase(action, a) for a in as_list(s["Action"]))
            and any(fnmatch.fnmatchcase(resource, r) for r in as_list(s["Resource"]))
            for s in statements
        )

    missing = []
    for service, operation, params in recorder.calls:
        for action, resource in required_permissions(service, operation, params):
            if not allowed(action, resource):
                missing.append(f"{service}:{operation} needs {action} on {resource}")
    return sorted(set(missing))


def operations(recorder: CallRecorder) -> set[str]:
    return {f"{service}:{operation}" for service, operation, _ in recorder.calls}


# --- the API --------------------------------------------------------------------------------


@pytest.fixture
def audited_api(api: Api) -> tuple[Api, CallRecorder]:
    recorder = CallRecorder()
    recorder.attach(api.aws.s3, api.aws.dynamodb)
    return api, recorder


def put_parts(api: Api, recorder: CallRecorder, job_id: str, payload: bytes) -> None:
    """The client's part PUTs (to presigned URLs in real life): not the API's calls."""
    with recorder.pause():
        api.upload_parts(job_id, payload)


def uploaded_job(api: Api, recorder: CallRecorder) -> str:
    payload = os.urandom(2 * SMALL_PART_BYTES + 10)
    job_id = api.create_upload(size=len(payload))["job_id"]
    put_parts(api, recorder, job_id, payload)
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert response.status_code == 200, response.text
    return job_id


def processed(api: Api, recorder: CallRecorder, job_id: str) -> None:
    """What the processor does (its own role is checked below)."""
    from audiolift_core.jobs import JobStatus
    from audiolift_core.storage import result_key

    with recorder.pause():
        head = api.aws.s3.head_object(Bucket=api.bucket, Key=f"uploads/{job_id}")
        api.jobs.claim(job_id, object_etag=head["ETag"], lease_token="lease", lease_seconds=60)
        key = result_key(api.service.settings.storage.result_prefix, job_id)
        api.store.put_json(key, {"loudness": {"integrated_lufs": -23.0}})
        api.jobs.transition(
            job_id,
            JobStatus.COMPLETED,
            lease_token="lease",
            set_fields={"result_key": key, "progress": 100},
            remove_fields=("lease_token", "lease_expires_at"),
        )


def test_every_call_of_the_upload_and_job_routes_is_allowed_to_the_api_role(
    audited_api: tuple[Api, CallRecorder],
) -> None:
    api, recorder = audited_api
    alice = api.auth("alice")
    payload = os.urandom(2 * SMALL_PART_BYTES + 10)

    # Create, sign just in time, list parts, complete (twice: idempotent), read, list.
    job_id = api.create_upload(size=len(payload))["job_id"]
    signed = api.client.post(
        f"/v1/uploads/{job_id}/parts",
        json={"part_numbers": [1, 2, 3], "content_md5": {"1": "1B2M2Y8AsgTpgAmY7PhCfg=="}},
        headers=alice,
    )
    assert signed.status_code == 200, signed.text
    put_parts(api, recorder, job_id, payload)
    assert api.client.get(f"/v1/uploads/{job_id}/parts", headers=alice).status_code == 200
    for _ in range(2):  # with the file's SHA-256, recorded on the job before completing
        done = api.client.post(
            f"/v1/uploads/{job_id}/complete", json={"sha256": "ab" * 32}, headers=alice
        )
        assert done.status_code == 200, done.text
    assert api.client.get(f"/v1/jobs/{job_id}", headers=alice).status_code == 200
    assert api.client.get("/v1/jobs?limit=5", headers=alice).status_code == 200
    assert api.client.get("/v1/limits", headers=alice).status_code == 200

    # Results, inline and as a presigned GET; then delete the finished job's files.
    processed(api, recorder, job_id)
    assert api.client.get(f"/v1/jobs/{job_id}/result", headers=alice).status_code == 200
    api.service.settings = replace(api.service.settings, result_inline_max_bytes=1)
    redirect = api.client.get(f"/v1/jobs/{job_id}/result", headers=alice, follow_redirects=False)
    assert redirect.status_code == 303
    assert api.client.delete(f"/v1/jobs/{job_id}", headers=alice).status_code == 204

    # Abort an upload, cancel an unfinished job.
    aborted = api.create_upload(size=len(payload))["job_id"]
    assert api.client.delete(f"/v1/uploads/{aborted}", headers=alice).status_code == 204
    cancelled = uploaded_job(api, recorder)
    assert api.client.delete(f"/v1/jobs/{cancelled}", headers=alice).status_code == 202

    # Uppy's Companion routes.
    created = api.client.post(
        "/s3/multipart",
        json={"filename": "take.wav", "type": "audio/wav", "metadata": {"size": str(len(payload))}},
        headers=alice,
    )
    assert created.status_code == 200, created.text
    upload_id, key = created.json()["uploadId"], created.json()["key"]
    query = {"key": key}
    assert (
        api.client.get(f"/s3/multipart/{upload_id}/1", params=query, headers=alice).status_code
        == 200
    )
    assert (
        api.client.get(f"/s3/multipart/{upload_id}", params=query, headers=alice).status_code == 200
    )
    assert (
        api.client.delete(f"/s3/multipart/{upload_id}", params=query, headers=alice).status_code
        == 200
    )

    seen = operations(recorder)
    for expected in (
        "s3:CreateMultipartUpload",
        "s3:UploadPart",  # presigned
        "s3:ListParts",
        "s3:CompleteMultipartUpload",
        "s3:AbortMultipartUpload",
        "s3:GetObject",  # the result, inline and presigned
        "s3:DeleteObjects",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:DeleteItem",
    ):
        assert expected in seen, f"the flow no longer exercises {expected}: {sorted(seen)}"
    assert denied(recorder, "ApiFunctionRole", api.bucket, api.table) == []


def test_complete_after_a_lost_response_is_allowed_to_the_api_role(
    audited_api: tuple[Api, CallRecorder],
) -> None:
    api, recorder = audited_api
    payload = os.urandom(2 * SMALL_PART_BYTES)
    job_id = api.create_upload(size=len(payload))["job_id"]
    put_parts(api, recorder, job_id, payload)
    job = api.jobs.get(job_id)
    assert job is not None and job.upload_id
    with recorder.pause():  # S3 completed, but the API died before recording it
        api.store.complete(
            job.object_key, job.upload_id, api.store.list_parts(job.object_key, job.upload_id)
        )
    response = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert response.status_code == 200, response.text
    assert denied(recorder, "ApiFunctionRole", api.bucket, api.table) == []


# --- the processor --------------------------------------------------------------------------


def completed_upload(api: Api, audio: bytes) -> Job:
    """A job whose upload of ``audio`` went through the API and was completed."""
    job_id = api.create_upload(size=len(audio), filename="take.wav")["job_id"]
    put_parts(api, CallRecorder(), job_id, audio)
    completed = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert completed.status_code == 200, completed.text
    job = api.jobs.get(job_id)
    assert job is not None
    return job


def test_every_call_of_the_processor_is_allowed_to_its_role(api: Api) -> None:
    from audiolift_core.jobs import JobStatus
    from audiolift_core.settings import ProcessorSettings, StorageSettings
    from audiolift_devstack.lambda_context import LocalLambdaContext
    from audiolift_processor.handler import handle_event
    from audiolift_processor.processing import Processor

    job = completed_upload(api, tone_wav())
    job_id = job.job_id
    head = api.aws.s3.head_object(Bucket=api.bucket, Key=job.object_key)

    recorder = CallRecorder()
    recorder.attach(api.aws.s3, api.aws.dynamodb)
    settings = ProcessorSettings(
        storage=StorageSettings(jobs_table=api.table, upload_bucket=api.bucket),
        read_chunk_bytes=64 * 1024,
        progress_interval_seconds=0.0,
    )
    processor = Processor(settings, api.jobs, api.store, api.aws.s3)
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:CompleteMultipartUpload",
        "s3": {
            "bucket": {"name": api.bucket, "arn": f"arn:aws:s3:::{api.bucket}"},
            "object": {
                "key": job.object_key.replace("/", "%2F"),
                "size": head["ContentLength"],
                "eTag": head["ETag"].strip('"'),
            },
        },
    }
    message = {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": json.dumps({"Records": [record]}),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:processing",
        "awsRegion": REGION,
    }

    context = LocalLambdaContext("processor", timeout_seconds=600)
    response = handle_event({"Records": [message]}, context, processor)
    assert response == {"batchItemFailures": []}
    done = api.jobs.get(job_id)
    assert done is not None and done.status is JobStatus.COMPLETED
    seen = operations(recorder)
    assert {"s3:GetObject", "s3:PutObject", "dynamodb:UpdateItem"} <= seen, seen
    assert denied(recorder, "ProcessorFunctionRole", api.bucket, api.table) == []


def uploaded_for_processing(api: Api, audio: bytes) -> tuple[Job, str, CallRecorder]:
    """A job uploaded and completed through the API, the processing queue, and a recorder
    of every call made from now on."""
    job = completed_upload(api, audio)
    queue_url = api.aws.sqs.create_queue(QueueName="processing")["QueueUrl"]
    recorder = CallRecorder()
    recorder.attach(api.aws.s3, api.aws.dynamodb, api.aws.sqs)
    return job, queue_url, recorder


def test_checkpointing_and_handing_on_is_allowed_to_the_processor_role(api: Api) -> None:
    """An analysis longer than one invocation: checkpoints written, read back, deleted;
    the hand-on message sent to the processing queue; the record updated under the lease."""
    from audiolift_core.jobs import JobStatus
    from audiolift_core.processing_queue import ProcessingQueue
    from audiolift_core.settings import ProcessorSettings, StorageSettings
    from audiolift_devstack.lambda_context import LocalLambdaContext
    from audiolift_processor.events import ObjectRef, refs_from_sqs_body
    from audiolift_processor.processing import Outcome, Processor

    job, queue_url, recorder = uploaded_for_processing(api, tone_wav(seconds=60.0))
    job_id = job.job_id
    settings = ProcessorSettings(
        storage=StorageSettings(jobs_table=api.table, upload_bucket=api.bucket),
        read_chunk_bytes=64 * 1024,
        progress_interval_seconds=0.0,
        deadline_margin_seconds=59.9,  # one block per invocation, then hand on
        checkpoint_interval_seconds=1e-6,
        processing_queue_url=queue_url,
    )
    processor = Processor(
        settings, api.jobs, api.store, api.aws.s3, hand_on=ProcessingQueue(api.aws.sqs, queue_url)
    )
    ref: ObjectRef | None = ObjectRef(api.bucket, job.object_key, None, None, "ObjectCreated:Put")
    outcomes = []
    while ref is not None:
        context = LocalLambdaContext("processor", timeout_seconds=60)
        outcomes.append(processor.process(ref, context=context))
        with recorder.pause():
            messages = api.aws.sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
        ref = refs_from_sqs_body(messages[0]["Body"])[0] if messages else None
    assert outcomes[0] is Outcome.CONTINUED and outcomes[-1] is Outcome.COMPLETED
    done = api.jobs.get(job_id)
    assert done is not None and done.status is JobStatus.COMPLETED
    seen = operations(recorder)
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObjects", "sqs:SendMessage"} <= seen, seen
    assert any(
        op == "GetObject" and params["Key"].startswith("checkpoints/")
        for _, op, params in recorder.calls
    )
    assert denied(recorder, "ProcessorFunctionRole", api.bucket, api.table) == []


def test_an_analysis_in_parallel_parts_is_allowed_to_the_processor_role(api: Api) -> None:
    """A large PCM file analysed in parts: the plan, the parts' ranged reads, states and
    counts, the hash part, the merge, and every message on the processing queue."""
    from audiolift_core.jobs import JobStatus
    from audiolift_core.processing_queue import ProcessingQueue
    from audiolift_core.settings import ProcessorSettings, StorageSettings
    from audiolift_devstack.lambda_context import LocalLambdaContext
    from audiolift_processor.events import ObjectRef, refs_from_sqs_body
    from audiolift_processor.processing import Processor

    # 2.6 MB: three ranges of ~1 MiB
    job, queue_url, recorder = uploaded_for_processing(api, tone_wav(seconds=30.0, rate=44_100))
    job_id = job.job_id
    settings = ProcessorSettings(
        storage=StorageSettings(jobs_table=api.table, upload_bucket=api.bucket),
        read_chunk_bytes=64 * 1024,
        progress_interval_seconds=0.0,
        processing_queue_url=queue_url,
        fanout_min_bytes=1 << 20,
        fanout_range_bytes=1 << 20,
    )
    processor = Processor(
        settings, api.jobs, api.store, api.aws.s3, hand_on=ProcessingQueue(api.aws.sqs, queue_url)
    )
    refs = [ObjectRef(api.bucket, job.object_key, None, None, "ObjectCreated:Put")]
    while refs:
        context = LocalLambdaContext("processor", timeout_seconds=60)
        processor.process(refs.pop(0), context=context)
        with recorder.pause():
            for message in api.aws.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10
            ).get("Messages", []):
                refs += refs_from_sqs_body(message["Body"])
                api.aws.sqs.delete_message(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
    done = api.jobs.get(job_id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert done.parts_total == 4  # three ranges and the hash
    seen = operations(recorder)
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObjects", "sqs:SendMessage"} <= seen, seen
    assert denied(recorder, "ProcessorFunctionRole", api.bucket, api.table) == []


# --- API keys from SSM and job events -------------------------------------------------------


def api_function_environment() -> dict[str, str]:
    template = load_template()
    resolver = Resolver.for_template(template)
    resolver.refs.update({"UploadsBucket": "b", "JobsTable": "t", "JobEventsBus": EVENT_BUS})
    environment = template["Resources"]["ApiFunction"]["Properties"]["Environment"]
    variables: dict[str, str] = resolver.resolve(environment)["Variables"]
    return variables


def test_reading_api_keys_and_announcing_jobs_is_allowed_to_both_roles(api: Api) -> None:
    import boto3
    from audiolift_core.api_keys import ApiKeyStore
    from audiolift_core.job_events import JobEvents

    environment = api_function_environment()
    assert environment["EVENT_BUS_NAME"] == EVENT_BUS
    ssm = boto3.client("ssm", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name=EVENT_BUS)
    store = ApiKeyStore(ssm, environment["API_KEYS_PARAMETER"])
    _, key = store.add("carol")
    api.service.api_keys = store
    api.service.events = JobEvents(events, EVENT_BUS, bucket=api.bucket)

    recorder = CallRecorder()
    recorder.attach(ssm, events)
    job_id = api.create_upload("alice")["job_id"]
    carol = {"Authorization": f"Bearer {key}"}
    assert api.client.get("/v1/jobs", headers=carol).status_code == 200
    cancel = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth("alice"))
    assert cancel.status_code == 202
    assert operations(recorder) == {"ssm:GetParametersByPath", "events:PutEvents"}
    assert denied(recorder, "ApiFunctionRole", api.bucket, api.table) == []

    job = api.jobs.get(job_id)
    assert job is not None
    processor_calls = CallRecorder()
    processor_calls.attach(events)
    assert api.service.events.publish(job)
    assert operations(processor_calls) == {"events:PutEvents"}
    assert denied(processor_calls, "ProcessorFunctionRole", api.bucket, api.table) == []
