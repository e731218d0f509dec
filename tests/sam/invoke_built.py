"""Run a built Lambda handler on events, from the `sam build` output alone.

Started by the smoke tests as ``python -I -S -B invoke_built.py SPEC.json``: ``-I`` ignores
PYTHONPATH and the user's site, ``-S`` skips site-packages, so the interpreter sees its
standard library and nothing else. This script then puts the function's directory and its
layers' ``python/`` directories on ``sys.path`` in Lambda's order, imports the handler,
invokes it on each event, and writes the responses plus where every imported module came
from (so the test can prove that nothing leaked in from the development environment).

Standard library only: it runs before anything else is importable.
"""

from __future__ import annotations

import importlib
import json
import sys
import sysconfig
import time
import traceback
from pathlib import Path
from typing import Any


class FakeLambdaContext:
    """The attributes Lambda's context object has, and Powertools reads."""

    def __init__(self, function_name: str, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.aws_request_id = "00000000-0000-4000-8000-000000000000"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/11/22/[$LATEST]smoke"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def module_origins() -> dict[str, str]:
    origins = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path:
            origins[name] = str(Path(path).resolve())
    return origins


def loaded_shared_libraries(fragment: str) -> list[str]:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    return sorted({line.split()[-1] for line in maps.splitlines() if fragment in line})


def main() -> int:
    spec: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text())
    # Lambda's order: the function's code, then the layers' python/ directories.
    sys.path[:0] = spec["paths"]
    out: dict[str, Any] = {"responses": [], "errors": []}
    try:
        module_name, attribute = spec["handler"].rsplit(".", 1)
        handler = getattr(importlib.import_module(module_name), attribute)
        for event in spec["events"]:
            context = FakeLambdaContext(spec["function_name"], spec.get("timeout_seconds", 60))
            out["responses"].append(handler(event, context))
    except BaseException:  # reported to the test, which fails with the traceback
        out["errors"].append(traceback.format_exc())
    for probe in spec.get("must_not_import", []):
        try:
            importlib.import_module(probe)
            out["errors"].append(f"{probe} is importable but must not be")
        except ImportError:
            pass
    out["modules"] = module_origins()
    out["stdlib"] = sorted(
        {str(Path(p).resolve()) for k, p in sysconfig.get_paths().items() if "stdlib" in k}
    )
    out["sys_path"] = sys.path
    out["libsndfile"] = loaded_shared_libraries("libsndfile")
    Path(spec["output"]).write_text(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
