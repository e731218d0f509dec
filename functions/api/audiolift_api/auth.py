"""Who is calling: the JWT authorizer's ``sub`` claim, or the owner of an API key."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from audiolift_core.errors import Unauthorized
from audiolift_core.settings import ApiSettings
from starlette.requests import Request


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def jwt_subject(event: Mapping[str, Any] | None) -> str | None:
    """The ``sub`` claim API Gateway's JWT authorizer verified (HTTP API payload v2)."""
    if not event:
        return None
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    subject = claims.get("sub")
    return str(subject) if subject else None


def caller_from_headers(authorization: str | None, hashes: Mapping[str, str]) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    # Keys are stored only as SHA-256 digests; a lookup by digest leaks nothing usable.
    return hashes.get(hash_api_key(token.strip()))


def resolve_owner(request: Request, settings: ApiSettings) -> str:
    if settings.auth_mode == "jwt":
        owner = jwt_subject(request.scope.get("aws.event"))
        if owner is None:
            raise Unauthorized("This request carries no verified token.")
        return owner
    owner = caller_from_headers(request.headers.get("authorization"), settings.api_key_hashes)
    if owner is None:
        raise Unauthorized("Send a valid API key as 'Authorization: Bearer <key>'.")
    return owner
