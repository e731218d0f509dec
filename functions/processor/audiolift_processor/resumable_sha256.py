"""SHA-256 whose running state can be saved and restored: a job analysed over several
invocations still ends with the SHA-256 of the whole object, without reading its
prefix again.

``hashlib`` cannot export its state, so this calls the same OpenSSL that ``hashlib``
uses (libcrypto, which Python's ``_hashlib`` links and Lambda's Python runtime ships)
through its public low-level API, ``SHA256_Init``/``SHA256_Update``/``SHA256_Final``.
That API's context, ``SHA256_CTX``, is a plain C struct with no pointers (the eight
chaining words, the bit count, the pending block and its fill): its bytes are the whole
state, and copying them back resumes the hash exactly. The struct has kept this layout
since OpenSSL 0.9; a self-test against ``hashlib`` on load refuses any other.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
from typing import Any

# unsigned int h[8], Nl, Nh, data[16], num, md_len: 28 words of 4 bytes
_CTX_BYTES = 28 * 4


class ResumableUnavailable(RuntimeError):
    """This process has no libcrypto with the SHA256_* functions."""


@functools.cache
def _libcrypto() -> Any:
    names = [ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so.1.1"]
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
            init, update, final = lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final
        except (OSError, AttributeError):
            continue
        init.argtypes = [ctypes.c_void_p]
        update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        final.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        for function in (init, update, final):
            function.restype = ctypes.c_int
        if _self_test(lib):
            return lib
    raise ResumableUnavailable("no libcrypto with SHA256_Init/Update/Final was found")


def _self_test(lib: Any) -> bool:
    sample = bytes(range(256)) * 5
    first = _Context(lib)
    first.update(sample[:300])
    second = _Context(lib, first.raw())
    second.update(sample[300:])
    return second.hexdigest() == hashlib.sha256(sample).hexdigest()


class _Context:
    def __init__(self, lib: Any, raw: bytes | None = None):
        self._lib = lib
        # a little room beyond the struct in case a build pads it
        self._ctx = ctypes.create_string_buffer(_CTX_BYTES + 32)
        if raw is None:
            lib.SHA256_Init(self._ctx)
        else:
            if len(raw) != _CTX_BYTES:
                raise ValueError("not a saved SHA-256 state")
            ctypes.memmove(self._ctx, raw, _CTX_BYTES)

    def update(self, data: Any) -> None:
        with memoryview(data) as view, view.cast("B") as flat:
            if not flat.nbytes:
                return
            if flat.readonly:
                pointer: Any = ctypes.c_char_p(flat.tobytes())
            else:
                pointer = (ctypes.c_char * flat.nbytes).from_buffer(flat)
            self._lib.SHA256_Update(self._ctx, pointer, flat.nbytes)

    def raw(self) -> bytes:
        return self._ctx.raw[:_CTX_BYTES]

    def hexdigest(self) -> str:
        copy = ctypes.create_string_buffer(self.raw(), _CTX_BYTES + 32)
        digest = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(digest, copy)
        return digest.raw.hex()


class ResumableSha256:
    """``hashlib.sha256()``'s ``update``/``hexdigest``, plus ``state()`` (bytes) and
    ``ResumableSha256(state)`` to continue from it. ``ctypes`` releases the GIL for the
    call, as ``hashlib`` does for large inputs."""

    def __init__(self, state: bytes | None = None):
        self._context = _Context(_libcrypto(), state)

    def update(self, data: Any) -> None:
        self._context.update(data)

    def state(self) -> bytes:
        return self._context.raw()

    def hexdigest(self) -> str:
        return self._context.hexdigest()


def available() -> bool:
    try:
        _libcrypto()
    except ResumableUnavailable:
        return False
    return True
