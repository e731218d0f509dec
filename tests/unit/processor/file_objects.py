"""File objects for the decoder tests: seekable bytes that behave like the S3 reader."""

from __future__ import annotations

import io


class FailingReader(io.RawIOBase):
    """A seekable file object that fails like the S3 reader does: its readinto raises
    after ``fail_after`` bytes, and it remembers the error for raise_if_failed()."""

    def __init__(self, data: bytes, fail_after: int, error: Exception):
        self._data = io.BytesIO(data)
        self._size = len(data)
        self._fail_after = fail_after
        self._error = error
        self._failed: Exception | None = None
        self.checked = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._data.seek(offset, whence)

    def tell(self) -> int:
        return self._data.tell()

    def readinto(self, buffer) -> int:
        if min(self._data.tell() + len(buffer), self._size) > self._fail_after:
            self._failed = self._error
            raise self._error
        return self._data.readinto(buffer)

    def raise_if_failed(self) -> None:
        self.checked += 1
        if self._failed is not None:
            raise self._failed


class StorageLikeReader(FailingReader):
    """A healthy reader that, like the S3 reader, names its bucket, key and ETag."""

    def __init__(self, data: bytes, *, bucket: str, key: str, etag: str):
        super().__init__(data, len(data) + 1, RuntimeError("never raised"))
        self.name = f"s3://{bucket}/{key}"
        self._etag = etag

    def __repr__(self) -> str:
        return f"<S3RangeReader {self.name} etag={self._etag} size={self._size}>"
