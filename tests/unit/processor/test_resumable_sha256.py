"""The SHA-256 whose state is saved in checkpoints: continued in a new object (as in a
new invocation) it gives hashlib's digest of the whole input."""

from __future__ import annotations

import hashlib
import os

import pytest
from audiolift_processor.resumable_sha256 import ResumableSha256, available


def test_libcrypto_is_there() -> None:
    assert available()  # as on Lambda's Python runtime


@pytest.mark.parametrize("cut", [0, 1, 63, 64, 65, 1000, 3 * 1024 * 1024])
def test_a_saved_state_continues_to_hashlibs_digest(cut: int) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    first = ResumableSha256()
    first.update(bytearray(data[:cut]))  # the reader's writable chunk buffers
    second = ResumableSha256(first.state())
    second.update(memoryview(data)[cut:])  # and read-only views
    assert second.hexdigest() == hashlib.sha256(data).hexdigest()
    # a digest does not end the hash: it continues as before
    assert first.hexdigest() == hashlib.sha256(data[:cut]).hexdigest()
    first.update(data[cut:])
    assert first.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_state_of_another_size_is_refused() -> None:
    with pytest.raises(ValueError, match="state"):
        ResumableSha256(b"\0" * 10)
