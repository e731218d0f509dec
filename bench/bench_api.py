"""Upload API benchmarks (not part of the test suite). Prints figures and ratios measured
in this one run.

1. Cold start: a fresh interpreter imports ``audiolift_api.handler`` and answers one
   ``GET /health`` HTTP API v2 event (events/http-health.json), against a bare
   FastAPI + Mangum "hello" app measured the same way. Runs are interleaved; medians.
   Goal: ratio <= 1.5. Also shown: what the API defers to its first AWS request (boto3
   clients), and optionally the same cold start of an older commit (--baseline-ref).
2. ``POST /v1/uploads`` for a 100 GiB file through the Lambda handler (Mangum, a v2 event)
   in process against moto: p50/p95 over a few hundred requests. Goal: p95 <= 25 ms. The
   same with botocore signing every part URL (the path before presign_parts) for
   comparison.

    .venv/bin/python bench/bench_api.py [--runs 15] [--requests 300] [--baseline-ref REF]
        [--candidate DIR] [--profile]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
KEY_HASH = hashlib.sha256(b"bench-key").hexdigest()

API_ENV = {
    "JOBS_TABLE": "bench-jobs",
    "UPLOAD_BUCKET": "bench-uploads",
    "AUTH_MODE": "api_key",
    "API_KEY_HASHES": f"bench:{KEY_HASH}",
    "POWERTOOLS_SERVICE_NAME": "audiolift-api",
    "POWERTOOLS_METRICS_NAMESPACE": "audiolift",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    # A benchmark prints its figures, not the function's EMF metric lines (Powertools'
    # own switch; the metrics code still runs, so the timing includes it).
    "POWERTOOLS_METRICS_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

# Run in a fresh interpreter: time from the first line to the answer of the first event.
COLD_API = """
import time
started, cpu_started = time.perf_counter(), time.process_time()
import json, sys
from audiolift_api.handler import handler
imported = time.perf_counter()
event = json.load(open(sys.argv[1]))
response = handler(event, None)
answered, cpu_answered = time.perf_counter(), time.process_time()
assert response["statusCode"] == 200, response
from audiolift_api import handler as module
service = module.app.state.service
deferred_start = time.perf_counter()
service.jobs._client.meta, service.store._client.meta  # what the first AWS request makes
deferred = time.perf_counter() - deferred_start
print(json.dumps({"import": imported - started, "first": answered - imported,
                  "total": answered - started, "cpu": cpu_answered - cpu_started,
                  "deferred": deferred}))
"""

COLD_HELLO = """
import time
started, cpu_started = time.perf_counter(), time.process_time()
import json, sys
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
imported = time.perf_counter()
event = json.load(open(sys.argv[1]))
response = handler(event, None)
answered, cpu_answered = time.perf_counter(), time.process_time()
assert response["statusCode"] == 200, response
print(json.dumps({"import": imported - started, "first": answered - imported,
                  "total": answered - started, "cpu": cpu_answered - cpu_started,
                  "deferred": 0.0}))
"""


def run_cold(script: str, pythonpath: list[Path], env_extra: dict[str, str]) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script, str(EVENTS / "http-health.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    if result.returncode != 0:
        raise SystemExit(f"cold-start run failed:\n{result.stderr}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def extract_ref(ref: str, into: Path) -> Path:
    """The API and core code of an older commit, for a before/after cold start."""
    archive = into / "baseline.tar"
    with open(archive, "wb") as out:
        subprocess.run(
            ["git", "archive", ref, "functions/api", "layers/core"],
            cwd=REPO,
            check=True,
            stdout=out,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def bench_cold(runs: int, baseline_ref: str | None, candidates: list[str]) -> None:
    variants: dict[str, tuple[str, list[Path], dict[str, str]]] = {
        "api": (COLD_API, [REPO / "layers/core", REPO / "functions/api"], API_ENV),
        "hello": (COLD_HELLO, [], {}),
    }
    scratch = None
    if baseline_ref:
        scratch = tempfile.TemporaryDirectory(prefix="bench-api-baseline-")
        root = extract_ref(baseline_ref, Path(scratch.name))
        variants[f"api@{baseline_ref}"] = (
            COLD_API.replace("service.jobs._client.meta, service.store._client.meta", "None"),
            [root / "layers/core", root / "functions/api"],
            API_ENV,
        )
    for candidate in candidates:
        root = Path(candidate)
        variants[f"api@{root.name}"] = (
            COLD_API.replace("service.jobs._client.meta, service.store._client.meta", "None"),
            [root / "layers/core", root / "functions/api"],
            API_ENV,
        )
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for script, path, env in variants.values():  # warm the OS file cache once
        run_cold(script, path, env)
    for _ in range(runs):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            script, path, env = variants[name]
            samples[name].append(run_cold(script, path, env))

    def median(name: str, field: str) -> float:
        return statistics.median(s[field] for s in samples[name]) * 1000

    print(f"\n== cold start: import + first GET /health event ({runs} runs each, interleaved)")
    print("(wall ms; cpu = the process's CPU time, which other load on the machine disturbs less)")
    print(f"{'':24} {'import':>8} {'first req':>10} {'total':>8} {'cpu':>8} {'deferred':>9}")
    for name in variants:
        print(
            f"{name:24} {median(name, 'import'):8.1f} {median(name, 'first'):10.1f} "
            f"{median(name, 'total'):8.1f} {median(name, 'cpu'):8.1f} "
            f"{median(name, 'deferred'):9.1f}"
        )
    ratio = median("api", "total") / median("hello", "total")
    verdict = "meets" if ratio <= 1.5 else "MISSES"
    print(f"ratio api / hello (median wall totals): {ratio:.2f}x ({verdict} the 1.5x goal)")
    cpu_ratio = median("api", "cpu") / median("hello", "cpu")
    print(f"ratio api / hello (median CPU): {cpu_ratio:.2f}x")
    with_deferred = (median("api", "total") + median("api", "deferred")) / median("hello", "total")
    print(f"ratio if the first request also touches AWS (+ client creation): {with_deferred:.2f}x")
    for name in variants:
        if name.startswith("api@"):
            wall = median(name, "total") / median("hello", "total")
            cpu = median(name, "cpu") / median("hello", "cpu")
            print(f"ratio {name} / hello: {wall:.2f}x wall, {cpu:.2f}x CPU")
    if scratch:
        scratch.cleanup()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def bench_create(requests: int, profile: bool) -> None:
    for name, value in API_ENV.items():
        os.environ[name] = value
    os.environ["AUTH_MODE"] = "jwt"  # the owner comes from the event's authorizer claims
    os.environ["MAX_UPLOAD_BYTES"] = str(5 * 1024**4)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB"):
        os.environ.pop(name, None)
    sys.path[:0] = [str(REPO / p) for p in ("layers/core", "functions/api", "devstack")]

    import boto3
    from moto import mock_aws

    with mock_aws():
        from audiolift_core import storage
        from audiolift_devstack.template_resources import ResourceNames, create_resources

        names = ResourceNames.with_prefix("bench")
        names = ResourceNames(
            table=API_ENV["JOBS_TABLE"],
            bucket=API_ENV["UPLOAD_BUCKET"],
            queue=names.queue,
            dlq=names.dlq,
        )
        create_resources(
            boto3.client("s3", region_name="us-east-1"),
            boto3.client("dynamodb", region_name="us-east-1"),
            boto3.client("sqs", region_name="us-east-1"),
            names=names,
            with_notifications=False,
        )
        from audiolift_api.handler import handler

        template = json.loads((EVENTS / "http-create-upload.json").read_text())
        template["body"] = json.dumps({"filename": "long-session.wav", "size": 100 * 1024**3})
        template["headers"]["content-length"] = str(len(template["body"]))

        def timed_requests(count: int) -> list[float]:
            timings = []
            for _ in range(count):
                event = copy.deepcopy(template)
                started = time.perf_counter()
                response = handler(event, None)
                timings.append((time.perf_counter() - started) * 1000)
                assert response["statusCode"] == 201, response
            return timings

        first = json.loads(handler(copy.deepcopy(template), None)["body"])
        print(
            f"\n== POST /v1/uploads, 100 GiB, in process against moto ({requests} requests)\n"
            f"plan: {first['part_count']} parts of {first['part_size'] // 1024**2} MiB, "
            f"{len(first['parts'])} URLs signed in the response"
        )
        timed_requests(20)  # warm-up
        fast = timed_requests(requests)
        original_secret = storage._secret_key
        # Without a readable secret, botocore signs every part URL (the path before).
        setattr(storage, "_secret_key", lambda _client: None)  # noqa: B010
        slow = timed_requests(max(50, requests // 3))
        setattr(storage, "_secret_key", original_secret)  # noqa: B010
        for label, timings in (("presign_parts (re-signed)", fast), ("botocore per part", slow)):
            p95 = percentile(timings, 0.95)
            print(
                f"{label:28} p50 {statistics.median(timings):6.1f} ms  p95 {p95:6.1f} ms  "
                f"p99 {percentile(timings, 0.99):6.1f} ms  (n={len(timings)})"
            )
        p95 = percentile(fast, 0.95)
        print(f"p95 {p95:.1f} ms: {'meets' if p95 <= 25 else 'MISSES'} the 25 ms goal")
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            timed_requests(50)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="cold starts per variant")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--baseline-ref", help="also time this git ref's API cold start")
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="also time the API in this directory (with layers/core and functions/api)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile 50 create requests")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-create", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} CPUs, load average {load:.1f}")
    if not args.skip_cold:
        bench_cold(args.runs, args.baseline_ref, args.candidate)
    if not args.skip_create:
        bench_create(args.requests, args.profile)


if __name__ == "__main__":
    main()
