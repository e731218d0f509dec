"""Sizes of the built functions against Lambda's deployment limits, from `sam build`'s
output (its template names each function's and layer's built directory).

Lambda refuses a function whose code and layers exceed 250 MB unzipped (262,144,000 bytes)
together, and a function with more than 5 layers. Zipped sizes are measured too (deflate,
level 6 as `sam package` uses): they are what S3 stores and what a cold start downloads.

    python scripts/built_sizes.py .aws-sam/build/template.yaml [--parameter Architecture=arm64]
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

UNZIPPED_LIMIT_BYTES = 262_144_000
MAX_LAYERS = 5
MB = 1_000_000


class _CountingWriter(io.RawIOBase):
    """A sink that only counts: zipped sizes without writing the archives anywhere."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        self.size += n
        return n


def tree_sizes(directory: Path, *, zipped: bool) -> tuple[int, int]:
    """(unzipped bytes, zipped bytes or 0) of every file under ``directory``."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    unzipped = sum(p.stat().st_size for p in files)
    if not zipped:
        return unzipped, 0
    sink = _CountingWriter()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            archive.write(path, path.relative_to(directory).as_posix())
    return unzipped, sink.size


def function_sizes(template_path: Path, *, zipped: bool = True) -> list[dict[str, Any]]:
    """Per function: its own code, each of its layers, the total unzipped."""
    template = yaml_parse(template_path.read_text())
    base = template_path.parent
    resources = template["Resources"]
    measured: dict[str, tuple[int, int]] = {}

    def measure(logical_id: str, key: str) -> tuple[int, int]:
        if logical_id not in measured:
            uri = resources[logical_id]["Properties"][key]
            measured[logical_id] = tree_sizes(base / uri, zipped=zipped)
        return measured[logical_id]

    report = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        layers = [ref["Ref"] for ref in resource["Properties"].get("Layers", []) if "Ref" in ref]
        parts = {logical_id: measure(logical_id, "CodeUri")}
        parts.update({layer: measure(layer, "ContentUri") for layer in layers})
        report.append(
            {
                "function": logical_id,
                "parts": parts,
                "layers": len(resource["Properties"].get("Layers", [])),
                "unzipped": sum(u for u, _ in parts.values()),
            }
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("--parameter", action="append", default=[], help="shown in the report")
    parser.add_argument("--no-zip", action="store_true", help="unzipped sizes only (faster)")
    args = parser.parse_args(argv)
    failures = []
    label = " ".join(args.parameter)
    for entry in function_sizes(args.template, zipped=not args.no_zip):
        print(f"{entry['function']} {label}".rstrip())
        for name, (unzipped, zipped) in entry["parts"].items():
            zipped_text = f", {zipped / MB:6.1f} MB zipped" if zipped else ""
            print(f"  {name:<22} {unzipped / MB:6.1f} MB unzipped{zipped_text}")
        total = entry["unzipped"]
        print(f"  {'total':<22} {total / MB:6.1f} MB of {UNZIPPED_LIMIT_BYTES / MB:.1f} MB")
        if total > UNZIPPED_LIMIT_BYTES:
            failures.append(f"{entry['function']}: {total} bytes unzipped")
        if entry["layers"] > MAX_LAYERS:
            failures.append(f"{entry['function']}: {entry['layers']} layers")
    for failure in failures:
        print(f"over Lambda's limit: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
