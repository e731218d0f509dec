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
    r.refs.update({"CoreLayer": "core", "AudioLayer": "audio", "ApiDepsLayer": "api-deps"})
    r.refs.update({"ApiLogGroup": "api-logs", "ProcessorLogGroup": "processor-logs"})
    r.refs.update({"JwtAuthorizer": "authorizer-id", "AlarmTopic": "topic-arn"})
    r.refs.update({"HttpApi": "api-id", "HttpApiIntegration": "integration-id"})
    r.refs.update({"ApiFunction": "api-function", "ProcessorFunction": "processor-function"})
    r.refs.update({"JobEventsBus": "jobs-bus", "ApiKeyGateAuthorizer": "gate-id"})
    r.attrs.update(
        {
            ("JobsTable", "Arn"): TABLE_ARN,
            ("ProcessingQueue", "Arn"): QUEUE_ARN,
            ("ProcessingDLQ", "Arn"): QUEUE_ARN + "-dlq",
            ("ProcessingDLQ", "QueueName"): "processing-dlq",
            ("UploadsBucket", "Arn"): f"arn:aws:s3:::{BUCKET}",
            ("ApiLogGroup", "Arn"): "arn:aws:logs:us-east-1:123456789012:log-group:api:*",
            ("ProcessorLogGroup", "Arn"): "arn:aws:logs:us-east-1:123456789012:log-group:p:*",
            ("ApiFunctionRole", "Arn"): "arn:aws:iam::123456789012:role/api",
            ("ProcessorFunctionRole", "Arn"): "arn:aws:iam::123456789012:role/processor",
            ("ApiFunction", "Arn"): "arn:aws:lambda:us-east-1:123456789012:function:api",
            ("JobEventsBus", "Arn"): "arn:aws:events:us-east-1:123456789012:event-bus/jobs-bus",
        }
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
    for role_id in ("ApiFunctionRole", "ProcessorFunctionRole"):
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
    assert expiring == {"uploads/": {"Ref": "RetentionDays"}, "results/": {"Ref": "RetentionDays"}}
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
    assert types == {"job_id": "S", "owner": "S", "created_at": "S"}
    (gsi,) = properties["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "by_owner"
    assert gsi["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    assert gsi["Projection"] == {"ProjectionType": "ALL"}
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


def test_dead_letter_queue_depth_alarm() -> None:
    alarm = resource_properties(resolver(), "DeadLetterAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "processing-dlq"}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert float(alarm["Threshold"]) == 1
    with_email = resource_properties(resolver(AlarmEmail="ops@example.com"), "DeadLetterAlarm")
    assert with_email["AlarmActions"] == ["topic-arn"]


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
    assert sorted(roles) == ["ApiFunctionRole", "ApiKeyGateRole", "ProcessorFunctionRole"]
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
