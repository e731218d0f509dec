"""Run a built Lambda handler on events, from the `sam build` output alone.

Started by the smoke tests as ``python -I -S -B invoke_built.py SPEC.json``: ``-I`` ignores
PYTHONPATH and the user's site, ``-S`` skips site-packages, so the interpreter sees its
standard library and nothing else. This script then puts the function's directory and its
layers' ``python/`` directories on ``sys.path`` in Lambda's order, imports the handler,
invokes it on each event, and writes the responses plus where every imported module came
from (so the test can prove that nothing leaked in from the development environment).

Standard library only: it runs before anything else is importable. The Lambda context is
the devstack's, loaded from its file once the layers (Powertools) are on ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import sysconfig
import traceback
from pathlib import Path
from typing import Any


def load_context_class(path: str) -> Any:
    """The devstack's ``LocalLambdaContext``, from its file (the devstack is not on this
    interpreter's path; Powertools, which it subclasses, comes from the built layer)."""
    spec = importlib.util.spec_from_file_location("audiolift_lambda_context", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LocalLambdaContext


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
        context_class = load_context_class(spec["context_module"])
        for event in spec["events"]:
            context = context_class(
                spec["function_name"], timeout_seconds=spec.get("timeout_seconds", 60)
            )
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
