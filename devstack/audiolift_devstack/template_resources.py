"""Create the jobs table, the uploads bucket and the processing queues from template.yaml.

The local stack and the tests make their resources from the template's own definitions
(key schema, GSI, TTL, bucket CORS and lifecycle, the notification's prefix filter, the
queue's visibility timeout and redrive), so that local resources and the deployed ones
cannot drift apart. Only names differ: the caller chooses them.

Intrinsic functions are resolved with the template's parameter defaults (optionally
overridden), a small set of pseudo parameters, and the physical ids of resources created so
far: ``!Ref`` / ``!Sub`` / ``!GetAtt`` / ``!FindInMap`` / ``!If`` / ``!Select`` / ``!Split``
/ ``!Join`` / ``!Equals`` / ``!Not`` / ``!And`` / ``!Or``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

# Logical ids in template.yaml.
TABLE_ID = "JobsTable"
BUCKET_ID = "UploadsBucket"
QUEUE_ID = "ProcessingQueue"
DLQ_ID = "ProcessingDLQ"
PROCESSOR_ID = "ProcessorFunction"

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account


# --- reading the template -------------------------------------------------------------------


# libyaml's parser when PyYAML has it (about 10x faster), with the safe constructors.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CfnYamlLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """A SafeLoader that turns CloudFormation's short-form tags into their long form:
    ``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``,
    ``!Sub ...`` -> ``{"Fn::Sub": ...}`` and so on."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"odd node {node!r}", node.start_mark)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnYamlLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path | str = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data (a fresh copy each call: callers may change it)."""
    resolved = Path(path).resolve()
    return copy.deepcopy(_parse_template(str(resolved), resolved.stat().st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _parse_template(path: str, mtime_ns: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as stream:
        template = yaml.load(stream, Loader=CfnYamlLoader)
    if not isinstance(template, dict) or "Resources" not in template:
        raise ValueError(f"{path} is not a CloudFormation template.")
    return template


# --- resolving intrinsic functions ----------------------------------------------------------


class _NoValue:
    """AWS::NoValue: the property disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


@dataclass
class Resolver:
    """Evaluates the intrinsic functions the resource definitions use."""

    template: Mapping[str, Any]
    parameters: dict[str, Any]
    pseudo: dict[str, str]
    refs: dict[str, Any] = field(default_factory=dict)  # logical id -> Ref value
    attrs: dict[tuple[str, str], Any] = field(default_factory=dict)  # (id, attr) -> value

    @classmethod
    def for_template(
        cls,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        region: str = "us-east-1",
        account_id: str = LOCAL_ACCOUNT_ID,
        stack_name: str = "audiolift-local",
    ) -> Resolver:
        values: dict[str, Any] = {}
        overrides = dict(parameters or {})
        for name, spec in (template.get("Parameters") or {}).items():
            raw = overrides.pop(name, spec.get("Default"))
            if raw is None:
                raise ValueError(f"Parameter {name} has no default; pass a value for it.")
            values[name] = _parameter_value(spec, raw)
        if overrides:
            raise ValueError(f"Unknown parameters: {sorted(overrides)}")
        pseudo = {
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/"
                "0a1b2c3d-0000-4000-8000-000000000000"
            ),
        }
        return cls(template=template, parameters=values, pseudo=pseudo)

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise KeyError(f"No condition {name!r} in the template.")
        return bool(self.resolve(conditions[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"!Ref {name}: not a parameter, and no such resource was created yet.")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        try:
            return self.attrs[(logical_id, attribute)]
        except KeyError:
            raise KeyError(f"!GetAtt {logical_id}.{attribute} is not known yet.") from None

    def sub(self, arg: Any) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        else:
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def _parameter_value(spec: Mapping[str, Any], raw: Any) -> Any:
    kind = spec.get("Type", "String")
    if kind == "CommaDelimitedList":
        return [part.strip() for part in str(raw).split(",")]
    # Ref of a Number parameter is a string in CloudFormation too; callers convert.
    return str(raw)


def _find_in_map(resolver: Resolver, arg: Any) -> Any:
    map_name, top, second = (resolver.resolve(a) for a in arg)
    return resolver.template["Mappings"][map_name][str(top)][str(second)]


def _if(resolver: Resolver, arg: Any) -> Any:
    name, when_true, when_false = arg
    return resolver.resolve(when_true if resolver.condition(name) else when_false)


def _get_att(resolver: Resolver, arg: Any) -> Any:
    logical_id, attribute = arg
    return resolver.get_att(logical_id, resolver.resolve(attribute))


_INTRINSICS: dict[str, Any] = {
    "Ref": lambda r, a: r.ref(a),
    "Fn::Sub": lambda r, a: r.sub(a),
    "Fn::GetAtt": _get_att,
    "Fn::FindInMap": _find_in_map,
    "Fn::If": _if,
    "Fn::Equals": lambda r, a: r.resolve(a[0]) == r.resolve(a[1]),
    "Fn::Not": lambda r, a: not r.resolve(a[0]),
    "Fn::And": lambda r, a: all(r.resolve(x) for x in a),
    "Fn::Or": lambda r, a: any(r.resolve(x) for x in a),
    "Fn::Select": lambda r, a: r.resolve(a[1])[int(r.resolve(a[0]))],
    "Fn::Split": lambda r, a: r.resolve(a[1]).split(a[0]),
    "Fn::Join": lambda r, a: a[0].join(str(x) for x in r.resolve(a[1])),
    "Condition": lambda r, a: r.condition(a),
}


def resource_properties(resolver: Resolver, logical_id: str) -> dict[str, Any]:
    """The resource's Properties with every intrinsic resolved."""
    resource = resolver.template["Resources"][logical_id]
    properties: dict[str, Any] = resolver.resolve(resource.get("Properties") or {})
    return properties


# --- names and results ----------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceNames:
    table: str
    bucket: str
    queue: str
    dlq: str

    @classmethod
    def with_prefix(cls, prefix: str) -> ResourceNames:
        """Names for one local stack or one test, all starting with ``prefix``."""
        return cls(
            table=f"{prefix}-jobs",
            bucket=f"{prefix}-uploads".lower(),
            queue=f"{prefix}-processing",
            dlq=f"{prefix}-processing-dlq",
        )


@dataclass(frozen=True)
class QueueSettings:
    """The processing queue as the template defines it, and how the processor is fed."""

    visibility_timeout: int
    message_retention_seconds: int
    max_receive_count: int
    batch_size: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class CreatedQueues:
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    settings: QueueSettings


@dataclass(frozen=True)
class CreatedResources:
    table_name: str
    bucket_name: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    queue_settings: QueueSettings
    upload_prefix: str
    with_notifications: bool


# --- the table ------------------------------------------------------------------------------


def table_definition(
    table_name: str,
    *,
    template_path: Path | str = TEMPLATE_PATH,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``create_table`` keyword arguments for the jobs table, from the template (keys, GSI,
    billing mode). TTL and point-in-time recovery are separate calls: see ``create_table``."""
    resolver = Resolver.for_template(load_template(template_path), parameters=parameters)
    properties = resource_properties(resolver, TABLE_ID)
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if properties.get("GlobalSecondaryIndexes"):
        # CloudFormation's GSI shape is the API's shape (IndexName, KeySchema, Projection).
        kwargs["GlobalSecondaryIndexes"] = [
            {k: gsi[k] for k in ("IndexName", "KeySchema", "Projection")}
            for gsi in properties["GlobalSecondaryIndexes"]
        ]
    return kwargs


def create_table(
    dynamodb: DynamoDBClient,
    table_name: str,
    *,
    template_path: Path | str = TEMPLATE_PATH,
    parameters: Mapping[str, Any] | None = None,
    with_housekeeping: bool = True,
) -> str:
    """Create the jobs table with the template's keys and GSI (unless it exists: a local
    stack keeps its table), then its TTL and PITR. ``with_housekeeping=False`` for servers
    without TTL and backups (dynalite)."""
    resolver = Resolver.for_template(load_template(template_path), parameters=parameters)
    properties = resource_properties(resolver, TABLE_ID)
    try:
        dynamodb.create_table(
            **table_definition(table_name, template_path=template_path, parameters=parameters)
        )
    except dynamodb.exceptions.ResourceInUseException:
        return table_name
    dynamodb.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    if not with_housekeeping:
        return table_name
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    pitr = properties.get("PointInTimeRecoverySpecification") or {}
    if pitr.get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(
            TableName=table_name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    return table_name


# --- the queues -----------------------------------------------------------------------------

# CloudFormation queue properties that are plain SQS attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
)


def visibility_timeout_for(
    function_timeout: int, *, template_path: Path | str = TEMPLATE_PATH
) -> int:
    """The processing queue's visibility timeout for a processor timeout, by the template's
    rule: its ``VisibilityByTimeout`` row when the timeout is on the template's menu, else
    the same multiple of the timeout (six) that every row of the mapping has."""
    rows = load_template(template_path)["Mappings"]["VisibilityByTimeout"]
    ratios = {int(row["Seconds"]) // int(timeout) for timeout, row in rows.items()}
    if len(ratios) != 1:
        raise ValueError(f"VisibilityByTimeout has no single multiple: {sorted(ratios)}")
    row = rows.get(str(function_timeout))
    return int(row["Seconds"]) if row else ratios.pop() * function_timeout


def queue_settings(
    *,
    template_path: Path | str = TEMPLATE_PATH,
    parameters: Mapping[str, Any] | None = None,
) -> QueueSettings:
    resolver = Resolver.for_template(load_template(template_path), parameters=parameters)
    return _queue_settings(resolver)


def _queue_settings(resolver: Resolver) -> QueueSettings:
    resolver.attrs.setdefault((DLQ_ID, "Arn"), "arn:placeholder")
    queue = resource_properties(resolver, QUEUE_ID)
    event = _processor_sqs_event(resolver)
    return QueueSettings(
        visibility_timeout=int(queue["VisibilityTimeout"]),
        message_retention_seconds=int(queue.get("MessageRetentionPeriod", 345600)),
        max_receive_count=int(queue["RedrivePolicy"]["maxReceiveCount"]),
        batch_size=int(event.get("BatchSize", 10)),
        report_batch_item_failures="ReportBatchItemFailures"
        in (event.get("FunctionResponseTypes") or []),
    )


def _processor_sqs_event(resolver: Resolver) -> dict[str, Any]:
    resolver.attrs.setdefault((QUEUE_ID, "Arn"), "arn:placeholder")
    events = resolver.template["Resources"][PROCESSOR_ID]["Properties"].get("Events") or {}
    for event in events.values():
        if event.get("Type") == "SQS":
            properties: dict[str, Any] = resolver.resolve(event.get("Properties") or {})
            return properties
    raise ValueError(f"{PROCESSOR_ID} has no SQS event source in the template.")


def create_queues(
    sqs: SQSClient,
    queue_name: str,
    dlq_name: str,
    *,
    template_path: Path | str = TEMPLATE_PATH,
    parameters: Mapping[str, Any] | None = None,
    visibility_timeout: int | None = None,
) -> CreatedQueues:
    """Create the dead-letter queue, then the processing queue with the template's
    attributes and redrive policy pointing at it.

    ``visibility_timeout`` overrides the template's value; only for tests that must see a
    retry in seconds rather than in six function timeouts."""
    resolver = Resolver.for_template(load_template(template_path), parameters=parameters)
    dlq_attributes = _sqs_attributes(resource_properties(resolver, DLQ_ID))
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=dlq_attributes)["QueueUrl"]
    dlq_arn = _queue_arn(sqs, dlq_url)
    resolver.refs[DLQ_ID] = dlq_url
    resolver.attrs[(DLQ_ID, "Arn")] = dlq_arn
    resolver.attrs[(DLQ_ID, "QueueName")] = dlq_name

    properties = resource_properties(resolver, QUEUE_ID)
    attributes = _sqs_attributes(properties)
    if visibility_timeout is not None:
        attributes["VisibilityTimeout"] = str(visibility_timeout)
    redrive = properties.get("RedrivePolicy")
    if redrive:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            }
        )
    queue_url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
    settings = _queue_settings(resolver)
    if visibility_timeout is not None:
        settings = QueueSettings(
            visibility_timeout=visibility_timeout,
            message_retention_seconds=settings.message_retention_seconds,
            max_receive_count=settings.max_receive_count,
            batch_size=settings.batch_size,
            report_batch_item_failures=settings.report_batch_item_failures,
        )
    return CreatedQueues(
        queue_url=queue_url,
        queue_arn=_queue_arn(sqs, queue_url),
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        settings=settings,
    )


def _sqs_attributes(properties: Mapping[str, Any]) -> dict[Any, str]:
    return {name: str(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties}


def _queue_arn(sqs: SQSClient, queue_url: str) -> str:
    response = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return response["Attributes"]["QueueArn"]


# --- the bucket -----------------------------------------------------------------------------


def bucket_cors_rules(
    *,
    template_path: Path | str = TEMPLATE_PATH,
    parameters: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The bucket's CORS rules in the S3 API's shape (``put_bucket_cors``)."""
    resolver = Resolver.for_template(load_template(template_path), parameters=parameters)
    return _cors_rules(_bucket_properties(resolver))


def bucket_notification_configuration(
    queue_arn: str,
    *,
    template_path: Path | str = TEMPLATE_PATH,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The bucket's notification configuration in the S3 API's shape, sent to ``queue_arn``."""
    resolver = Resolver.for_template(load_template(template_path), parameters=parameters)
    resolver.attrs[(QUEUE_ID, "Arn")] = queue_arn
    return _notification_configuration(_bucket_properties(resolver))


def upload_prefix(template_path: Path | str = TEMPLATE_PATH) -> str:
    """The key prefix whose new objects are announced to the processing queue."""
    configuration = bucket_notification_configuration(
        "arn:placeholder", template_path=template_path
    )
    for queue_configuration in configuration.get("QueueConfigurations", []):
        for rule in queue_configuration.get("Filter", {}).get("Key", {}).get("FilterRules", []):
            if rule["Name"].lower() == "prefix":
                return str(rule["Value"])
    return ""


def _bucket_properties(resolver: Resolver) -> dict[str, Any]:
    resolver.attrs.setdefault((QUEUE_ID, "Arn"), "arn:placeholder")
    return resource_properties(resolver, BUCKET_ID)


def _cors_rules(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    # CloudFormation spells three fields differently from the S3 API.
    renames = {"Id": "ID", "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}
    rules = (properties.get("CorsConfiguration") or {}).get("CorsRules") or []
    converted = []
    for rule in rules:
        out = {renames.get(k, k): v for k, v in rule.items()}
        if "MaxAgeSeconds" in out:
            out["MaxAgeSeconds"] = int(out["MaxAgeSeconds"])
        converted.append(out)
    return converted


def _lifecycle_rules(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    rules = (properties.get("LifecycleConfiguration") or {}).get("Rules") or []
    converted = []
    for rule in rules:
        out: dict[str, Any] = {"Status": rule["Status"]}
        if "Id" in rule:
            out["ID"] = rule["Id"]
        out["Filter"] = {"Prefix": rule["Prefix"]} if "Prefix" in rule else {"Prefix": ""}
        if "ExpirationInDays" in rule:
            out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        abort = rule.get("AbortIncompleteMultipartUpload")
        if abort:
            out["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(abort["DaysAfterInitiation"])
            }
        converted.append(out)
    return converted


def _notification_configuration(properties: Mapping[str, Any]) -> dict[str, Any]:
    notification = properties.get("NotificationConfiguration") or {}
    queue_configurations = []
    for index, entry in enumerate(notification.get("QueueConfigurations") or []):
        converted: dict[str, Any] = {
            "Id": f"queue-{index}",
            "QueueArn": entry["Queue"],
            "Events": [entry["Event"]],
        }
        rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
        if rules:
            converted["Filter"] = {
                "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
            }
        queue_configurations.append(converted)
    return {"QueueConfigurations": queue_configurations} if queue_configurations else {}


_BUCKET_EXISTS = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")


def create_bucket(
    s3: S3Client,
    bucket_name: str,
    *,
    queue_arn: str | None = None,
    template_path: Path | str = TEMPLATE_PATH,
    parameters: Mapping[str, Any] | None = None,
    with_lifecycle: bool = True,
    with_notifications: bool = True,
) -> str:
    """Create the uploads bucket with the template's CORS rules, lifecycle and (given the
    processing queue's ARN) the ObjectCreated notification with the same prefix filter.

    ``with_notifications=False`` for S3 servers without bucket notifications (SeaweedFS:
    the local stack's bridge announces new objects instead); ``with_lifecycle=False`` for
    servers that do not store lifecycle rules."""
    resolver = Resolver.for_template(load_template(template_path), parameters=parameters)
    if queue_arn is not None:
        resolver.attrs[(QUEUE_ID, "Arn")] = queue_arn
    properties = _bucket_properties(resolver)

    region = s3.meta.region_name or "us-east-1"
    from botocore.exceptions import ClientError

    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket_name)
        else:
            s3.create_bucket(
                Bucket=bucket_name,
                CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
            )
    except ClientError as error:
        # A local stack's bucket from an earlier run: set its configuration again.
        if error.response.get("Error", {}).get("Code") not in _BUCKET_EXISTS:
            raise
    cors_rules = bucket_cors_rules(template_path=template_path, parameters=parameters)
    if cors_rules:
        s3.put_bucket_cors(
            Bucket=bucket_name,
            CORSConfiguration={"CORSRules": cors_rules},  # type: ignore[typeddict-item]
        )
    if with_lifecycle:
        lifecycle_rules = _lifecycle_rules(properties)
        if lifecycle_rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket_name,
                LifecycleConfiguration={"Rules": lifecycle_rules},  # type: ignore[typeddict-item]
            )
    if with_notifications:
        if queue_arn is None:
            raise ValueError("with_notifications needs the processing queue's ARN (queue_arn).")
        s3.put_bucket_notification_configuration(
            Bucket=bucket_name,
            NotificationConfiguration=_notification_configuration(properties),  # type: ignore[arg-type]
        )
    return bucket_name


# --- everything -----------------------------------------------------------------------------


def create_resources(
    s3: S3Client,
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    *,
    names: ResourceNames,
    template_path: Path | str = TEMPLATE_PATH,
    parameters: Mapping[str, Any] | None = None,
    with_notifications: bool = True,
    with_lifecycle: bool = True,
    with_table_housekeeping: bool = True,
    visibility_timeout: int | None = None,
) -> CreatedResources:
    """Create the table, the queues and the bucket (in that order: the bucket's notification
    needs the queue's ARN) as template.yaml defines them, under the caller's names."""
    create_table(
        dynamodb,
        names.table,
        template_path=template_path,
        parameters=parameters,
        with_housekeeping=with_table_housekeeping,
    )
    queues = create_queues(
        sqs,
        names.queue,
        names.dlq,
        template_path=template_path,
        parameters=parameters,
        visibility_timeout=visibility_timeout,
    )
    create_bucket(
        s3,
        names.bucket,
        queue_arn=queues.queue_arn,
        template_path=template_path,
        parameters=parameters,
        with_lifecycle=with_lifecycle,
        with_notifications=with_notifications,
    )
    return CreatedResources(
        table_name=names.table,
        bucket_name=names.bucket,
        queue_url=queues.queue_url,
        queue_arn=queues.queue_arn,
        dlq_url=queues.dlq_url,
        dlq_arn=queues.dlq_arn,
        queue_settings=queues.settings,
        upload_prefix=upload_prefix(template_path),
        with_notifications=with_notifications,
    )
