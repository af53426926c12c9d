"""JWT verification against the gateway's JWKS, and scope checks for endpoints.

JOSE is done with joserfc, the successor its authors (Authlib) point to from ``authlib.jose``.

The gateway signs access tokens (RS256); every service verifies them again, so a service
reached without the gateway still enforces tenant and scope. Claims used:
``sub`` (client id), ``tenant``, ``scope`` (space separated), ``iss``, ``aud``, ``exp``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from rateline_shared.errors import Forbidden, ServiceUnavailable, Unauthorized

SCOPE_AREAS = ("customers", "catalog", "usage", "invoices", "payments", "webhooks")
ADMIN_SCOPE = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the OAuth client, its tenant and its scopes."""

    client_id: str
    tenant: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has_scope(self, required: str) -> bool:
        """``customers:write`` is granted by itself, by ``customers:*`` and by ``admin``."""
        if ADMIN_SCOPE in self.scopes or required in self.scopes:
            return True
        area = required.split(":", 1)[0]
        return f"{area}:*" in self.scopes


def scope_granted(scopes: frozenset[str], required: str) -> bool:
    return Principal("", "", scopes).has_scope(required)


class JwksVerifier:
    """Verifies bearer tokens; keys come from an inline JWKS or the gateway's JWKS URL."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks_json: str | None = None,
        refresh_after: float = 300.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._refresh_after = refresh_after
        self._lock = asyncio.Lock()
        if jwks_json:
            self._keys = KeySet.import_key_set(json.loads(jwks_json))
            self._fetched_at = float("inf")

    async def _key_set(self, force: bool = False) -> KeySet:
        stale = time.monotonic() - self._fetched_at > self._refresh_after
        if self._keys is not None and not stale and not force:
            return self._keys
        if self.jwks_url is None or self._fetched_at == float("inf"):
            if self._keys is None:
                raise ServiceUnavailable("no signing keys configured")
            return self._keys
        async with self._lock:
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    resp = await client.get(self.jwks_url)
                    resp.raise_for_status()
                self._keys = KeySet.import_key_set(resp.json())
                self._fetched_at = time.monotonic()
            except (httpx.HTTPError, ValueError) as exc:
                if self._keys is None:
                    raise ServiceUnavailable(f"cannot fetch signing keys: {exc}") from exc
        assert self._keys is not None
        return self._keys

    async def verify(self, token: str) -> Principal:
        keys = await self._key_set()
        claims: dict[str, Any] | None = None
        for attempt in range(2):
            try:
                claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
                break
            except JoseError as exc:
                unknown_key = "key" in type(exc).__name__.lower() or "kid" in str(exc).lower()
                if attempt == 0 and unknown_key and self.jwks_url:
                    keys = await self._key_set(force=True)
                    continue
                raise Unauthorized(f"the bearer token is not valid: {exc.error}") from exc
            except ValueError as exc:
                raise Unauthorized("the bearer token is not valid") from exc
        assert claims is not None
        try:
            jwt.JWTClaimsRegistry(
                now=int(time.time()), leeway=5, exp={"essential": True}
            ).validate(claims)
        except JoseError as exc:
            raise Unauthorized(f"the bearer token is not valid: {exc.error}") from exc
        if claims.get("iss") != self.issuer:
            raise Unauthorized("the bearer token was not issued by this gateway")
        aud = claims.get("aud")
        if aud != self.audience and not (isinstance(aud, list) and self.audience in aud):
            raise Unauthorized("the bearer token is not meant for this API")
        tenant = claims.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            raise Unauthorized("the bearer token carries no tenant")
        scope = claims.get("scope", "")
        return Principal(
            client_id=str(claims.get("sub", "")),
            tenant=tenant,
            scopes=frozenset(str(scope).split()),
        )


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    return token.strip()


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """Endpoint dependency: a verified principal holding ``scope`` (401/403 otherwise)."""

    async def dependency(request: Request) -> Principal:
        verifier: JwksVerifier = request.app.state.verifier
        principal = await verifier.verify(bearer_token(request))
        if not principal.has_scope(scope):
            raise Forbidden(f"this operation needs the scope {scope!r}")
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_').replace('*', 'any')}"
    return dependency


def claims_for(
    *, client_id: str, tenant: str, scopes: list[str], issuer: str, audience: str, ttl: int
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "tenant": tenant,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
