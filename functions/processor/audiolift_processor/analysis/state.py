"""A saved analysis state as bytes, and back: an ``.npz`` archive (no pickle) holding
the state's arrays, and its other values as JSON, exact for every float (repr
round-trips, and JSON's Infinity stands for the infinities the extremes start at)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

_ARRAY = "__array__"


def dumps(state: dict[str, Any]) -> bytes:
    arrays: dict[str, np.ndarray] = {}

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            name = f"array{len(arrays)}"
            arrays[name] = value
            return {_ARRAY: name}
        if isinstance(value, dict):
            return {str(key): plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    meta = json.dumps(plain(state)).encode()
    buffer = io.BytesIO()
    arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def loads(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())

    def restored(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_ARRAY}:
                return arrays[value[_ARRAY]]
            return {key: restored(item) for key, item in value.items()}
        if isinstance(value, list):
            return [restored(item) for item in value]
        return value

    result: dict[str, Any] = restored(meta)
    return result
