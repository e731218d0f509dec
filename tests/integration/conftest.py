"""The live local stack, started once per test session: ``python -m audiolift_devstack up``
in a child process (its own environment: moto's server, SeaweedFS, the bridge, uvicorn and
the poller), found through the stack.json it writes.

``local_stack`` yields a ``LocalStack`` (stack_support.py) with the URLs, the dev API key,
boto3 clients for the stack's S3 (SeaweedFS, with the dev credentials), DynamoDB and SQS
(moto), and the resource names. The stack runs in a child process so that nothing in this
process (moto's in-process mock in unit tests, environment variables) can reach it, and so
that its shutdown can be checked: the fixture stops it with SIGTERM at the end of the
session and fails if it does not exit cleanly or leaves a process behind.

Tests that need their own stack (start/stop tests) use ``start_stack_process``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from stack_support import (
    TEST_PART_BYTES,
    TEST_VISIBILITY_TIMEOUT,
    LocalStack,
    stack_clients,
    start_stack_process,
)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack (SeaweedFS S3) for the whole session; checked to stop cleanly."""
    state_dir = tmp_path_factory.mktemp("stack")
    handle = start_stack_process(
        state_dir,
        "--part-size-bytes",
        str(TEST_PART_BYTES),
        "--visibility-timeout",
        str(TEST_VISIBILITY_TIMEOUT),
        "--log-level",
        "INFO",
    )
    info = handle.info
    s3, dynamodb, sqs = stack_clients(info)
    try:
        yield LocalStack(
            handle=handle,
            api_url=info["api_url"],
            s3_endpoint=info["s3_endpoint"],
            api_key=info["api_key"],
            region=info["region"],
            bucket=info["bucket"],
            table=info["table"],
            queue_url=info["queue_url"],
            dlq_url=info["dlq_url"],
            aws_endpoint=info["aws_endpoint"],
            access_key=info["aws_access_key_id"],
            secret_key=info["aws_secret_access_key"],
            max_receive_count=int(info["max_receive_count"]),
            visibility_timeout=int(info["visibility_timeout"]),
            s3=s3,
            dynamodb=dynamodb,
            sqs=sqs,
        )
    finally:
        handle.stop(signal.SIGTERM)
        survivors = handle.survivors()
        for process in survivors:
            process.kill()
        assert handle.process.returncode == 0, handle.log_tail()
        assert not survivors, f"left behind: {survivors}"
