"""API keys in SSM Parameter Store (moto): added and revoked without a redeploy, seen by the
API within the cache's max_age, stored only as SHA-256 digests, and the admin script."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from audiolift_core.api_keys import ApiKeyRecord, ApiKeyStore, hash_api_key
from audiolift_core.errors import ConfigurationError, InvalidRequest, NotFound, TransientError
from audiolift_core.settings import ApiSettings
from audiolift_testkit import REGION, AwsClients
from botocore.config import Config

PATH = "/audiolift-test/api-keys"
MAX_AGE = 1  # seconds: the deployed API uses 60
SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "api_keys.py"


@pytest.fixture
def ssm(aws: AwsClients) -> Any:
    return boto3.client("ssm", region_name=REGION)


@pytest.fixture
def store(ssm: Any) -> ApiKeyStore:
    return ApiKeyStore(ssm, PATH, max_age_seconds=MAX_AGE)


@pytest.fixture
def keyed_api(
    api_settings: ApiSettings, jobs_table: Any, upload_store: Any, store: ApiKeyStore
) -> Iterator[Any]:
    """The API with no static keys at all: every key comes from SSM."""
    from dataclasses import replace

    from audiolift_api.app import create_app
    from audiolift_api.service import UploadService
    from fastapi.testclient import TestClient

    settings = replace(api_settings, api_key_hashes={}, api_keys_parameter=PATH)
    service = UploadService(settings, jobs_table, upload_store, api_keys=store)
    with TestClient(create_app(service=service)) as client:
        yield client


def status_with(client: Any, key: str) -> int:
    response = client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    return int(response.status_code)


def wait_out_the_cache() -> None:
    time.sleep(MAX_AGE + 0.1)


def test_a_key_is_stored_only_as_its_digest_in_a_secure_string(
    store: ApiKeyStore, ssm: Any
) -> None:
    record, key = store.add("alice")
    assert key.startswith(f"al_{record.key_id}_") and len(key) > 50
    parameter = ssm.get_parameter(Name=f"{PATH}/{record.key_id}", WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert key not in parameter["Value"]
    stored = json.loads(parameter["Value"])
    assert stored == {
        "sha256": hash_api_key(key),
        "owner": "alice",
        "created_at": stored["created_at"],
    }
    assert [r.key_id for r in store.records()] == [record.key_id]


def test_an_added_key_works_within_the_cache_time_without_a_redeploy(
    keyed_api: Any, store: ApiKeyStore
) -> None:
    _, alice = store.add("alice")
    assert status_with(keyed_api, alice) == 200
    _, bob = store.add("bob")
    # The cache is what bounds SSM traffic: within max_age the API has not looked again.
    assert status_with(keyed_api, bob) == 401
    wait_out_the_cache()
    assert status_with(keyed_api, bob) == 200
    created = keyed_api.post(
        "/v1/uploads",
        json={"filename": "take.wav", "size": 3000},
        headers={"Authorization": f"Bearer {bob}"},
    )
    assert created.status_code == 201, created.text
    listed = keyed_api.get("/v1/jobs", headers={"Authorization": f"Bearer {bob}"}).json()
    assert [j["job_id"] for j in listed["jobs"]] == [created.json()["job_id"]]  # bob's own
    assert keyed_api.get("/v1/jobs", headers={"Authorization": f"Bearer {alice}"}).json() == {
        "jobs": [],
        "next_cursor": None,
    }


def test_a_revoked_key_is_refused_once_the_cache_expires(
    keyed_api: Any, store: ApiKeyStore
) -> None:
    record, key = store.add("alice")
    _, other = store.add("bob")
    assert status_with(keyed_api, key) == 200
    store.revoke(record.key_id)
    wait_out_the_cache()
    response = keyed_api.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert status_with(keyed_api, other) == 200  # the others stay valid
    with pytest.raises(NotFound):
        store.revoke(record.key_id)


def test_unknown_keys_cost_one_ssm_read_per_cache_period(
    keyed_api: Any, store: ApiKeyStore, ssm: Any
) -> None:
    store.add("alice")
    calls: list[str] = []
    ssm.meta.events.register("before-call.ssm", lambda model, **_: calls.append(model.name))
    for attempt in range(20):
        assert status_with(keyed_api, f"al_guess_{attempt}") == 401
    assert calls == ["GetParametersByPath"]


def test_a_damaged_record_authorises_nobody_and_locks_nobody_out(
    keyed_api: Any, store: ApiKeyStore, ssm: Any
) -> None:
    _, key = store.add("alice")
    ssm.put_parameter(Name=f"{PATH}/brokenrecord", Value="not json", Type="SecureString")
    ssm.put_parameter(
        Name=f"{PATH}/nodigest0000", Value='{"owner": "mallory"}', Type="SecureString"
    )
    assert status_with(keyed_api, key) == 200
    assert status_with(keyed_api, "not json") == 401
    assert [r.owner for r in store.records()] == ["alice"]


def test_many_keys_are_read_across_pages(store: ApiKeyStore) -> None:
    # GetParametersByPath answers at most 10 per page.
    keys = [store.add(f"owner-{n}")[1] for n in range(23)]
    assert len(store.digests()) == 23
    assert store.owner_of(keys[-1]) == "owner-22"
    assert store.owner_of(keys[0]) == "owner-0"


def test_an_unreachable_key_store_is_a_503_not_a_401(
    api_settings: ApiSettings, jobs_table: Any, upload_store: Any, aws: AwsClients
) -> None:
    from dataclasses import replace

    from audiolift_api.app import create_app
    from audiolift_api.service import UploadService
    from fastapi.testclient import TestClient

    unreachable = boto3.client(
        "ssm",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",  # the discard port: nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    settings = replace(api_settings, api_key_hashes={}, api_keys_parameter=PATH)
    service = UploadService(
        settings, jobs_table, upload_store, api_keys=ApiKeyStore(unreachable, PATH)
    )
    with TestClient(create_app(service=service)) as client:
        response = client.get("/v1/jobs", headers={"Authorization": "Bearer al_some_key"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == TransientError.code
    assert "127.0.0.1" not in response.text


def test_bad_owners_paths_and_ids_are_refused(store: ApiKeyStore, ssm: Any) -> None:
    with pytest.raises(InvalidRequest):
        store.add("  ")
    with pytest.raises(InvalidRequest):
        store.add("x" * 200)
    with pytest.raises(ConfigurationError):
        ApiKeyStore(ssm, "api-keys")  # not a path
    with pytest.raises(NotFound):
        store.revoke("../../other")
    record = ApiKeyRecord("abcdefabcdef", "alice", "0" * 64, "2026-01-01T00:00:00+00:00")
    store.put(record)
    with pytest.raises(InvalidRequest, match="exists already"):
        store.put(record)  # never overwritten


def test_settings_take_the_keys_path_and_cap_the_cache_at_a_minute() -> None:
    base = {"JOBS_TABLE": "jobs", "UPLOAD_BUCKET": "uploads"}
    settings = ApiSettings.from_env({**base, "API_KEYS_PARAMETER": PATH})
    assert (settings.api_keys_parameter, settings.api_keys_max_age_seconds) == (PATH, 60)
    assert settings.api_key_hashes == {}
    with pytest.raises(ConfigurationError, match="API_KEYS_CACHE_SECONDS"):
        ApiSettings.from_env({**base, "API_KEYS_PARAMETER": PATH, "API_KEYS_CACHE_SECONDS": "61"})
    with pytest.raises(ConfigurationError, match="API_KEYS_PARAMETER"):
        ApiSettings.from_env(base)


# --- scripts/api_keys.py --------------------------------------------------------------------


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("api_keys_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_adds_lists_and_revokes(
    ssm: Any, store: ApiKeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script()
    assert script.main(["--path", PATH, "--json", "add", "--owner", "carol"], ssm=ssm) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["owner"] == "carol"
    assert store.owner_of(added["key"]) == "carol"

    assert script.main(["--path", PATH, "list"], ssm=ssm) == 0
    listing = capsys.readouterr().out
    assert added["key_id"] in listing and "carol" in listing
    assert added["key"] not in listing  # shown once, at creation only

    assert script.main(["--path", PATH, "revoke", added["key_id"]], ssm=ssm) == 0
    capsys.readouterr()
    assert store.records() == []
    assert script.main(["--path", PATH, "revoke", added["key_id"]], ssm=ssm) == 1
    assert "No API key" in capsys.readouterr().err


# --- template.yaml --------------------------------------------------------------------------


def api_function_and_role(**parameters: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    from audiolift_devstack.template_resources import Resolver, load_template

    template = load_template()
    resolver = Resolver.for_template(template, parameters=parameters)
    resolver.refs.update({"UploadsBucket": "b", "JobsTable": "t", "JobEventsBus": "bus"})
    resolver.attrs.update(
        {
            ("UploadsBucket", "Arn"): "arn:aws:s3:::b",
            ("JobsTable", "Arn"): "arn:aws:dynamodb:us-east-1:123456789012:table/t",
            ("ApiLogGroup", "Arn"): "arn:aws:logs:us-east-1:123456789012:log-group:api",
            ("JobEventsBus", "Arn"): "arn:aws:events:us-east-1:123456789012:event-bus/bus",
        }
    )
    resources = template["Resources"]
    environment = resolver.resolve(resources["ApiFunction"]["Properties"]["Environment"])
    role = resolver.resolve(resources["ApiFunctionRole"]["Properties"])
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    return environment["Variables"], statements


def test_the_template_reads_keys_from_their_own_path_only_in_api_key_mode() -> None:
    environment, statements = api_function_and_role()
    path = environment["API_KEYS_PARAMETER"]
    assert path == "/audiolift/dev/api-keys"
    assert int(environment["API_KEYS_CACHE_SECONDS"]) <= 60
    ssm = [s for s in statements if "ssm:" in json.dumps(s["Action"])]
    assert ssm == [
        {
            "Sid": "ReadApiKeys",
            "Effect": "Allow",
            "Action": "ssm:GetParametersByPath",
            "Resource": f"arn:aws:ssm:us-east-1:123456789012:parameter{path}",
        }
    ]
    ApiKeyStore(boto3.client("ssm", region_name=REGION), path)  # a valid path

    jwt_environment, jwt_statements = api_function_and_role(
        JwtIssuer="https://issuer.example.com", JwtAudience="client"
    )
    assert jwt_environment["API_KEYS_PARAMETER"] == ""
    assert not [s for s in jwt_statements if s.get("Sid") == "ReadApiKeys"]


def test_in_api_key_mode_calls_without_an_authorization_header_invoke_nothing() -> None:
    from audiolift_devstack.template_resources import Resolver, load_template

    template = load_template()
    resources = template["Resources"]
    keys = Resolver.for_template(template)
    keys.refs.update({"HttpApi": "api", "HttpApiIntegration": "i", "ApiKeyGateAuthorizer": "g"})
    route = keys.resolve(resources["DefaultRoute"]["Properties"])
    assert (route["AuthorizationType"], route["AuthorizerId"]) == ("CUSTOM", "g")
    keys.attrs[("ApiKeyGateFunction", "Arn")] = "arn:aws:lambda:us-east-1:1:function:gate"
    gate = keys.resolve(resources["ApiKeyGateAuthorizer"]["Properties"])
    # A missing identity source is answered 401 by API Gateway without calling anything.
    assert gate["IdentitySource"] == ["$request.header.Authorization"]
    assert (gate["AuthorizerType"], gate["AuthorizerPayloadFormatVersion"]) == ("REQUEST", "2.0")
    assert gate["EnableSimpleResponses"] is True
    for public in ("HealthRoute", "OpenApiRoute"):
        assert keys.resolve(resources[public]["Properties"])["AuthorizationType"] == "NONE"
    gated = [k for k, v in resources.items() if k.startswith("ApiKeyGate")]
    assert all(resources[k]["Condition"] == "UseApiKeys" for k in gated), gated
    jwt = Resolver.for_template(template, parameters={"JwtIssuer": "https://i", "JwtAudience": "a"})
    assert not jwt.condition("UseApiKeys") and keys.condition("UseApiKeys")

    # The gate's own code (inline in the template): any Bearer credential passes to the
    # API, which checks the key; anything else is refused at the gateway.
    namespace: dict[str, Any] = {}
    exec(resources["ApiKeyGateFunction"]["Properties"]["Code"]["ZipFile"], namespace)
    gate_handler = namespace["handler"]
    for header, allowed in [
        ("Bearer al_abc_def", True),
        ("bearer x", True),
        ("Basic dXNlcjpwYXNz", False),
        ("Bearer ", False),
        ("Bearer", False),
    ]:
        assert gate_handler({"identitySource": [header]}, None) == {"isAuthorized": allowed}
    assert gate_handler({}, None) == {"isAuthorized": False}
