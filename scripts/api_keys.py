#!/usr/bin/env python3
"""Add, revoke and list audiolift API keys in SSM Parameter Store (no redeploy needed: the
API sees a change within its cache time, at most a minute).

    python scripts/api_keys.py --path /audiolift/dev/api-keys add --owner alice
    python scripts/api_keys.py --path /audiolift/dev/api-keys list
    python scripts/api_keys.py --path /audiolift/dev/api-keys revoke KEY_ID
    python scripts/api_keys.py --stack-file .state/stack.json list     # the local stack

The path is the stack's ``ApiKeysPath`` output (also ``API_KEYS_PARAMETER`` in the API's
environment); ``--path`` defaults to $API_KEYS_PARAMETER. A new key is printed once; only
its SHA-256 digest is stored. Credentials and region come from boto3's usual sources.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="api_keys.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--path",
        default=os.environ.get("API_KEYS_PARAMETER", ""),
        help="SSM path of the keys (default: $API_KEYS_PARAMETER)",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    parser.add_argument(
        "--stack-file",
        type=Path,
        default=None,
        help="a local stack's stack.json: its moto endpoint and keys path",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="make a new key for an owner; prints it once")
    add.add_argument("--owner", required=True, help="who the key's jobs belong to")
    revoke = commands.add_parser("revoke", help="delete a key (effective within a minute)")
    revoke.add_argument("key_id", help="the key's id, as 'list' shows it")
    commands.add_parser("list", help="the stored keys (ids, owners, dates; never the keys)")
    return parser


def _client(args: argparse.Namespace) -> tuple[SSMClient, str]:
    import boto3

    path: str = args.path
    kwargs: dict[str, Any] = {}
    if args.region:
        kwargs["region_name"] = args.region
    if args.stack_file is not None:
        info = json.loads(args.stack_file.read_text())
        path = path or str(info.get("api_keys_parameter", ""))
        kwargs.update(
            endpoint_url=info["aws_endpoint"],
            region_name=info["region"],
            aws_access_key_id=info["aws_access_key_id"],
            aws_secret_access_key=info["aws_secret_access_key"],
        )
    if not path:
        raise SystemExit("Give --path (the stack's ApiKeysPath output) or set API_KEYS_PARAMETER.")
    return boto3.client("ssm", **kwargs), path


def main(argv: Sequence[str] | None = None, *, ssm: SSMClient | None = None) -> int:
    from audiolift_core.api_keys import ApiKeyStore
    from audiolift_core.errors import AudioliftError

    args = _parser().parse_args(argv)
    if ssm is None:
        ssm, path = _client(args)
    else:
        path = args.path
    try:
        store = ApiKeyStore(ssm, path)
        if args.command == "add":
            record, key = store.add(args.owner)
            if args.json:
                print(json.dumps({"key_id": record.key_id, "owner": record.owner, "key": key}))
            else:
                print(f"key id:  {record.key_id}\nowner:   {record.owner}\nAPI key: {key}")
                print("Keep the key now: it is not stored and cannot be shown again.")
        elif args.command == "revoke":
            store.revoke(args.key_id)
            print(f"Revoked {args.key_id}; the API refuses it within a minute.")
        else:
            records = store.records()
            if args.json:
                print(json.dumps([dataclasses.asdict(r) for r in records]))
            else:
                for r in records:
                    print(f"{r.key_id}  {r.created_at:<25}  {r.owner}")
                if not records:
                    print(f"No API keys under {path}.")
    except AudioliftError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Runnable from a checkout without installing the layer.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "core"))
    raise SystemExit(main())
