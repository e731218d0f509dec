"""Checksums S3 checks for us: one part's, signed into its URL, and the whole object's.

A part checksum travels as a header of the part's PUT and is signed into the presigned URL,
so the header can be neither dropped nor changed, and S3 refuses a body that does not
match it (BadDigest). Two kinds:

- ``Content-MD5``: accepted on any multipart upload; the Companion (Uppy) routes and older
  clients use it. MD5 costs a client ~1.5-2 ms of CPU per MiB.
- ``x-amz-checksum-crc32c``: CRC32C, hardware-accelerated on x86-64 (SSE4.2) and arm64
  (~0.1-0.3 ms per MiB). S3 accepts it on a part only if the multipart upload was created
  with that algorithm (otherwise: "Checksum Type mismatch ... expected null"), so a client
  declares it when it creates the upload. Such an upload is created with the FULL_OBJECT
  checksum type: at completion the client states the CRC32C of the whole file (it combines
  the parts' CRCs, no second pass) and S3 checks it against what it assembled.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import StrEnum


class ChecksumAlgorithm(StrEnum):
    """Algorithms a client may declare when it creates an upload."""

    CRC32C = "CRC32C"


CONTENT_MD5_HEADER = "Content-MD5"
CRC32C_HEADER = "x-amz-checksum-crc32c"
# Each header's name among botocore's UploadPart / presign parameters.
_BOTO_PARAMETERS = {CONTENT_MD5_HEADER: "ContentMD5", CRC32C_HEADER: "ChecksumCRC32C"}


@dataclass(frozen=True)
class PartChecksum:
    """One part's checksum: the header its PUT must send, and the base64 value."""

    header: str
    value: str

    @classmethod
    def content_md5(cls, value: str) -> PartChecksum:
        return cls(CONTENT_MD5_HEADER, value)

    @classmethod
    def crc32c(cls, value: str) -> PartChecksum:
        return cls(CRC32C_HEADER, value)

    @property
    def boto_parameter(self) -> str:
        return _BOTO_PARAMETERS[self.header]

    @property
    def signed_name(self) -> str:
        """The header's name as SigV4 signs it."""
        return self.header.lower()


def crc32c_base64(value: int) -> str:
    """A CRC32C as S3 writes it: the 4 bytes big-endian, base64."""
    return base64.b64encode(value.to_bytes(4, "big")).decode()
