"""Structural checks of template.yaml (and samconfig.toml, the layers, events/): what a
deploy would only reveal in an AWS account, or never (an over-broad role)."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from audiolift_devstack.template_resources import (
    CfnYamlLoader,
    Resolver,
    load_template,
    resource_properties,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
HEAVY_MODULES = ("numpy", "scipy", "soundfile")
BUCKET = "uploads-bucket"
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:processing"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sam_translate = load_script("sam_translate")


def resolver(**parameters: Any) -> Resolver:
    """Resolves with placeholder physical ids for what the checks refer to."""
    r = Resolver.for_template(TEMPLATE, parameters=parameters)
    r.refs.update({"UploadsBucket": BUCKET, "JobsTable": "jobs", "ProcessingQueue": "q-url"})
    r.refs.update({"ProcessingDLQ": "dlq-url"})
    r.refs.update({"CoreLayer": "core", "AudioLayer": "audio", "ApiDepsLayer": "api-deps"})
    r.refs.update({"ApiLogGroup": "api-logs", "ProcessorLogGroup": "processor-logs"})
    r.refs.update({"JwtAuthorizer": "authorizer-id", "AlarmTopic": "topic-arn"})
    r.refs.update({"HttpApi": "api-id", "HttpApiIntegration": "integration-id"})
    r.refs.update({"ApiFunction": "api-function", "ProcessorFunction": "processor-function"})
    r.refs.update({"OperationsDashboard": "dashboard", "SweeperFunction": "sweeper-function"})
    r.refs.update({"SweeperLogGroup": "sweeper-logs"})
    r.refs.update({"JobEventsBus": "jobs-bus", "ApiKeyGateAuthorizer": "gate-id"})
    r.attrs.update(
        {
            ("JobsTable", "Arn"): TABLE_ARN,
            ("ProcessingQueue", "Arn"): QUEUE_ARN,
            ("ProcessingDLQ", "Arn"): QUEUE_ARN + "-dlq",
            ("ProcessingDLQ", "QueueName"): "processing-dlq",
            ("ProcessingQueue", "QueueName"): "processing",
            ("UploadsBucket", "Arn"): f"arn:aws:s3:::{BUCKET}",
            ("ApiLogGroup", "Arn"): "arn:aws:logs:us-east-1:123456789012:log-group:api:*",
            ("ProcessorLogGroup", "Arn"): "arn:aws:logs:us-east-1:123456789012:log-group:p:*",
            ("ApiFunctionRole", "Arn"): "arn:aws:iam::123456789012:role/api",
            ("ProcessorFunctionRole", "Arn"): "arn:aws:iam::123456789012:role/processor",
            ("SweeperFunctionRole", "Arn"): "arn:aws:iam::123456789012:role/sweeper",
            ("SweeperLogGroup", "Arn"): "arn:aws:logs:us-east-1:123456789012:log-group:s:*",
            ("ApiFunction", "Arn"): "arn:aws:lambda:us-east-1:123456789012:function:api",
            ("JobEventsBus", "Arn"): "arn:aws:events:us-east-1:123456789012:event-bus/jobs-bus",
        }
    )
    for logical_id, resource in RESOURCES.items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            r.attrs[(logical_id, "Arn")] = (
                f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{logical_id}"
            )
    return r


def functions() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}


def runtime_version(runtime: str) -> tuple[int, int]:
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    assert match, f"not a Python runtime: {runtime}"
    return int(match.group(1)), int(match.group(2))


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[=<>~! ;]", line, maxsplit=1)[0].lower())
    return names


def layer_dir(layer_ref: Any) -> Path:
    return ROOT / RESOURCES[layer_ref["Ref"]]["Properties"]["ContentUri"]


def imports_heavy_module(code_dir: Path) -> bool:
    pattern = re.compile(rf"^\s*(import|from)\s+({'|'.join(HEAVY_MODULES)})\b", re.M)
    return any(pattern.search(p.read_text()) for p in code_dir.rglob("*.py"))


# --- the processing queue and the processor -------------------------------------------------


def test_visibility_timeout_is_at_least_six_function_timeouts_for_every_allowed_timeout() -> None:
    allowed = PARAMETERS["ProcessorTimeoutSeconds"]["AllowedValues"]
    assert sorted(map(str, allowed)) == sorted(TEMPLATE["Mappings"]["VisibilityByTimeout"])
    for timeout in allowed:
        r = resolver(ProcessorTimeoutSeconds=timeout)
        function_timeout = int(resource_properties(r, "ProcessorFunction")["Timeout"])
        visibility = int(resource_properties(r, "ProcessingQueue")["VisibilityTimeout"])
        assert function_timeout == int(timeout) <= 900  # Lambda's maximum
        assert 6 * function_timeout <= visibility <= 43200  # SQS's maximum


def test_processor_event_source_reports_batch_item_failures_with_small_batches() -> None:
    events = RESOURCES["ProcessorFunction"]["Properties"]["Events"]
    (event,) = events.values()
    assert event["Type"] == "SQS"
    properties = event["Properties"]
    assert properties["Queue"] == {"Fn::GetAtt": ["ProcessingQueue", "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= properties["BatchSize"] <= 10
    assert properties["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "ProcessorConcurrency"}


def test_redrive_and_the_processors_max_receive_count_are_one_parameter() -> None:
    queue = RESOURCES["ProcessingQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ProcessingDLQ", "Arn"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    env = RESOURCES["ProcessorFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MAX_RECEIVE_COUNT"] == {"Ref": "MaxReceiveCount"}


def test_both_functions_share_the_upload_size_limit() -> None:
    for logical_id in ("ApiFunction", "ProcessorFunction"):
        env = RESOURCES[logical_id]["Properties"]["Environment"]["Variables"]
        assert env["MAX_UPLOAD_BYTES"] == {"Ref": "MaxUploadBytes"}, logical_id


def test_processor_concurrency_cap_is_reserved_when_asked() -> None:
    for choice, expected in (("true", 7), ("false", None)):
        properties = resource_properties(
            resolver(ReserveProcessorConcurrency=choice, ProcessorConcurrency=7),
            "ProcessorFunction",
        )
        reserved = properties.get("ReservedConcurrentExecutions")
        assert (int(reserved) if reserved is not None else None) == expected


# --- runtimes and layers --------------------------------------------------------------------


def test_functions_that_need_numpy_or_soundfile_run_on_python_312_or_newer() -> None:
    for logical_id, function in functions().items():
        properties = function["Properties"]
        layer_requirements = set().union(
            *(
                requirement_names(layer_dir(ref) / "requirements.txt")
                for ref in properties["Layers"]
            )
        )
        heavy = imports_heavy_module(ROOT / properties["CodeUri"]) or bool(
            layer_requirements & set(HEAVY_MODULES)
        )
        if heavy:
            assert runtime_version(properties["Runtime"]) >= (3, 12), logical_id
    assert "AudioLayer" in str(RESOURCES["ProcessorFunction"]["Properties"]["Layers"])


def test_numpy_scipy_and_soundfile_stay_out_of_the_api_function() -> None:
    properties = RESOURCES["ApiFunction"]["Properties"]
    assert {ref["Ref"] for ref in properties["Layers"]} == {"CoreLayer", "ApiDepsLayer"}
    for ref in properties["Layers"]:
        assert not requirement_names(layer_dir(ref) / "requirements.txt") & set(HEAVY_MODULES)
    assert not requirement_names(ROOT / properties["CodeUri"] / "requirements.txt")
    assert not imports_heavy_module(ROOT / properties["CodeUri"])


def test_layers_are_built_for_python_312_with_pinned_requirements() -> None:
    layers = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::LayerVersion"}
    assert set(layers) == {"CoreLayer", "ApiDepsLayer", "AudioLayer"}
    for logical_id, layer in layers.items():
        assert runtime_version(layer["Metadata"]["BuildMethod"]) >= (3, 12), logical_id
        runtimes = layer["Properties"]["CompatibleRuntimes"]
        assert runtimes and all(runtime_version(r) >= (3, 12) for r in runtimes)
        requirements = ROOT / layer["Properties"]["ContentUri"] / "requirements.txt"
        for line in requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            assert not line or "==" in line, f"{requirements}: unpinned {line!r}"
    assert (ROOT / "layers/core/audiolift_core/__init__.py").is_file()
    assert requirement_names(ROOT / "layers/audio/requirements.txt") >= set(HEAVY_MODULES)


def test_functions_are_traced_and_carry_the_shared_environment() -> None:
    for logical_id, function in functions().items():
        properties = function["Properties"]
        assert properties["Tracing"] == "Active", logical_id
        env = properties["Environment"]["Variables"]
        assert env["JOBS_TABLE"] == {"Ref": "JobsTable"}
        assert env["UPLOAD_BUCKET"] == {"Ref": "UploadsBucket"}
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "audiolift"
        assert env["POWERTOOLS_SERVICE_NAME"].startswith("audiolift")
        assert "POWERTOOLS_LOG_LEVEL" in env
    assert RESOURCES["ApiFunction"]["Properties"]["Handler"] == "audiolift_api.handler.handler"
    assert (
        RESOURCES["ProcessorFunction"]["Properties"]["Handler"]
        == "audiolift_processor.handler.handler"
    )


# --- IAM ------------------------------------------------------------------------------------


def statements(role_id: str) -> list[dict[str, Any]]:
    role = resource_properties(resolver(), role_id)
    found = []
    for policy in role.get("Policies", []):
        found.extend(policy["PolicyDocument"]["Statement"])
    assert not role.get("ManagedPolicyArns"), f"{role_id}: managed policies are opaque"
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows(role_id: str, action: str, resource: str) -> bool:
    for statement in statements(role_id):
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        actions = [a.lower() for a in as_list(statement["Action"])]
        if not any(fnmatch.fnmatchcase(action.lower(), pattern) for pattern in actions):
            continue
        if any(
            fnmatch.fnmatchcase(resource, pattern) for pattern in as_list(statement["Resource"])
        ):
            return True
    return False


UPLOAD = f"arn:aws:s3:::{BUCKET}/uploads/0f8e2c4a9b7d4e1f8a6c3b5d7e9f1a2b"
RESULT = f"arn:aws:s3:::{BUCKET}/results/0f8e2c4a9b7d4e1f8a6c3b5d7e9f1a2b.json"


def test_functions_use_their_own_roles_and_nothing_else() -> None:
    for logical_id, function in functions().items():
        properties = function["Properties"]
        assert properties["Role"] == {"Fn::GetAtt": [f"{logical_id}Role", "Arn"]}
        assert "Policies" not in properties  # SAM would add a generated role's policies


def test_api_role_manages_uploads_but_cannot_read_audio() -> None:
    # CreateMultipartUpload, UploadPart (presigned) and CompleteMultipartUpload are all
    # authorised by s3:PutObject.
    for action in ("s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"):
        assert allows("ApiFunctionRole", action, UPLOAD), action
    assert allows("ApiFunctionRole", "s3:DeleteObject", UPLOAD)
    assert allows("ApiFunctionRole", "s3:GetObject", RESULT)
    assert allows("ApiFunctionRole", "s3:DeleteObject", RESULT)
    assert not allows("ApiFunctionRole", "s3:GetObject", UPLOAD)
    assert not allows("ApiFunctionRole", "s3:GetObjectVersion", UPLOAD)
    assert not allows("ApiFunctionRole", "s3:PutObject", RESULT)
    assert not allows("ApiFunctionRole", "sqs:SendMessage", QUEUE_ARN)
    for action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"):
        assert allows("ApiFunctionRole", f"dynamodb:{action}", TABLE_ARN), action
    assert allows("ApiFunctionRole", "dynamodb:Query", f"{TABLE_ARN}/index/by_owner")
    assert not allows("ApiFunctionRole", "dynamodb:Scan", TABLE_ARN)


def test_processor_role_reads_audio_writes_results_and_cannot_create_uploads() -> None:
    assert allows("ProcessorFunctionRole", "s3:GetObject", UPLOAD)
    assert allows("ProcessorFunctionRole", "s3:PutObject", RESULT)
    assert allows("ProcessorFunctionRole", "s3:DeleteObject", RESULT)  # cancelled late
    # No s3:PutObject on uploads/: no CreateMultipartUpload, no replacing audio.
    assert not allows("ProcessorFunctionRole", "s3:PutObject", UPLOAD)
    for action in ("s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"):
        assert not allows("ProcessorFunctionRole", action, UPLOAD), action
    for action in ("GetItem", "PutItem", "UpdateItem"):
        assert allows("ProcessorFunctionRole", f"dynamodb:{action}", TABLE_ARN), action
    assert not allows("ProcessorFunctionRole", "dynamodb:DeleteItem", TABLE_ARN)
    for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes"):
        assert allows("ProcessorFunctionRole", f"sqs:{action}", QUEUE_ARN), action
    assert not allows("ProcessorFunctionRole", "sqs:ReceiveMessage", QUEUE_ARN + "-dlq")


def test_no_wildcard_actions_and_wildcard_resources_only_for_xray() -> None:
    for role_id in ("ApiFunctionRole", "ProcessorFunctionRole", "SweeperFunctionRole"):
        for statement in statements(role_id):
            assert not any(a.endswith("*") for a in as_list(statement["Action"])), statement
            if "*" in as_list(statement["Resource"]):
                assert all(a.startswith("xray:") for a in as_list(statement["Action"]))


# --- the bucket -----------------------------------------------------------------------------


def test_bucket_name_is_built_with_sub_and_the_queue_policy_names_the_same_bucket() -> None:
    bucket = RESOURCES["UploadsBucket"]
    name = bucket["Properties"]["BucketName"]
    assert set(name) == {"Fn::Sub"}, "a !Ref/!GetAtt here risks a dependency cycle"
    assert "AWS::StackName" not in json.dumps(name), "stack names may be mixed case"
    assert "ProcessingQueuePolicy" in as_list(bucket["DependsOn"])

    statement = RESOURCES["ProcessingQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    source_arn = statement["Condition"]["ArnLike"]["aws:SourceArn"]
    assert set(source_arn) == {"Fn::Sub"}
    assert source_arn["Fn::Sub"][0] == "arn:${AWS::Partition}:s3:::" + name["Fn::Sub"][0]
    assert source_arn["Fn::Sub"][1] == name["Fn::Sub"][1]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


@pytest.mark.parametrize("region", ["us-east-1", "ap-southeast-2", "us-gov-west-1"])
def test_bucket_name_is_a_valid_lower_case_name_for_the_longest_prefix(region: str) -> None:
    prefix_pattern = PARAMETERS["NamePrefix"]["AllowedPattern"]
    longest = "a" + "b" * 19
    assert re.fullmatch(prefix_pattern, longest)
    for refused in ("Audio", "audio-", "-audio", "a" * 21):
        assert not re.fullmatch(prefix_pattern, refused), refused
    r = Resolver.for_template(
        TEMPLATE, parameters={"NamePrefix": longest}, region=region, stack_name="MyStack"
    )
    r.attrs[("ProcessingQueue", "Arn")] = QUEUE_ARN
    r.refs["ProcessingQueue"] = "queue-url"
    name = resource_properties(r, "UploadsBucket")["BucketName"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name), name
    queue_policy = resource_properties(r, "ProcessingQueuePolicy")
    source_arn = queue_policy["PolicyDocument"]["Statement"][0]["Condition"]["ArnLike"]
    assert source_arn["aws:SourceArn"] == f"arn:aws:s3:::{name}"


def test_bucket_blocks_public_access_and_encrypts() -> None:
    properties = RESOURCES["UploadsBucket"]["Properties"]
    block = properties["PublicAccessBlockConfiguration"]
    assert all(block[k] is True for k in block) and len(block) == 4
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


def test_bucket_cors_lets_browsers_put_parts_and_read_etags() -> None:
    (rule,) = RESOURCES["UploadsBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert set(rule["AllowedMethods"]) == {"PUT", "GET", "HEAD"}
    assert "ETag" in rule["ExposedHeaders"]
    assert rule["AllowedOrigins"] == {"Ref": "CorsAllowedOrigins"}
    api_cors = RESOURCES["HttpApi"]["Properties"]["CorsConfiguration"]
    assert api_cors["AllowOrigins"] == {"Ref": "CorsAllowedOrigins"}
    assert "authorization" in [h.lower() for h in api_cors["AllowHeaders"]]


def test_lifecycle_aborts_incomplete_uploads_after_a_day_and_expires_objects() -> None:
    rules = RESOURCES["UploadsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    abort = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert len(abort) == 1 and "Prefix" not in abort[0]  # the whole bucket
    assert abort[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r}
    assert expiring == {
        "uploads/": {"Ref": "RetentionDays"},
        "results/": {"Ref": "RetentionDays"},
        # what a crashed analysis left behind; the processor deletes the rest itself
        "checkpoints/": 3,
    }
    assert all(r["Status"] == "Enabled" for r in rules)
    env = RESOURCES["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env["JOB_TTL_DAYS"] == {"Ref": "RetentionDays"}


def test_new_uploads_are_announced_to_the_processing_queue() -> None:
    notification = RESOURCES["UploadsBucket"]["Properties"]["NotificationConfiguration"]
    assert set(notification) == {"QueueConfigurations"}
    (entry,) = notification["QueueConfigurations"]
    assert entry["Event"] == "s3:ObjectCreated:*"
    assert entry["Queue"] == {"Fn::GetAtt": ["ProcessingQueue", "Arn"]}
    assert entry["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]


# --- the table ------------------------------------------------------------------------------


def test_jobs_table_matches_the_shared_definition() -> None:
    properties = resource_properties(resolver(), "JobsTable")
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    assert types == {
        "job_id": "S",
        "owner": "S",
        "created_at": "S",
        "sweep_status": "S",
        "updated_at": "S",
    }
    indexes = {gsi["IndexName"]: gsi for gsi in properties["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_owner", "by_status"}
    assert indexes["by_owner"]["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    assert indexes["by_owner"]["Projection"] == {"ProjectionType": "ALL"}
    # The sweeper's: small entries (keys and what its filters read), not whole jobs.
    assert indexes["by_status"]["KeySchema"] == [
        {"AttributeName": "sweep_status", "KeyType": "HASH"},
        {"AttributeName": "updated_at", "KeyType": "RANGE"},
    ]
    assert indexes["by_status"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["lease_expires_at", "redriven_at"],
    }
    from audiolift_core.jobs_table import OWNER_INDEX, SWEEP_INDEX

    assert {OWNER_INDEX, SWEEP_INDEX} == set(indexes)
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "purge_at", "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert resource_properties(resolver(Stage="prod"), "JobsTable")["DeletionProtectionEnabled"]


# --- the HTTP API and its authentication ----------------------------------------------------


def test_api_mode_follows_the_jwt_parameters() -> None:
    jwt = resolver(JwtIssuer="https://issuer.example.com", JwtAudience="client")
    env = resource_properties(jwt, "ApiFunction")["Environment"]["Variables"]
    assert (env["AUTH_MODE"], env["API_KEY_HASHES"]) == ("jwt", "")
    assert jwt.condition(RESOURCES["JwtAuthorizer"]["Condition"])
    route = resource_properties(jwt, "DefaultRoute")
    assert (route["AuthorizationType"], route["AuthorizerId"]) == ("JWT", "authorizer-id")
    authorizer = resource_properties(jwt, "JwtAuthorizer")
    assert authorizer["JwtConfiguration"] == {
        "Issuer": "https://issuer.example.com",
        "Audience": ["client"],
    }

    keys = resolver(ApiKeyHashes="alice:" + "a" * 64)
    env = resource_properties(keys, "ApiFunction")["Environment"]["Variables"]
    assert (env["AUTH_MODE"], env["API_KEY_HASHES"]) == ("api_key", "alice:" + "a" * 64)
    assert not keys.condition(RESOURCES["JwtAuthorizer"]["Condition"])
    route = resource_properties(keys, "DefaultRoute")
    assert (route["AuthorizationType"], route["AuthorizerId"]) == ("CUSTOM", "gate-id")
    assert PARAMETERS["ApiKeyHashes"]["NoEcho"] is True


def test_health_is_public_and_the_integration_is_payload_v2() -> None:
    health = RESOURCES["HealthRoute"]["Properties"]
    assert (health["RouteKey"], health["AuthorizationType"]) == ("GET /health", "NONE")
    integration = RESOURCES["HttpApiIntegration"]["Properties"]
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["ApiFunction", "Arn"]}
    assert RESOURCES["HttpApi"]["Properties"]["ProtocolType"] == "HTTP"


def test_outputs() -> None:
    assert {"ApiUrl", "BucketName", "TableName", "QueueUrl", "DlqUrl"} <= set(TEMPLATE["Outputs"])


# --- samconfig ------------------------------------------------------------------------------


def parameter_problem(name: str, value: str) -> str | None:
    spec = PARAMETERS.get(name)
    if spec is None:
        return "no such parameter"
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return f"not one of {spec['AllowedValues']}"
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        return "does not match the pattern"
    if spec["Type"] == "Number" and not (
        float(spec.get("MinValue", "-inf")) <= float(value) <= float(spec.get("MaxValue", "inf"))
    ):
        return "out of range"
    return None


@pytest.mark.parametrize("environment", ["default", "prod"])
def test_samconfig_environment_deploys_with_valid_parameters(environment: str) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())[environment]
    deploy = config["deploy"]["parameters"]
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["resolve_s3"] is True
    assert config["global"]["parameters"]["stack_name"]
    assert config["validate"]["parameters"]["lint"] is True
    for override in deploy["parameter_overrides"]:
        name, _, value = override.partition("=")
        assert parameter_problem(name, value) is None, (override, parameter_problem(name, value))
    if environment == "prod":
        assert deploy["confirm_changeset"] is True
        assert "Stage=prod" in deploy["parameter_overrides"]


# --- translation and dependency cycles ------------------------------------------------------


def test_translated_template_has_no_cycle_and_no_generated_roles() -> None:
    translated = sam_translate.translate(TEMPLATE)
    assert sam_translate.find_cycles(translated) == []
    roles = [k for k, v in translated["Resources"].items() if v["Type"] == "AWS::IAM::Role"]
    assert sorted(roles) == [
        "ApiFunctionRole",
        "ApiKeyGateRole",
        "ProcessorFunctionRole",
        "SweeperFunctionRole",
    ]
    mappings = [
        v
        for v in translated["Resources"].values()
        if v["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert len(mappings) == 1


def cycled_by_queue_policy() -> str:
    """The classic: the queue policy names the bucket by reference, the bucket depends on the
    policy."""
    text = (ROOT / "template.yaml").read_text()
    start = text.index("                aws:SourceArn: !Sub")
    end = text.index("              StringEquals:")
    return text[:start] + "                aws:SourceArn: !GetAtt UploadsBucket.Arn\n" + text[end:]


def cycled_by_sam_event() -> str:
    """A cycle only SAM's expansion creates: an S3 event source on a function whose role
    refers to the bucket (the bucket gains the function's ARN in its notification)."""
    text = (ROOT / "template.yaml").read_text()
    anchor = "      Events:\n        ObjectCreated:\n"
    assert anchor in text
    event = (
        "      Events:\n        DirectS3:\n          Type: S3\n          Properties:\n"
        "            Bucket: !Ref UploadsBucket\n            Events: s3:ObjectCreated:*\n"
        "        ObjectCreated:\n"
    )
    return text.replace(anchor, event)


def test_cycle_detection_catches_a_queue_policy_cycle() -> None:
    template = json.loads(
        json.dumps(__import__("yaml").load(cycled_by_queue_policy(), CfnYamlLoader))
    )
    cycles = sam_translate.find_cycles(sam_translate.translate(template))
    assert ["ProcessingQueuePolicy", "UploadsBucket"] in cycles


def test_cycle_made_by_sam_expansion_is_caught_only_after_translation(tmp_path: Path) -> None:
    import yaml

    template = yaml.load(cycled_by_sam_event(), CfnYamlLoader)
    assert sam_translate.find_cycles(template) == []  # invisible in the source
    translated = sam_translate.translate(template)
    (cycle,) = sam_translate.find_cycles(translated)
    assert {"UploadsBucket", "ProcessorFunction"} <= set(cycle)

    # cfn-lint's E3004 sees it in the translated template, not in the source.
    source = tmp_path / "cycled.yaml"
    source.write_text(cycled_by_sam_event())
    output = tmp_path / "cycled.json"
    output.write_text(json.dumps(translated))
    run_cfn_lint = "import sys; from cfnlint.runner import main; sys.exit(main())"
    cfn_lint = [sys.executable, "-c", run_cfn_lint, "-i", "W1020", "--"]
    on_source = subprocess.run([*cfn_lint, str(source)], capture_output=True, text=True)
    on_output = subprocess.run([*cfn_lint, str(output)], capture_output=True, text=True)
    assert "E3004" not in on_source.stdout
    assert "E3004" in on_output.stdout and on_output.returncode & 2


# --- events ---------------------------------------------------------------------------------

EVENTS = ROOT / "events"


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_s3_events_announce_uploads_with_url_encoded_keys() -> None:
    for name, event_name in (
        ("s3-put.json", "ObjectCreated:Put"),
        ("s3-complete-multipart.json", "ObjectCreated:CompleteMultipartUpload"),
    ):
        (record,) = load_event(name)["Records"]
        assert record["eventSource"] == "aws:s3" and record["eventName"] == event_name
        assert record["s3"]["object"]["key"].startswith("uploads%2F")


def test_sqs_events_wrap_s3_notifications_like_the_event_source_mapping() -> None:
    for name in (
        "sqs-s3-put.json",
        "sqs-s3-complete-multipart.json",
        "sqs-s3-duplicate.json",
        "sqs-s3-testevent.json",
        "sqs-s3-garbage-body.json",
    ):
        for record in load_event(name)["Records"]:
            assert record["eventSource"] == "aws:sqs"
            assert record["eventSourceARN"].startswith("arn:aws:sqs:")
            assert record["messageId"] and record["receiptHandle"]
            assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1
    duplicate = [
        json.loads(r["body"])["Records"][0] for r in load_event("sqs-s3-duplicate.json")["Records"]
    ]
    assert {r["eventName"] for r in duplicate} == {
        "ObjectCreated:Put",
        "ObjectCreated:CompleteMultipartUpload",
    }
    assert len({(r["s3"]["object"]["key"], r["s3"]["object"]["eTag"]) for r in duplicate}) == 1
    (test_event,) = load_event("sqs-s3-testevent.json")["Records"]
    assert json.loads(test_event["body"])["Event"] == "s3:TestEvent"
    (garbage,) = load_event("sqs-s3-garbage-body.json")["Records"]
    with pytest.raises(ValueError):
        json.loads(garbage["body"])


def test_eventbridge_and_http_events() -> None:
    bridged = load_event("eventbridge-object-created.json")
    assert (bridged["source"], bridged["detail-type"]) == ("aws.s3", "Object Created")
    assert bridged["detail"]["object"]["key"].startswith("uploads/")
    for name, method, path in (
        ("http-health.json", "GET", "/health"),
        ("http-create-upload.json", "POST", "/v1/uploads"),
        ("http-get-job.json", "GET", "/v1/jobs/"),
    ):
        event = load_event(name)
        assert event["version"] == "2.0"
        assert event["requestContext"]["http"]["method"] == method
        assert event["rawPath"].startswith(path)
    create = load_event("http-create-upload.json")
    assert create["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    assert {"filename", "size"} <= set(json.loads(create["body"]))


# --- make build / make deploy -------------------------------------------------------------

samconfig_env = load_script("samconfig_env")


def test_make_deploy_reads_each_environments_stack_and_architecture_from_samconfig() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert samconfig_env.config_env("dev") == "default"
    assert samconfig_env.stack_name(config, "dev") == "audiolift-dev"
    assert samconfig_env.stack_name(config, "prod") == "audiolift-prod"
    allowed = PARAMETERS["Architecture"]["AllowedValues"]
    for env in ("dev", "prod"):
        assert samconfig_env.parameter(config, env, "Architecture") in allowed
    # An environment samconfig does not know: no stack, so `make deploy` goes guided.
    assert samconfig_env.stack_name(config, "staging") == ""
    assert samconfig_env.parameter(config, "staging", "Architecture") == ""


def test_find_python_exact_finds_the_lambda_runtimes_version() -> None:
    runtimes = {f["Properties"]["Runtime"] for f in functions().values()}
    (runtime,) = runtimes
    version = runtime.removeprefix("python")
    found = subprocess.run(
        [str(ROOT / "scripts/find_python.sh"), "--exact", version],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    reported = subprocess.run(
        [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert reported == version


# --- operations: alarms, dashboard, tags, production settings --------------------------------

TOPIC = "topic-arn"


def alarms() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def alarm(logical_id: str, **parameters: Any) -> dict[str, Any]:
    return resource_properties(resolver(**parameters), logical_id)


def test_every_alarm_tells_the_one_topic_and_the_email_subscription_is_optional() -> None:
    assert set(alarms()) >= {
        "DeadLetterAlarm",
        "ProcessorErrorsAlarm",
        "ProcessorThrottlesAlarm",
        "ProcessorNearTimeoutAlarm",
        "QueueAgeAlarm",
        "Api5xxRateAlarm",
    }
    for logical_id in alarms():
        properties = alarm(logical_id)
        assert properties["AlarmActions"] == [TOPIC], logical_id
        assert properties["OKActions"] == [TOPIC], logical_id
        assert properties["TreatMissingData"] == "notBreaching", logical_id
    topics = [k for k, v in RESOURCES.items() if v["Type"] == "AWS::SNS::Topic"]
    assert topics == ["AlarmTopic"] and "Condition" not in RESOURCES["AlarmTopic"]
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert resolver(AlarmEmail="ops@example.com").condition("HasAlarmEmail")
    assert not resolver().condition("HasAlarmEmail")
    properties = resource_properties(
        resolver(AlarmEmail="ops@example.com"), "AlarmEmailSubscription"
    )
    assert properties == {"TopicArn": TOPIC, "Protocol": "email", "Endpoint": "ops@example.com"}


@pytest.mark.parametrize(
    ("logical_id", "metric", "statistic"),
    [
        ("ProcessorErrorsAlarm", "Errors", "Sum"),
        ("ProcessorThrottlesAlarm", "Throttles", "Sum"),
    ],
)
def test_processor_errors_and_throttles_alarm_on_the_first_one(
    logical_id: str, metric: str, statistic: str
) -> None:
    properties = alarm(logical_id)
    assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", metric)
    assert properties["Dimensions"] == [{"Name": "FunctionName", "Value": "processor-function"}]
    assert properties["Statistic"] == statistic
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert float(properties["Threshold"]) == 1


def test_duration_alarm_fires_only_when_a_run_overstays_its_deadline_margin() -> None:
    """A continued analysis hands on with DEADLINE_MARGIN_SECONDS left: those runs must
    not alarm; one that used over half the margin to stop must."""

    allowed = PARAMETERS["ProcessorTimeoutSeconds"]["AllowedValues"]
    assert sorted(map(str, allowed)) == sorted(TEMPLATE["Mappings"]["NearTimeoutByTimeout"])
    for timeout in allowed:
        properties = alarm("ProcessorNearTimeoutAlarm", ProcessorTimeoutSeconds=timeout)
        function_timeout = int(
            resource_properties(resolver(ProcessorTimeoutSeconds=timeout), "ProcessorFunction")[
                "Timeout"
            ]
        )
        assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", "Duration")
        assert properties["Dimensions"] == [{"Name": "FunctionName", "Value": "processor-function"}]
        assert properties["Statistic"] == "Maximum"  # one slow run is enough
        assert properties["ComparisonOperator"] == "GreaterThanThreshold"
        environment = resource_properties(
            resolver(ProcessorTimeoutSeconds=timeout), "ProcessorFunction"
        )["Environment"]["Variables"]
        margin = float(environment["DEADLINE_MARGIN_SECONDS"])
        # Lambda reports Duration in milliseconds.
        threshold = float(properties["Threshold"]) / 1000
        assert threshold == function_timeout - margin / 2
        assert function_timeout - margin < threshold < function_timeout


def test_queue_age_alarm_fires_past_the_visibility_timeout() -> None:
    for timeout in PARAMETERS["ProcessorTimeoutSeconds"]["AllowedValues"]:
        properties = alarm("QueueAgeAlarm", ProcessorTimeoutSeconds=timeout)
        queue = resource_properties(resolver(ProcessorTimeoutSeconds=timeout), "ProcessingQueue")
        assert (properties["Namespace"], properties["MetricName"]) == (
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
        )
        assert properties["Dimensions"] == [{"Name": "QueueName", "Value": "processing"}]
        assert properties["Statistic"] == "Maximum"
        assert float(properties["Threshold"]) == int(queue["VisibilityTimeout"])


def test_dead_letter_queue_depth_alarm() -> None:
    properties = alarm("DeadLetterAlarm")
    assert (properties["Namespace"], properties["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert properties["Dimensions"] == [{"Name": "QueueName", "Value": "processing-dlq"}]
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert float(properties["Threshold"]) == 1


def test_api_5xx_alarm_is_a_rate_of_the_http_apis_requests() -> None:
    properties = alarm("Api5xxRateAlarm")
    metrics = {m["Id"]: m for m in properties["Metrics"]}
    for metric_id, name in (("errors", "5xx"), ("requests", "Count")):
        stat = metrics[metric_id]["MetricStat"]
        assert stat["Metric"] == {
            "Namespace": "AWS/ApiGateway",
            "MetricName": name,
            "Dimensions": [{"Name": "ApiId", "Value": "api-id"}],
        }
        assert stat["Stat"] == "Sum"
        assert metrics[metric_id]["ReturnData"] is False
    (returned,) = [m for m in properties["Metrics"] if m.get("ReturnData", True)]
    assert returned["Expression"] == "IF(requests > 0, 100 * errors / requests, 0)"
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"
    assert 0 < float(properties["Threshold"]) <= 10  # percent


# Metric names the code emits, read from the code itself: add_metric(name="...") calls,
# and the API's indirection (a route sets request.state.metric = "...", the middleware
# adds it).
def emitted_metric_names(*code_dirs: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for directory in code_dirs:
        for path in directory.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_metric"
                ):
                    arguments = [k.value for k in node.keywords if k.arg == "name"]
                    arguments += node.args[:1]
                    names.update(
                        a.value
                        for a in arguments
                        if isinstance(a, ast.Constant) and isinstance(a.value, str)
                    )
                elif (
                    isinstance(node, ast.Assign)
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)
                    and any(
                        isinstance(t, ast.Attribute) and t.attr == "metric" for t in node.targets
                    )
                ):
                    names.add(node.value.value)
    return names


def emitted_by_service() -> dict[tuple[str, str], set[str]]:
    """(namespace, service) -> the metric names that function's code (and layers) emit."""
    emitted = {}
    for function in functions().values():
        properties = function["Properties"]
        env = properties["Environment"]["Variables"]
        code_dirs = [ROOT / properties["CodeUri"]]
        code_dirs += [layer_dir(ref) for ref in properties["Layers"]]
        key = (env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"])
        emitted[key] = emitted_metric_names(*code_dirs)
    return emitted


def dashboard_widgets() -> list[dict[str, Any]]:
    body = resource_properties(resolver(), "OperationsDashboard")["DashboardBody"]
    widgets: list[dict[str, Any]] = json.loads(body)["widgets"]
    return widgets


def dashboard_metrics() -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, name, dimensions) of every metric the dashboard plots."""
    found = []
    for widget in dashboard_widgets():
        for row in widget["properties"].get("metrics", []):
            fields = [f for f in row if not isinstance(f, dict)]
            if not fields:
                continue  # a math expression over the others
            assert "." not in fields[:2], "spell metrics out: the test reads each row alone"
            namespace, name, *dimensions = fields
            found.append(
                (namespace, name, dict(zip(dimensions[::2], dimensions[1::2], strict=True)))
            )
    return found


def test_code_metric_parser_reads_the_code() -> None:
    # The parser finds what it should, so that the next test cannot pass on an empty set.
    processor = emitted_metric_names(ROOT / "functions/processor")
    api = emitted_metric_names(ROOT / "functions/api")
    assert {"JobsCompleted", "JobsFailed", "BytesAnalysed"} <= processor
    assert {"UploadsCreated", "UploadsCompleted"} <= api
    assert not processor & api


def test_every_dashboard_metric_of_ours_is_one_the_code_emits() -> None:
    emitted = emitted_by_service()
    ours = [m for m in dashboard_metrics() if m[0] in {ns for ns, _ in emitted}]
    assert ours, "the dashboard shows none of the functions' own metrics"
    for namespace, name, dimensions in ours:
        assert set(dimensions) == {"service"}, (name, dimensions)  # Powertools' one dimension
        service = dimensions["service"]
        assert (namespace, service) in emitted, f"no function runs as service {service!r}"
        assert name in emitted[(namespace, service)], f"{service} never emits {name}"
    shown = {(ns, dims["service"], name) for ns, name, dims in ours}
    for (namespace, service), names in emitted.items():
        # Outcomes and throughput: every job and byte counter the code has is on the page.
        for name in names:
            if name.startswith(("Jobs", "Bytes", "Uploads")):
                assert (namespace, service, name) in shown, f"{name} is not on the dashboard"


def test_dashboard_shows_queue_depth_and_errors_of_the_stacks_own_resources() -> None:
    aws_metrics = {(ns, name, tuple(sorted(d.items()))) for ns, name, d in dashboard_metrics()}
    for expected in (
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", "processing"),)),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", "processing-dlq"),)),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", (("QueueName", "processing"),)),
        ("AWS/Lambda", "Errors", (("FunctionName", "processor-function"),)),
        ("AWS/Lambda", "Errors", (("FunctionName", "api-function"),)),
        ("AWS/Lambda", "Throttles", (("FunctionName", "processor-function"),)),
        ("AWS/ApiGateway", "5xx", (("ApiId", "api-id"),)),
    ):
        assert expected in aws_metrics, expected
    (alarm_widget,) = [w for w in dashboard_widgets() if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(alarms())


def test_every_taggable_resource_is_tagged() -> None:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    translated = sam_translate.translate(TEMPLATE)
    untagged = []
    checked = 0
    for logical_id, resource in translated["Resources"].items():
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"])
        if "Tags" not in schema.schema.get("properties", {}):
            continue
        if logical_id not in RESOURCES and resource["Type"] in (
            "AWS::Lambda::EventSourceMapping",
            "AWS::Events::Rule",
        ):
            continue  # SAM does not tag what it generates for an event: the stack tags do
        checked += 1
        tags = resource.get("Properties", {}).get("Tags")
        keys = set(tags) if isinstance(tags, dict) else {t["Key"] for t in tags or []}
        if not {"Project", "Stage"} <= keys:
            untagged.append(logical_id)
    assert checked >= 15 and not untagged, untagged
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for environment in ("default", "prod"):
        tags = config[environment]["deploy"]["parameters"]["tags"]
        assert {"Project", "Stage"} <= {t.split("=")[0] for t in tags.split()}


@pytest.mark.parametrize(
    ("policy_id", "queue_id"),
    [
        ("ProcessingQueuePolicy", "ProcessingQueue"),
        ("DeadLetterQueuePolicy", "ProcessingDLQ"),
    ],
)
def test_queues_refuse_requests_without_tls(policy_id: str, queue_id: str) -> None:
    r = resolver()
    policy = resource_properties(r, policy_id)
    assert RESOURCES[policy_id]["Properties"]["Queues"] == [{"Ref": queue_id}]
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    (statement,) = deny
    assert statement["Principal"] == "*" and statement["Action"] == "sqs:*"
    assert statement["Resource"] == r.get_att(queue_id, "Arn")
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_jobs_table_outlives_the_stack() -> None:
    table = RESOURCES["JobsTable"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


# --- the sweeper ----------------------------------------------------------------------------


def test_sweeper_runs_on_a_schedule_within_a_bounded_run() -> None:
    properties = RESOURCES["SweeperFunction"]["Properties"]
    (event,) = properties["Events"].values()
    assert event["Type"] == "Schedule"
    assert re.fullmatch(r"rate\(\d+ minutes?\)", event["Properties"]["Schedule"])
    assert properties["Handler"] == "audiolift_sweeper.handler.handler"
    assert int(properties["Timeout"]) <= 120
    env = properties["Environment"]["Variables"]
    assert 1 <= int(env["SWEEP_MAX_JOBS"]) <= 1000
    from audiolift_core.settings import SweeperSettings

    # The run stops starting jobs this long before its timeout.
    assert SweeperSettings.safety_margin_seconds < int(properties["Timeout"])


def test_sweepers_deadlines_follow_the_queue_and_the_bucket() -> None:
    for timeout in PARAMETERS["ProcessorTimeoutSeconds"]["AllowedValues"]:
        r = resolver(ProcessorTimeoutSeconds=timeout, MaxReceiveCount=5)
        env = resource_properties(r, "SweeperFunction")["Environment"]["Variables"]
        queue = resource_properties(r, "ProcessingQueue")
        assert int(env["VISIBILITY_TIMEOUT_SECONDS"]) == int(queue["VisibilityTimeout"])
        assert int(env["MAX_RECEIVE_COUNT"]) == int(queue["RedrivePolicy"]["maxReceiveCount"])
        assert env["PROCESSING_QUEUE_URL"] == "q-url"
    rules = RESOURCES["UploadsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (abort,) = [rule for rule in rules if "AbortIncompleteMultipartUpload" in rule]
    days = abort["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    env = RESOURCES["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert int(env["UPLOAD_TTL_SECONDS"]) == days * 86400


def test_sweeper_role_reads_the_sweep_index_and_writes_nothing_else() -> None:
    role = "SweeperFunctionRole"
    assert allows(role, "dynamodb:Query", f"{TABLE_ARN}/index/by_status")
    assert not allows(role, "dynamodb:Query", f"{TABLE_ARN}/index/by_owner")
    assert not allows(role, "dynamodb:Query", TABLE_ARN)
    for action in ("GetItem", "UpdateItem"):
        assert allows(role, f"dynamodb:{action}", TABLE_ARN), action
    for action in ("Scan", "PutItem", "DeleteItem", "BatchWriteItem"):
        assert not allows(role, f"dynamodb:{action}", TABLE_ARN), action
    assert allows(role, "s3:GetObject", UPLOAD)  # HeadObject
    assert allows(role, "s3:AbortMultipartUpload", UPLOAD)
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not allows(role, action, UPLOAD), action
    assert not allows(role, "s3:GetObject", RESULT)
    assert allows(role, "sqs:SendMessage", QUEUE_ARN)
    assert not allows(role, "sqs:SendMessage", QUEUE_ARN + "-dlq")
    assert not allows(role, "sqs:ReceiveMessage", QUEUE_ARN)


# --- arm64 ----------------------------------------------------------------------------------

check_elf_arch = load_script("check_elf_arch")


def fake_elf(path: Path, machine: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # magic, 64-bit, little-endian, version, padding to e_type, e_type=ET_DYN, e_machine
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + (3).to_bytes(2, "little")
    path.write_bytes(header + machine.to_bytes(2, "little") + b"\x00" * 44)


def test_elf_check_proves_the_architecture_of_numpy_scipy_and_libsndfile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = tmp_path / "AudioLayer" / "python"
    fake_elf(layer / "numpy/_core/_multiarray_umath.cpython-312-aarch64-linux-gnu.so", 183)
    fake_elf(layer / "scipy/signal/_sosfilt.cpython-312-aarch64-linux-gnu.so", 183)
    fake_elf(layer / "_soundfile_data/libsndfile_arm64.so", 183)
    (layer / "numpy/__init__.py").write_text("")  # not ELF: ignored
    assert check_elf_arch.main([str(tmp_path), "arm64"]) == 0
    assert check_elf_arch.main([str(tmp_path), "x86_64"]) == 1

    # One x86-64 library among them (a wheel for the wrong platform) fails the check...
    fake_elf(tmp_path / "CoreLayer/python/pydantic_core/_core.so", 62)
    assert check_elf_arch.main([str(tmp_path), "arm64"]) == 1
    assert "CoreLayer/python/pydantic_core/_core.so: x86_64" in capsys.readouterr().err
    # ... and so does a processor without libsndfile.
    (tmp_path / "CoreLayer/python/pydantic_core/_core.so").unlink()
    (layer / "_soundfile_data/libsndfile_arm64.so").unlink()
    assert check_elf_arch.main([str(tmp_path), "arm64"]) == 1


def test_every_function_and_layer_follows_the_architecture_parameter() -> None:
    for architecture in PARAMETERS["Architecture"]["AllowedValues"]:
        r = resolver(Architecture=architecture)
        for logical_id in functions():
            assert resource_properties(r, logical_id)["Architectures"] == [architecture]
        for logical_id, resource in RESOURCES.items():
            if resource["Type"] == "AWS::Serverless::LayerVersion":
                properties = resource_properties(r, logical_id)
                assert properties["CompatibleArchitectures"] == [architecture]
                assert r.resolve(resource["Metadata"]["BuildArchitecture"]) == architecture
    assert PARAMETERS["Architecture"]["Default"] == "x86_64"
