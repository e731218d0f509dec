"""Fixtures of the SDK tests: the fake API + S3 (sdk_fakes.FakeCloud), a client on it with
retries that record their pauses instead of sleeping, and a test file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from audiolift import Client, RetryConfig
from sdk_fakes import PART_SIZE, FakeCloud, wav_bytes


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retry(sleeps: list[float]) -> RetryConfig:
    """Retries that record their pauses instead of sleeping; jitter fixed at its ceiling."""
    return RetryConfig(
        max_attempts=4,
        initial_backoff=0.1,
        max_backoff=1.0,
        sleep=sleeps.append,
        random=lambda: 1.0,
    )


@pytest.fixture
def client(cloud: FakeCloud, retry: RetryConfig) -> Iterator[Client]:
    with cloud.client(retry) as made:
        yield made


@pytest.fixture
def audio_file(tmp_path: Path) -> Path:
    """A WAV file of 10.5 parts (a WAV header, then deterministic, non-repeating bytes)."""
    path = tmp_path / "take.wav"
    path.write_bytes(wav_bytes(PART_SIZE * 10 + PART_SIZE // 2))
    return path
