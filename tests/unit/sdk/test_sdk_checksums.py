"""The whole file's CRC32C, combined from its parts' CRCs, against google-crc32c over the
same bytes: the value S3 checks at completion."""

from __future__ import annotations

import os

import google_crc32c
import pytest
from audiolift._checksums import combine, combine_all, crc32c, to_base64

ZEROS = bytes(16 * 1024 * 1024)


def crc_of_zeros(length: int, *, after: int = 0) -> int:
    """google-crc32c over ``length`` zero bytes (continuing the CRC ``after``), 16 MiB at
    a time."""
    crc = after
    while length:
        step = min(length, len(ZEROS))
        crc = int(google_crc32c.extend(crc, ZEROS[:step]))
        length -= step
    return crc


@pytest.mark.parametrize(
    "sizes",
    [[1, 1], [0, 5], [5, 0], [10, 3, 77], [1000] * 50, [5 * 2**20, 5 * 2**20, 12345]],
)
def test_combined_parts_equal_the_crc_of_the_whole(sizes: list[int]) -> None:
    pieces = [os.urandom(n) for n in sizes]
    combined = combine_all((crc32c(piece), len(piece)) for piece in pieces)
    assert combined == google_crc32c.value(b"".join(pieces))
    assert to_base64(combined) == to_base64(google_crc32c.value(b"".join(pieces)))


@pytest.mark.parametrize("length", [2**29 - 1, 2**29, 2**29 + 7, 3 * 2**30 + 5])
def test_long_pieces_combine_exactly(length: int) -> None:
    """Past 2^29 bytes (2^32 bits) CRC32C's powers of x do not repeat every 32 squarings
    as CRC-32's do: a table wrapped at 32 gets these wrong."""
    head = b"audiolift"
    expected = crc_of_zeros(length, after=int(google_crc32c.value(head)))
    assert combine(crc32c(head), crc_of_zeros(length), length) == expected
