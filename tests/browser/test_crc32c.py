"""The page's CRC32C arithmetic (clients/web/src/crc32c.js), the very source file run in
Chromium: combining parts' CRCs gives the whole file's CRC32C (checked against
google-crc32c over the whole bytes), for any split, empty pieces, and lengths past 4 GiB;
and the base64 form is S3's. No stack needed: the module has no imports."""

from __future__ import annotations

import base64
import os
import random
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
from page_support import crc32c_base64

pytestmark = pytest.mark.browser

SOURCE = Path(__file__).resolve().parents[2] / "clients" / "web" / "src" / "crc32c.js"


@pytest.fixture
def crc32c_page(chromium: Any) -> Any:
    """A blank page with crc32c.js imported as ``window.crc32c``."""
    page = chromium.new_page()
    module = base64.b64encode(SOURCE.read_bytes()).decode()
    page.evaluate(
        "async (source) => {"
        " window.crc32c = await import(`data:text/javascript;base64,${source}`) }",
        module,
    )
    return page


def crc(data: bytes) -> int:
    return int(google_crc32c.value(data))


def test_combining_two_pieces_gives_the_crc32c_of_both(crc32c_page: Any) -> None:
    rng = random.Random(7)
    cases = []
    for length_a, length_b in [(0, 0), (0, 5), (5, 0), (1, 1), (3, 1000), (4096, 1 << 20)]:
        a, b = rng.randbytes(length_a), rng.randbytes(length_b)
        cases.append([crc(a), crc(b), length_b, crc(a + b)])
    combined = crc32c_page.evaluate(
        "(cases) => cases.map(([a, b, n]) => crc32c.crc32cCombine(a, b, n))", cases
    )
    assert combined == [case[3] for case in cases]


def test_the_crc32c_of_parts_is_the_crc32c_of_the_file(crc32c_page: Any) -> None:
    data = os.urandom(3 * 1024 * 1024 + 777)
    part = 1024 * 1024
    pieces = [{"crc": crc(data[i : i + part]), "size": len(data[i : i + part])}
              for i in range(0, len(data), part)]  # fmt: skip
    whole = crc32c_page.evaluate("(pieces) => crc32c.crc32cOfPieces(pieces)", pieces)
    assert whole == crc(data)
    assert crc32c_page.evaluate("() => crc32c.crc32cOfPieces([])") == 0  # nothing: CRC 0


def crc_of_zeros_after(prefix: bytes, zeros: int) -> int:
    """google-crc32c over ``prefix`` and then ``zeros`` zero bytes, streamed."""
    checksum = google_crc32c.Checksum(prefix)
    block = bytes(64 * 1024 * 1024)
    left = zeros
    while left:
        checksum.update(block[: min(left, len(block))])
        left -= min(left, len(block))
    return int.from_bytes(checksum.digest(), "big")


def test_lengths_past_four_gib(crc32c_page: Any) -> None:
    """S3 parts reach 5 GiB: a piece of 2^32 + 5 bytes must not wrap at 32 bits."""
    prefix = os.urandom(1000)
    length = 2**32 + 5
    expected = crc_of_zeros_after(prefix, length)
    zeros = crc_of_zeros_after(b"", length)
    combined = crc32c_page.evaluate(
        "([a, b, n]) => crc32c.crc32cCombine(a, b, n)", [crc(prefix), zeros, length]
    )
    assert combined == expected


def test_base64_is_s3s_form(crc32c_page: Any) -> None:
    samples = [b"", b"123456789", os.urandom(1000)]
    values = [crc(s) for s in samples]
    encoded = crc32c_page.evaluate("(values) => values.map((v) => crc32c.crc32cBase64(v))", values)
    assert encoded == [crc32c_base64(s) for s in samples]
    assert encoded[0] == "AAAAAA=="
