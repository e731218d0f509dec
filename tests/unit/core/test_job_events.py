"""Job events on EventBridge (moto): the processor's completed and failed jobs and the API's
cancels arrive, through a rule on the bus, in an SQS queue as an integrator would read
them; a bus that refuses the event never undoes or fails the job's transition."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from audiolift_core.job_events import SOURCE, JobEvents, job_event_entry
from audiolift_core.jobs import JobStatus
from audiolift_core.settings import ProcessorSettings
from audiolift_testkit import REGION, Api, AwsClients, tone_wav

BUS = "audiolift-test-jobs"


@dataclass
class Subscriber:
    """A rule on the bus for source "audiolift", targeting an SQS queue."""

    events: Any
    sqs: Any
    queue_url: str

    def received(self, expected: int = 1) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        for _ in range(5):
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            got += [json.loads(m["Body"]) for m in messages]
            if len(got) >= expected:
                break
        return got


@pytest.fixture
def subscriber(aws: AwsClients) -> Subscriber:
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name=BUS)
    queue_url = aws.sqs.create_queue(QueueName="integrator-job-events")["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="jobs-to-queue",
        EventBusName=BUS,
        EventPattern=json.dumps({"source": [SOURCE]}),
    )
    events.put_targets(
        Rule="jobs-to-queue", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    return Subscriber(events, aws.sqs, queue_url)


@pytest.fixture
def job_events(subscriber: Subscriber, api: Api) -> JobEvents:
    return JobEvents(subscriber.events, BUS, bucket=api.bucket)


@pytest.fixture
def evented_api(api: Api, job_events: JobEvents) -> Iterator[Api]:
    api.service.events = job_events
    yield api


def uploaded(api: Api, body: bytes, filename: str = "take.wav") -> str:
    """A job whose object is in the bucket (as after a completed upload)."""
    job_id: str = api.create_upload(size=len(body), filename=filename)["job_id"]
    api.upload_parts(job_id, body)
    done = api.client.post(f"/v1/uploads/{job_id}/complete", headers=api.auth("alice"))
    assert done.status_code == 200, done.text
    return job_id


def process(api: Api, job_id: str, events: JobEvents | None) -> str:
    from audiolift_processor.events import ObjectRef
    from audiolift_processor.processing import Processor

    settings = ProcessorSettings(
        storage=api.service.settings.storage,
        read_chunk_bytes=64 * 1024,
        progress_interval_seconds=0.0,
        event_bus_name=BUS,
    )
    processor = Processor(settings, api.jobs, api.store, api.aws.s3, events=events)
    key = f"uploads/{job_id}"
    head = api.aws.s3.head_object(Bucket=api.bucket, Key=key)
    ref = ObjectRef(api.bucket, key, head["ETag"].strip('"'), head["ContentLength"], "Put")
    return processor.process(ref).value


def test_a_completed_analysis_is_announced_with_its_summary_and_result(
    api: Api, job_events: JobEvents, subscriber: Subscriber
) -> None:
    job_id = uploaded(api, tone_wav())
    assert process(api, job_id, job_events) == "completed"
    (event,) = subscriber.received()
    assert (event["source"], event["detail-type"]) == ("audiolift", "Job Completed")
    detail = event["detail"]
    job = api.jobs.get(job_id)
    assert job is not None and job.summary
    assert detail["job_id"] == job_id and detail["owner"] == "alice"
    assert detail["status"] == "completed" and detail["error"] is None
    assert detail["summary"] == json.loads(json.dumps(job.summary))
    assert detail["result"] == {
        "bucket": api.bucket,
        "key": job.result_key,
        "api_path": f"/v1/jobs/{job_id}/result",
    }
    # The location is real: the result document is there.
    assert api.store.get_json(detail["result"]["key"])["job_id"] == job_id


def test_a_failed_analysis_is_announced_with_its_error(
    api: Api, job_events: JobEvents, subscriber: Subscriber
) -> None:
    job_id = uploaded(api, b"this is text, named like audio\n" * 200)
    assert process(api, job_id, job_events) == "failed"
    (event,) = subscriber.received()
    assert event["detail-type"] == "Job Failed"
    detail = event["detail"]
    assert (detail["status"], detail["result"]) == ("failed", None)
    assert detail["error"]["code"] == "unsupported_format" and detail["error"]["message"]


def test_cancels_and_aborts_through_the_api_are_announced(
    evented_api: Api, subscriber: Subscriber
) -> None:
    api = evented_api
    alice = api.auth("alice")
    cancelled = api.create_upload()["job_id"]
    assert api.client.post(f"/v1/jobs/{cancelled}/cancel", headers=alice).status_code == 202
    aborted = api.create_upload()["job_id"]
    assert api.client.delete(f"/v1/uploads/{aborted}", headers=alice).status_code == 204
    deleted = api.create_upload()["job_id"]
    assert api.client.delete(f"/v1/jobs/{deleted}", headers=alice).status_code == 202

    events = subscriber.received(3)
    assert {e["detail-type"] for e in events} == {"Job Cancelled"}
    assert sorted(e["detail"]["job_id"] for e in events) == sorted([cancelled, aborted, deleted])
    assert all(e["detail"]["status"] == "cancelled" for e in events)
    # A refused cancel (the job is already cancelled) announces nothing again.
    assert api.client.post(f"/v1/jobs/{cancelled}/cancel", headers=alice).status_code == 409
    assert subscriber.received(1) == []


def test_a_bus_that_refuses_the_event_fails_neither_the_cancel_nor_the_analysis(
    api: Api, subscriber: Subscriber
) -> None:
    missing_bus = JobEvents(subscriber.events, "no-such-bus", bucket=api.bucket)
    api.service.events = missing_bus
    job_id = api.create_upload()["job_id"]
    response = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth("alice"))
    assert response.status_code == 202
    job = api.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.CANCELLED

    analysed = uploaded(api, tone_wav(0.5))
    assert process(api, analysed, missing_bus) == "completed"
    done = api.jobs.get(analysed)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert subscriber.received(1) == []
    assert missing_bus.publish(done) is False


def test_an_unfinished_job_has_no_event(api: Api) -> None:
    job_id = api.create_upload()["job_id"]
    job = api.jobs.get(job_id)
    assert job is not None
    with pytest.raises(ValueError, match="has not ended"):
        job_event_entry(job, bus_name=BUS, bucket=api.bucket)
    cancelled = replace(job, status=JobStatus.CANCELLED)
    entry = job_event_entry(cancelled, bus_name=BUS, bucket=api.bucket)
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "audiolift",
        "Job Cancelled",
        BUS,
    )
    assert json.loads(entry["Detail"])["job_path"] == f"/v1/jobs/{job_id}"


# --- template.yaml --------------------------------------------------------------------------


def test_the_template_makes_the_bus_and_lets_both_functions_publish_only_there() -> None:
    from audiolift_devstack.template_resources import Resolver, load_template

    template = load_template()
    resources = template["Resources"]
    assert resources["JobEventsBus"]["Type"] == "AWS::Events::EventBus"
    resolver = Resolver.for_template(template)
    resolver.refs.update(
        {"UploadsBucket": "b", "JobsTable": "t", "JobEventsBus": "the-bus", "ProcessingQueue": "q"}
    )
    bus_arn = "arn:aws:events:us-east-1:123456789012:event-bus/the-bus"
    resolver.attrs.update(
        {
            ("UploadsBucket", "Arn"): "arn:aws:s3:::b",
            ("JobsTable", "Arn"): "arn:aws:dynamodb:us-east-1:123456789012:table/t",
            ("ProcessingQueue", "Arn"): "arn:aws:sqs:us-east-1:123456789012:q",
            ("ApiLogGroup", "Arn"): "arn:aws:logs:us-east-1:123456789012:log-group:api",
            ("ProcessorLogGroup", "Arn"): "arn:aws:logs:us-east-1:123456789012:log-group:p",
            ("JobEventsBus", "Arn"): bus_arn,
        }
    )
    for function, role in (
        ("ApiFunction", "ApiFunctionRole"),
        ("ProcessorFunction", "ProcessorFunctionRole"),
    ):
        environment = resolver.resolve(resources[function]["Properties"]["Environment"])
        assert environment["Variables"]["EVENT_BUS_NAME"] == "the-bus"
        policies = resolver.resolve(resources[role]["Properties"])["Policies"]
        statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
        publishing = [s for s in statements if "events" in json.dumps(s["Action"])]
        assert publishing == [
            {
                "Sid": "PublishJobEvents",
                "Effect": "Allow",
                "Action": "events:PutEvents",
                "Resource": bus_arn,
            }
        ]
