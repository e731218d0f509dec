"""The live local stack for integration tests, built on the devstack's own pieces.

- ``local_stack`` (session): ``python -m audiolift_devstack up`` (SeaweedFS as S3) in a
  child process, so nothing in this process (moto's in-process mock, environment
  variables) can reach it, and so that its shutdown can be checked: at the end of the
  session it is stopped with SIGTERM and the fixture fails if it does not exit cleanly
  or leaves a process behind. It yields the devstack's ``StackProcess``: ``.info`` (the
  ``StackInfo`` of its stack.json), ``.clients`` (S3, DynamoDB, SQS), ``.auth``.
- ``moto_stack`` (module): the devstack's ``Stack`` in this process on moto's S3 (no
  SeaweedFS), API only, with parts down to ``SMALL_PART_BYTES``.

Tests that need a stack of their own (start/stop, restart) call ``start_stack_process``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from audiolift_devstack.stack import Stack, StackConfig
from audiolift_testkit import (
    API_KEYS,
    SMALL_PART_BYTES,
    TEST_PART_BYTES,
    TEST_VISIBILITY_TIMEOUT,
    StackProcess,
    start_stack_process,
)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    """One stack (SeaweedFS S3) for the whole session; checked to stop cleanly."""
    handle = start_stack_process(
        tmp_path_factory.mktemp("stack"),
        "--part-size-bytes",
        str(TEST_PART_BYTES),
        "--visibility-timeout",
        str(TEST_VISIBILITY_TIMEOUT),
        "--log-level",
        "INFO",
    )
    try:
        yield handle
    finally:
        handle.stop_checked()


@pytest.fixture(scope="module")
def moto_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack in this process on moto (S3, DynamoDB, SQS), without the processor: the
    API under uvicorn signs URLs for moto's S3. The dev key is alice's."""
    import moto.s3.models

    with pytest.MonkeyPatch.context() as patch:
        # moto checks S3's part minimum with a constant it read at import.
        patch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", SMALL_PART_BYTES)
        config = StackConfig(
            state_dir=tmp_path_factory.mktemp("moto-stack"),
            s3_backend="moto",
            table_backend="moto",
            run_poller=False,
            api_key=API_KEYS["alice"],
            part_min_bytes=SMALL_PART_BYTES,
            part_size_bytes=SMALL_PART_BYTES,
            extra_environment={"PRESIGN_TTL_SECONDS": "120"},
        )
        with Stack(config) as stack:
            yield stack
