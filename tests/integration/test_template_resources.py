"""The resources the local stack and the tests create match template.yaml: create them under
moto with ``create_resources``, describe what moto holds, and compare with the template's
own text. If someone edits the template (or the creator), this fails until both agree."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from audiolift_devstack.template_resources import (
    CreatedResources,
    Resolver,
    ResourceNames,
    create_bucket,
    create_resources,
    load_template,
    table_definition,
)
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
NAMES = ResourceNames.with_prefix("drift-check")
REGION = "us-east-1"


def template_value(logical_id: str, *path: str, **parameters: Any) -> Any:
    """A property straight from the template, parameters resolved to their defaults."""
    r = Resolver.for_template(TEMPLATE, parameters=parameters)
    r.attrs[("ProcessingQueue", "Arn")] = "queue-arn"
    r.attrs[("ProcessingDLQ", "Arn")] = "dlq-arn"
    value: Any = RESOURCES[logical_id]["Properties"]
    for key in path:
        value = value[key]
    return r.resolve(value)


class Clients:
    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield Clients()


@pytest.fixture
def created(clients: Clients) -> CreatedResources:
    return create_resources(clients.s3, clients.dynamodb, clients.sqs, names=NAMES)


def test_table_has_the_templates_keys_index_ttl_and_backups(
    clients: Clients, created: CreatedResources
) -> None:
    table = clients.dynamodb.describe_table(TableName=created.table_name)["Table"]
    assert table["KeySchema"] == template_value("JobsTable", "KeySchema")
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        template_value("JobsTable", "AttributeDefinitions"), key=str
    )
    assert table["BillingModeSummary"]["BillingMode"] == template_value("JobsTable", "BillingMode")
    created_indexes = {
        gsi["IndexName"]: (gsi["KeySchema"], gsi["Projection"])
        for gsi in table["GlobalSecondaryIndexes"]
    }
    expected_indexes = {
        gsi["IndexName"]: (gsi["KeySchema"], gsi["Projection"])
        for gsi in template_value("JobsTable", "GlobalSecondaryIndexes")
    }
    assert created_indexes == expected_indexes
    ttl = clients.dynamodb.describe_time_to_live(TableName=created.table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "purge_at"
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    backups = clients.dynamodb.describe_continuous_backups(TableName=created.table_name)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


def test_table_definition_alone_creates_a_usable_table(clients: Clients) -> None:
    """What unit tests use under mock_aws: the owner index answers newest first."""
    clients.dynamodb.create_table(**table_definition("plain-jobs"))
    for n, created_at in enumerate(["2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"]):
        clients.dynamodb.put_item(
            TableName="plain-jobs",
            Item={
                "job_id": {"S": f"j{n}"},
                "owner": {"S": "alice"},
                "created_at": {"S": created_at},
            },
        )
    newest_first = clients.dynamodb.query(
        TableName="plain-jobs",
        IndexName="by_owner",
        KeyConditionExpression="#o = :o",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": {"S": "alice"}},
        ScanIndexForward=False,
    )
    assert [item["job_id"]["S"] for item in newest_first["Items"]] == ["j1", "j0"]


def test_queues_have_the_templates_visibility_timeout_and_redrive(
    clients: Clients, created: CreatedResources
) -> None:
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=created.queue_url, AttributeNames=["All"]
    )["Attributes"]
    assert int(attributes["VisibilityTimeout"]) == int(
        template_value("ProcessingQueue", "VisibilityTimeout")
    )
    assert int(attributes["MessageRetentionPeriod"]) == int(
        template_value("ProcessingQueue", "MessageRetentionPeriod")
    )
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == created.dlq_arn
    assert int(redrive["maxReceiveCount"]) == int(
        TEMPLATE["Parameters"]["MaxReceiveCount"]["Default"]
    )
    assert created.queue_settings.max_receive_count == int(redrive["maxReceiveCount"])
    assert created.queue_settings.batch_size == int(
        RESOURCES["ProcessorFunction"]["Properties"]["Events"]["ObjectCreated"]["Properties"][
            "BatchSize"
        ]
    )
    assert created.queue_settings.report_batch_item_failures
    dlq = clients.sqs.get_queue_attributes(QueueUrl=created.dlq_url, AttributeNames=["All"])
    assert int(dlq["Attributes"]["MessageRetentionPeriod"]) == int(
        template_value("ProcessingDLQ", "MessageRetentionPeriod")
    )


def test_a_message_received_max_receive_count_times_moves_to_the_dlq(
    clients: Clients, created: CreatedResources
) -> None:
    clients.sqs.purge_queue(QueueUrl=created.queue_url)  # the s3:TestEvent
    clients.sqs.set_queue_attributes(
        QueueUrl=created.queue_url, Attributes={"VisibilityTimeout": "0"}
    )
    clients.sqs.send_message(QueueUrl=created.queue_url, MessageBody="{}")
    for _ in range(created.queue_settings.max_receive_count):
        received = clients.sqs.receive_message(QueueUrl=created.queue_url)
        assert len(received["Messages"]) == 1
    assert "Messages" not in clients.sqs.receive_message(QueueUrl=created.queue_url)
    moved = clients.sqs.receive_message(QueueUrl=created.dlq_url)
    assert moved["Messages"][0]["Body"] == "{}"


def test_bucket_has_the_templates_cors_and_lifecycle(
    clients: Clients, created: CreatedResources
) -> None:
    (rule,) = clients.s3.get_bucket_cors(Bucket=created.bucket_name)["CORSRules"]
    (expected,) = template_value("UploadsBucket", "CorsConfiguration", "CorsRules")
    assert sorted(rule["AllowedMethods"]) == sorted(expected["AllowedMethods"])
    assert rule["AllowedOrigins"] == expected["AllowedOrigins"]
    assert rule["AllowedHeaders"] == expected["AllowedHeaders"]
    assert rule["ExposeHeaders"] == expected["ExposedHeaders"] == ["ETag"]
    assert rule["MaxAgeSeconds"] == int(expected["MaxAge"])

    rules = clients.s3.get_bucket_lifecycle_configuration(Bucket=created.bucket_name)["Rules"]
    expected_rules = template_value("UploadsBucket", "LifecycleConfiguration", "Rules")
    assert {r["ID"] for r in rules} == {r["Id"] for r in expected_rules}
    by_id = {r["ID"]: r for r in rules}
    for want in expected_rules:
        got = by_id[want["Id"]]
        assert got["Status"] == want["Status"]
        assert got.get("Filter", {}).get("Prefix", "") == want.get("Prefix", "")
        if "ExpirationInDays" in want:
            assert got["Expiration"]["Days"] == int(want["ExpirationInDays"])
        if "AbortIncompleteMultipartUpload" in want:
            assert got["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1


def test_bucket_notification_has_the_templates_prefix_filter_and_queue(
    clients: Clients, created: CreatedResources
) -> None:
    configuration = clients.s3.get_bucket_notification_configuration(Bucket=created.bucket_name)
    (queue_configuration,) = configuration["QueueConfigurations"]
    (expected,) = template_value(
        "UploadsBucket", "NotificationConfiguration", "QueueConfigurations"
    )
    assert queue_configuration["QueueArn"] == created.queue_arn
    assert queue_configuration["Events"] == [expected["Event"]]
    rules = queue_configuration["Filter"]["Key"]["FilterRules"]
    assert [(r["Name"].lower(), r["Value"]) for r in rules] == [
        (r["Name"], r["Value"]) for r in expected["Filter"]["S3Key"]["Rules"]
    ]
    assert created.upload_prefix == "uploads/"


def test_new_uploads_and_only_uploads_reach_the_queue(
    clients: Clients, created: CreatedResources
) -> None:
    def bodies() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            messages = clients.sqs.receive_message(
                QueueUrl=created.queue_url, MaxNumberOfMessages=10
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                found.append(json.loads(message["Body"]))
                clients.sqs.delete_message(
                    QueueUrl=created.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return found

    bodies()  # the s3:TestEvent sent when the notification was configured
    clients.s3.put_object(Bucket=created.bucket_name, Key="results/x.json", Body=b"{}")
    clients.s3.put_object(Bucket=created.bucket_name, Key="uploads/job1", Body=b"RIFF")
    (announced,) = bodies()
    (record,) = announced["Records"]
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == created.bucket_name
    assert record["s3"]["object"]["key"] in ("uploads/job1", "uploads%2Fjob1")


def test_bucket_without_notifications_for_servers_that_have_none(clients: Clients) -> None:
    """SeaweedFS has no bucket notifications: the caller skips that part."""
    name = create_bucket(clients.s3, "no-notify-uploads", with_notifications=False)
    configuration = clients.s3.get_bucket_notification_configuration(Bucket=name)
    assert "QueueConfigurations" not in configuration
    assert clients.s3.get_bucket_cors(Bucket=name)["CORSRules"][0]["ExposeHeaders"] == ["ETag"]


def test_visibility_timeout_override_is_for_tests_only(clients: Clients) -> None:
    created = create_resources(
        clients.s3,
        clients.dynamodb,
        clients.sqs,
        names=ResourceNames.with_prefix("fast-retry"),
        visibility_timeout=2,
        with_notifications=False,
    )
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=created.queue_url, AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "2" and created.queue_settings.visibility_timeout == 2


def test_parameters_override_the_defaults(clients: Clients) -> None:
    created = create_resources(
        clients.s3,
        clients.dynamodb,
        clients.sqs,
        names=ResourceNames.with_prefix("params"),
        parameters={"ProcessorTimeoutSeconds": "60", "MaxReceiveCount": "5"},
    )
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=created.queue_url, AttributeNames=["All"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "360"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5
    with pytest.raises(ValueError, match="Unknown parameters"):
        create_resources(
            clients.s3,
            clients.dynamodb,
            clients.sqs,
            names=ResourceNames.with_prefix("typo"),
            parameters={"ProcessorTimeout": "60"},
        )
