"""Read one environment of samconfig.toml for the Makefile's build and deploy targets.

    python scripts/samconfig_env.py dev stack_name      -> audiolift-dev ("" when none)
    python scripts/samconfig_env.py prod parameter Architecture   -> arm64 (or the default)

``dev`` is samconfig's ``default`` environment. A missing value prints an empty line, so
that the caller can tell "not configured yet" (and deploy guided) from a value.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def config_env(env: str) -> str:
    return "default" if env == "dev" else env


def section(config: dict[str, Any], env: str, command: str) -> dict[str, Any]:
    parameters: dict[str, Any] = (
        config.get(config_env(env), {}).get(command, {}).get("parameters", {})
    )
    return parameters


def stack_name(config: dict[str, Any], env: str) -> str:
    for command in ("deploy", "global"):
        name = section(config, env, command).get("stack_name")
        if name:
            return str(name)
    return ""


def parameter(config: dict[str, Any], env: str, name: str) -> str:
    overrides = section(config, env, "deploy").get("parameter_overrides", [])
    if isinstance(overrides, str):
        overrides = overrides.split()
    for override in overrides:
        key, _, value = str(override).partition("=")
        if key == name:
            return value.strip('"')
    return ""


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("stack_name", "parameter", "config_env"):
        print(__doc__, file=sys.stderr)
        return 2
    env, what = argv[0], argv[1]
    path = ROOT / "samconfig.toml"
    config = tomllib.loads(path.read_text()) if path.exists() else {}
    if what == "stack_name":
        print(stack_name(config, env))
    elif what == "config_env":
        print(config_env(env))
    else:
        print(parameter(config, env, argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
