"""Who is calling: the JWT authorizer's ``sub`` claim, or the owner of an API key (kept in
SSM Parameter Store and read through a short cache, or given as static hashes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audiolift_core.api_keys import ApiKeyStore, hash_api_key
from audiolift_core.errors import Unauthorized
from audiolift_core.settings import ApiSettings
from starlette.requests import Request


def jwt_subject(event: Mapping[str, Any] | None) -> str | None:
    """The ``sub`` claim API Gateway's JWT authorizer verified (HTTP API payload v2)."""
    if not event:
        return None
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    subject = claims.get("sub")
    return str(subject) if subject else None


def caller_from_headers(
    authorization: str | None, hashes: Mapping[str, str], store: ApiKeyStore | None = None
) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    # Keys are stored only as SHA-256 digests; a lookup by digest leaks nothing usable.
    owner = hashes.get(hash_api_key(token.strip()))
    if owner is None and store is not None:
        owner = store.owner_of(token.strip())
    return owner


def resolve_owner(request: Request, settings: ApiSettings, store: ApiKeyStore | None = None) -> str:
    if settings.auth_mode == "jwt":
        owner = jwt_subject(request.scope.get("aws.event"))
        if owner is None:
            raise Unauthorized("This request carries no verified token.")
        return owner
    authorization = request.headers.get("authorization")
    owner = caller_from_headers(authorization, settings.api_key_hashes, store)
    if owner is None:
        raise Unauthorized("Send a valid API key as 'Authorization: Bearer <key>'.")
    return owner
