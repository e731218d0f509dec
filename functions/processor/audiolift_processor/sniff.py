"""Identify an upload's container from its first bytes.

The declared content type and the filename are not trusted: what the bytes say decides
which decoder runs, and a file that is plainly not audio (a PDF, a zip, a text file
renamed ``.wav``, random bytes) fails at once with a message that says what it looks like
instead. The table itself is `audiolift_core.formats`, shared with the API and clients.
"""

from __future__ import annotations

from audiolift_core.errors import UnsupportedFormat
from audiolift_core.formats import SNIFF_BYTES, AudioFormat, describe, sniff

__all__ = ["SNIFF_BYTES", "identify"]


def identify(head: bytes) -> AudioFormat:
    """The audio format of a file beginning with ``head``, or UnsupportedFormat.

    ``head`` should be the first `SNIFF_BYTES` bytes of the file (or all of it if shorter).
    """
    found = sniff(head)
    if found is None:
        raise UnsupportedFormat(describe(head))
    return found
