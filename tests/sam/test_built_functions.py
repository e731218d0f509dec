"""Smoke test of the `sam build` output: each built function runs from its own directory and
its layers' ``python/`` directories alone (a subprocess with ``python -I -S``: nothing from
the development environment), with the environment template.yaml gives it, against moto's
server with resources made from the template.

The flow is the deployed one: the built API creates an upload, the test PUTs the audio to
the presigned part URL, the built API completes it, moto's S3 notifies the queue, and the
built processor analyses the file from the queue's own messages (proving that soundfile
finds the libsndfile bundled in the layer).

Needs the build: scripts/sam_checks.sh runs `sam build` and then these tests with
AUDIOLIFT_SAM_BUILD_DIR set. Without it they are skipped.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from audiolift_devstack import lambda_context
from audiolift_devstack.clients import clients_for
from audiolift_devstack.net import free_port
from audiolift_devstack.template_resources import (
    CreatedResources,
    Resolver,
    ResourceNames,
    create_resources,
    load_template,
)

pytestmark = [
    pytest.mark.sam,
    pytest.mark.skipif(
        not os.environ.get("AUDIOLIFT_SAM_BUILD_DIR"),
        reason="needs `sam build` output: run scripts/sam_checks.sh",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
RUNNER = Path(__file__).with_name("invoke_built.py")
LAMBDA_CONTEXT_FILE = str(Path(lambda_context.__file__).resolve())
NAMES = ResourceNames.with_prefix("sam-smoke")
API_KEY = "smoke-test-key-0001"
REGION = "us-east-1"
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # function + layers, bytes


def build_dir() -> Path:
    return Path(os.environ["AUDIOLIFT_SAM_BUILD_DIR"]).resolve()


def runtime_python() -> str:
    """The runtime's interpreter (the one `sam build` used), else this one if it is 3.12."""
    python = os.environ.get("AUDIOLIFT_RUNTIME_PYTHON")
    if python:
        return python
    assert sys.version_info[:2] == (3, 12), "set AUDIOLIFT_RUNTIME_PYTHON to a python3.12"
    return sys.executable


# --- moto's server and the resources ------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "MOTO_DISABLE_GLOBAL_CORS": "true"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@dataclass
class Moto:
    endpoint: str
    s3: Any
    dynamodb: Any
    sqs: Any
    created: CreatedResources


@pytest.fixture(scope="module")
def moto(moto_endpoint: str) -> Moto:
    clients = clients_for(
        {
            "region": REGION,
            "s3_endpoint": moto_endpoint,
            "aws_endpoint": moto_endpoint,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
    )
    s3, dynamodb, sqs = clients.s3, clients.dynamodb, clients.sqs
    created = create_resources(s3, dynamodb, sqs, names=NAMES)
    return Moto(moto_endpoint, s3, dynamodb, sqs, created)


# --- the built functions --------------------------------------------------------------------


@dataclass
class BuiltFunction:
    logical_id: str
    handler: str
    code_dir: Path
    layer_dirs: list[Path]
    environment: dict[str, str]

    @property
    def paths(self) -> list[str]:
        return [str(self.code_dir)] + [str(d) for d in self.layer_dirs]


def built_function(
    logical_id: str, moto: Moto, parameters: dict[str, str] | None = None
) -> BuiltFunction:
    """The built function as the template configures it (API-key mode unless the
    parameters say otherwise)."""
    template = load_template(build_dir() / "template.yaml")
    resources = template["Resources"]
    properties = resources[logical_id]["Properties"]
    key_hash = hashlib.sha256(API_KEY.encode()).hexdigest()
    resolver = Resolver.for_template(
        template, parameters=parameters or {"ApiKeyHashes": f"alice:{key_hash}"}
    )
    resolver.refs.update({"JobsTable": NAMES.table, "UploadsBucket": NAMES.bucket})
    environment = {
        name: str(value)
        for name, value in resolver.resolve(properties["Environment"]["Variables"]).items()
    }
    environment.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": moto.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": moto.endpoint,
            "AWS_ENDPOINT_URL_SQS": moto.endpoint,
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
    )
    return BuiltFunction(
        logical_id=logical_id,
        handler=properties["Handler"],
        code_dir=build_dir() / properties["CodeUri"],
        layer_dirs=[
            build_dir() / resources[ref["Ref"]]["Properties"]["ContentUri"] / "python"
            for ref in properties["Layers"]
        ],
        environment=environment,
    )


@dataclass
class Invocation:
    responses: list[Any]
    modules: dict[str, str]
    libsndfile: list[str]
    stdlib: list[str]
    output: str


def invoke(
    function: BuiltFunction,
    events: list[dict[str, Any]],
    tmp_path: Path,
    *,
    must_not_import: tuple[str, ...] = (),
) -> Invocation:
    spec_path = tmp_path / f"{function.logical_id}-{time.monotonic_ns()}.json"
    out_path = spec_path.with_suffix(".out.json")
    spec_path.write_text(
        json.dumps(
            {
                "paths": function.paths,
                "handler": function.handler,
                "function_name": function.logical_id,
                "events": events,
                "output": str(out_path),
                "must_not_import": list(must_not_import),
                "timeout_seconds": 120,
                # The devstack's Lambda context, loaded by path: its only import is
                # Powertools, which the built layer provides.
                "context_module": LAMBDA_CONTEXT_FILE,
            }
        )
    )
    completed = subprocess.run(
        # -B: no __pycache__ written into the build output (it would be deployed).
        [runtime_python(), "-I", "-S", "-B", str(RUNNER), str(spec_path)],
        env=function.environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    result = json.loads(out_path.read_text())
    assert not result["errors"], "\n".join(result["errors"]) + "\n" + output
    return Invocation(
        responses=result["responses"],
        modules=result["modules"],
        libsndfile=result["libsndfile"],
        stdlib=result["stdlib"],
        output=output,
    )


def assert_only_build_output_imported(function: BuiltFunction, invocation: Invocation) -> None:
    allowed = [*function.paths, *invocation.stdlib]
    strays = {
        name: path
        for name, path in invocation.modules.items()
        if path not in (str(RUNNER), LAMBDA_CONTEXT_FILE)
        and not any(path.startswith(root + os.sep) for root in allowed)
    }
    assert not strays, f"imported from outside the build output: {strays}"


# --- events ---------------------------------------------------------------------------------


def http_event(
    method: str, path: str, body: Any = None, *, authenticated: bool = True
) -> dict[str, Any]:
    """An HTTP API v2 request shaped like events/http-create-upload.json, in API-key mode
    (no JWT authorizer context; the key in the Authorization header)."""
    event: dict[str, Any] = json.loads((EVENTS / "http-create-upload.json").read_text())
    event["requestContext"].pop("authorizer", None)
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    headers = event["headers"]
    headers.pop("authorization", None)
    if authenticated:
        headers["authorization"] = f"Bearer {API_KEY}"
    if body is None:
        event.pop("body", None)
        headers.pop("content-type", None)
        headers["content-length"] = "0"
    else:
        event["body"] = json.dumps(body)
        headers["content-length"] = str(len(event["body"]))
    return event


def lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """SQS messages as the event source mapping hands them to Lambda, shaped like
    events/sqs-s3-put.json."""
    (template,) = json.loads((EVENTS / "sqs-s3-put.json").read_text())["Records"]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            md5OfBody=message["MD5OfBody"],
            eventSourceARN=queue_arn,
        )
        record["attributes"].update(message.get("Attributes", {}))
        records.append(record)
    return {"Records": records}


def wav_bytes(seconds: float = 2.0, rate: int = 44100) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([tone, 0.5 * tone], axis=1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def drain(moto: Moto, *, want_records: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        messages = moto.sqs.receive_message(
            QueueUrl=moto.created.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
        ).get("Messages", [])
        found.extend(messages)
        if not messages and (not want_records or any("Records" in m["Body"] for m in found)):
            break
    return found


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("logical_id", ["ApiFunction", "ProcessorFunction"])
def test_built_function_and_layers_fit_lambdas_size_limit(logical_id: str, moto: Moto) -> None:
    function = built_function(logical_id, moto)
    total = sum(
        f.stat().st_size
        for d in [function.code_dir, *[p.parent for p in function.layer_dirs]]
        for f in d.rglob("*")
        if f.is_file()
    )
    print(f"{logical_id}: {total / 1e6:.1f} MB unzipped with its layers")
    assert total < LAMBDA_UNZIPPED_LIMIT


def test_built_functions_upload_and_analyse_a_wav_end_to_end(moto: Moto, tmp_path: Path) -> None:
    api = built_function("ApiFunction", moto)
    processor = built_function("ProcessorFunction", moto)
    audio = wav_bytes()
    drain(moto, want_records=False)  # the s3:TestEvent from configuring notifications

    # The API: health without a key, then a new upload (one part: the file is small).
    created = invoke(
        api,
        [
            http_event("GET", "/health", authenticated=False),
            http_event("GET", "/v1/jobs", authenticated=False),
            http_event(
                "POST",
                "/v1/uploads",
                {"filename": "smoke.wav", "size": len(audio), "content_type": "audio/wav"},
            ),
        ],
        tmp_path,
        must_not_import=("numpy", "scipy", "soundfile"),
    )
    assert_only_build_output_imported(api, created)
    health, anonymous, upload = created.responses
    assert health["statusCode"] == 200, health
    assert anonymous["statusCode"] == 401, anonymous
    assert upload["statusCode"] == 201, upload
    job = json.loads(upload["body"])
    job_id = job["job_id"]
    item = moto.dynamodb.get_item(TableName=NAMES.table, Key={"job_id": {"S": job_id}})
    assert item["Item"]["status"]["S"] == "awaiting_upload"
    assert item["Item"]["owner"]["S"] == "alice"

    # The client's part PUT, straight to the presigned URL (moto's server checks nothing,
    # but the URL must point at it and work).
    (part,) = job["parts"]
    assert part["url"].startswith(moto.endpoint)
    # An explicit content type: urllib's default (a form) makes moto's server parse a form.
    request = urllib.request.Request(
        part["url"], data=audio, method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        etag = response.headers["ETag"]

    completed = invoke(
        api,
        [
            http_event(
                "POST",
                f"/v1/uploads/{job_id}/complete",
                {"parts": [{"part_number": 1, "etag": etag}]},
            )
        ],
        tmp_path,
    )
    (complete,) = completed.responses
    assert complete["statusCode"] == 200, complete
    head = moto.s3.head_object(Bucket=NAMES.bucket, Key=f"uploads/{job_id}")
    assert head["ContentLength"] == len(audio)

    # moto's S3 announced the object on the queue; the processor gets those messages.
    messages = drain(moto, want_records=True)
    assert any(job_id in m["Body"] for m in messages), messages
    analysed = invoke(
        processor,
        [lambda_sqs_event(messages, moto.created.queue_arn)],
        tmp_path,
        must_not_import=("fastapi", "mangum"),
    )
    assert_only_build_output_imported(processor, analysed)
    (batch_response,) = analysed.responses
    assert batch_response == {"batchItemFailures": []}, analysed.output
    (libsndfile,) = analysed.libsndfile
    audio_layer = str(processor.layer_dirs[-1])
    assert libsndfile.startswith(audio_layer + os.sep), libsndfile

    item = moto.dynamodb.get_item(TableName=NAMES.table, Key={"job_id": {"S": job_id}})
    assert item["Item"]["status"]["S"] == "completed", item["Item"]
    stored = moto.s3.get_object(Bucket=NAMES.bucket, Key=f"results/{job_id}.json")

    def refuse(token: str) -> Any:
        raise AssertionError(f"non-standard JSON {token}")

    document = json.loads(stored["Body"].read(), parse_constant=refuse)
    assert document["format"]["channels"] == 2
    assert document["format"]["sample_rate"] == 44100

    # And the built API reports it.
    status = invoke(api, [http_event("GET", f"/v1/jobs/{job_id}")], tmp_path)
    (job_response,) = status.responses
    assert job_response["statusCode"] == 200, job_response
    body = json.loads(job_response["body"])
    assert (body["status"], body["progress"]) == ("completed", 100)


def test_built_api_in_jwt_mode_takes_the_owner_from_the_authorizer(
    moto: Moto, tmp_path: Path
) -> None:
    """Deployed with JwtIssuer/JwtAudience, API Gateway has verified the token: the built API
    takes the owner from the authorizer's claims in events/http-create-upload.json."""
    api = built_function(
        "ApiFunction",
        moto,
        {"JwtIssuer": "https://cognito-idp.us-east-1.amazonaws.com/x", "JwtAudience": "client"},
    )
    assert api.environment["AUTH_MODE"] == "jwt"
    create = json.loads((EVENTS / "http-create-upload.json").read_text())
    subject = create["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    (created,) = invoke(api, [create], tmp_path).responses
    assert created["statusCode"] == 201, created
    job_id = json.loads(created["body"])["job_id"]
    item = moto.dynamodb.get_item(TableName=NAMES.table, Key={"job_id": {"S": job_id}})
    assert item["Item"]["owner"]["S"] == subject

    get_job = json.loads((EVENTS / "http-get-job.json").read_text())
    get_job["rawPath"] = get_job["requestContext"]["http"]["path"] = f"/v1/jobs/{job_id}"
    no_claims = copy.deepcopy(get_job)
    no_claims["requestContext"].pop("authorizer")
    found, anonymous = invoke(api, [get_job, no_claims], tmp_path).responses
    assert found["statusCode"] == 200, found
    assert json.loads(found["body"])["status"] == "awaiting_upload"
    assert anonymous["statusCode"] == 401, anonymous
