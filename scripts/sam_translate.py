"""Expand template.yaml's SAM transform into plain CloudFormation, offline, and check the
result for dependency cycles.

cfn-lint no longer expands SAM, so a cycle made by SAM's generated resources (a function's
role referencing the bucket while the bucket's notification needs something of the
function's, a queue policy naming the bucket that depends on it ...) passes cfn-lint on the
source and fails only at deploy. This script writes the translated template for cfn-lint to
check, and looks for cycles itself as well.

    python scripts/sam_translate.py template.yaml -o .aws-sam/translated.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def translate(sam_template: Mapping[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    """SAM -> CloudFormation with aws-sam-translator, as `sam deploy` would (but offline:
    managed policies are referenced by ARN in this template, so no IAM lookup is needed)."""
    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        boto_session=boto3.session.Session(region_name=region),
    )
    template = json.loads(json.dumps(sam_template))  # the translator mutates its input
    _as_packaged(template)
    result: dict[str, Any] = translator.translate(
        template, parameter_values={}, get_managed_policy_map=lambda: {}
    )
    return result


# What `sam package` replaces with S3 locations after uploading the build output.
_PACKAGED_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


def _as_packaged(template: dict[str, Any]) -> None:
    """Local code paths -> S3 URIs, as after `sam package` (the translator wants those)."""
    for logical_id, resource in (template.get("Resources") or {}).items():
        key = _PACKAGED_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.get("Properties") or {}
        if key and isinstance(properties.get(key), str) and "://" not in properties[key]:
            properties[key] = f"s3://packaged-artifacts/{logical_id}.zip"


def _references(value: Any) -> Iterator[str]:
    """Logical ids (or parameter names) that a property value refers to."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                target = arg.split(".", 1)[0] if isinstance(arg, str) else arg[0]
                if isinstance(target, str):
                    yield target
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                for name in _SUB_VARIABLE.findall(text):
                    name = name.split(".", 1)[0]
                    if name not in variables:
                        yield name
                yield from _references(variables)
            else:
                yield from _references(arg)


def dependency_graph(template: Mapping[str, Any]) -> dict[str, set[str]]:
    """resource -> the resources it depends on (Ref, GetAtt, Sub, DependsOn)."""
    resources: Mapping[str, Any] = template.get("Resources") or {}
    graph: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        edges = {ref for ref in _references(resource) if ref in resources}
        depends_on = resource.get("DependsOn") or []
        edges.update([depends_on] if isinstance(depends_on, str) else depends_on)
        graph[logical_id] = edges
    return graph


def find_cycles(template: Mapping[str, Any]) -> list[list[str]]:
    """Strongly connected components of more than one resource, or a resource that depends
    on itself: each is a cycle CloudFormation refuses to deploy."""
    graph = dependency_graph(template)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's algorithm; templates are small
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path, nargs="?", default=Path("template.yaml"))
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)

    translated = translate(yaml_parse(args.template.read_text()), region=args.region)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(translated, indent=1, sort_keys=True))
    cycles = find_cycles(translated)
    for cycle in cycles:
        print(f"dependency cycle among: {', '.join(cycle)}", file=sys.stderr)
    if cycles:
        return 1
    resources = len(translated.get("Resources", {}))
    print(f"translated {args.template} -> {args.output}: {resources} resources, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
