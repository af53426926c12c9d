"""Token issuing, JWKS, signing keys, the admin API and the create-client CLI, against a real
PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import func, select, update

from rateline_gateway.app import MIGRATIONS, create_app
from rateline_gateway.cli import create_client
from rateline_gateway.db import oauth_clients, signing_keys
from rateline_gateway.domain.scopes import ScopeError
from rateline_gateway.keys import ensure_signing_keys
from rateline_gateway.settings import GatewaySettings
from rateline_shared.auth import JwksVerifier
from rateline_shared.db import create_engine, session_factory, unit_of_work
from rateline_shared.testing import running_service

CLAIMS = {"iss", "aud", "sub", "tenant", "scope", "iat", "nbf", "exp"}


@pytest.fixture(scope="module")
async def env(pg_server) -> AsyncIterator[tuple[GatewaySettings, httpx.AsyncClient]]:
    from rateline_shared.testing import fresh_database

    settings = GatewaySettings(
        database_url=fresh_database(pg_server, "gateway"), log_json=False, token_ttl=900
    )
    async with running_service(create_app, settings, MIGRATIONS) as client:
        yield settings, client


@pytest.fixture(scope="module")
def settings(env) -> GatewaySettings:
    return env[0]


@pytest.fixture(scope="module")
def client(env) -> httpx.AsyncClient:
    return env[1]


@pytest.fixture(scope="module")
async def acme_admin(settings) -> dict[str, Any]:
    return await create_client(
        settings, tenant="acme", scopes="admin", name="acme admin",
        client_id="acme-admin", client_secret="acme-admin-secret",
    )


@pytest.fixture(scope="module")
async def acme_crm(settings) -> dict[str, Any]:
    return await create_client(settings, tenant="acme", scopes="customers:* usage:read", name="crm")


def token(client_id: str, secret: str, **form: str) -> dict[str, Any]:
    return {"data": {"grant_type": "client_credentials", **form}, "auth": (client_id, secret)}


async def jwks_verifier(client: httpx.AsyncClient, settings: GatewaySettings) -> JwksVerifier:
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status_code == 200
    return JwksVerifier(
        issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_json=resp.text
    )


# -- token endpoint -----------------------------------------------------------------------


async def test_client_secret_basic_issues_a_verifiable_token(client, settings, acme_crm) -> None:
    resp = await client.post("/oauth/token", **token(acme_crm["client_id"], acme_crm["client_secret"]))
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "customers:* usage:read"

    principal = await (await jwks_verifier(client, settings)).verify(body["access_token"])
    assert principal.client_id == acme_crm["client_id"]
    assert principal.tenant == "acme"
    assert principal.scopes == {"customers:*", "usage:read"}

    keys = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    decoded = jwt.decode(body["access_token"], keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] == keys.keys[0].kid
    assert set(decoded.claims) == CLAIMS
    assert decoded.claims["iss"] == "rateline-gateway"
    assert decoded.claims["aud"] == "rateline"
    assert decoded.claims["exp"] - decoded.claims["iat"] == 900
    assert decoded.claims["nbf"] == decoded.claims["iat"]


async def test_client_secret_post_issues_a_token(client, acme_crm) -> None:
    resp = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": acme_crm["client_id"],
              "client_secret": acme_crm["client_secret"], "scope": "customers:read"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"] == "customers:read"


@pytest.mark.parametrize(
    ("kind", "auth"),
    [
        ("wrong secret", ("acme-admin", "not-the-secret")),
        ("unknown client", ("nobody-here", "acme-admin-secret")),
    ],
)
async def test_bad_credentials_are_invalid_client_401(client, acme_admin, kind, auth) -> None:
    resp = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert resp.status_code == 401, kind
    assert resp.json()["error"] == "invalid_client"
    assert resp.json()["error_description"]
    assert resp.headers["www-authenticate"].startswith("Basic ")
    assert resp.headers["content-type"].startswith("application/json")


async def test_bad_secret_via_form_is_invalid_client_401(client, acme_admin) -> None:
    resp = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "acme-admin",
              "client_secret": "wrong"},
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert "www-authenticate" in resp.headers


async def test_missing_credentials_are_invalid_client(client) -> None:
    resp = await client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


async def test_malformed_basic_header_is_invalid_client(client) -> None:
    resp = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


async def test_unsupported_grant_type_is_400(client, acme_admin) -> None:
    resp = await client.post(
        "/oauth/token", data={"grant_type": "password", "username": "u", "password": "p"},
        auth=("acme-admin", "acme-admin-secret"),
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "unsupported_grant_type"
    assert "password" in resp.json()["error_description"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": {"scope": "admin"}}, "invalid_request"),  # no grant_type
        ({"json": {"grant_type": "client_credentials"}}, "invalid_request"),  # not a form
        ({"content": b"grant_type=client_credentials&grant_type=client_credentials",
          "headers": {"content-type": "application/x-www-form-urlencoded"}}, "invalid_request"),
    ],
)
async def test_malformed_requests_are_invalid_request(client, acme_admin, kwargs, expected) -> None:
    resp = await client.post("/oauth/token", auth=("acme-admin", "acme-admin-secret"), **kwargs)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == expected


async def test_two_authentication_methods_are_refused(client, acme_admin) -> None:
    resp = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "acme-admin",
              "client_secret": "acme-admin-secret"},
        auth=("acme-admin", "acme-admin-secret"),
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        ("customers:read", "customers:read"),
        ("customers:write usage:read", "customers:write usage:read"),
        ("customers:*", "customers:*"),
        ("", "customers:* usage:read"),  # blank = omitted (RFC 6749 §3.2)
    ],
)
async def test_scope_subset_is_granted(client, acme_crm, scope, granted) -> None:
    resp = await client.post(
        "/oauth/token", **token(acme_crm["client_id"], acme_crm["client_secret"], scope=scope)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"] == granted


@pytest.mark.parametrize("scope", ["invoices:read", "usage:write", "admin", "customers:read bogus"])
async def test_scope_beyond_the_client_is_invalid_scope(client, acme_crm, scope) -> None:
    resp = await client.post(
        "/oauth/token", **token(acme_crm["client_id"], acme_crm["client_secret"], scope=scope)
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_scope"


async def test_disabled_client_gets_no_token(client, settings) -> None:
    made = await create_client(settings, tenant="acme", scopes="usage:read", name="old")
    engine = create_engine(settings.database_url, 1)
    try:
        async with unit_of_work(session_factory(engine)) as session:
            await session.execute(
                update(oauth_clients)
                .where(oauth_clients.c.client_id == made["client_id"])
                .values(disabled=True)
            )
    finally:
        await engine.dispose()
    resp = await client.post("/oauth/token", **token(made["client_id"], made["client_secret"]))
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


async def test_expired_token_is_rejected_by_the_verifier(client, settings, acme_crm) -> None:
    keys = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    assert len(keys.keys) == 1
    app = client.app  # type: ignore[attr-defined]
    from rateline_shared.auth import claims_for

    stale = app.state.keys.sign(
        claims_for(client_id="x", tenant="acme", scopes=["admin"], issuer=settings.jwt_issuer,
                   audience=settings.jwt_audience, ttl=-60)
    )
    resp = await client.get("/v1/accounts", headers={"Authorization": f"Bearer {stale}"})
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"


# -- signing keys -------------------------------------------------------------------------


async def test_two_replicas_starting_together_create_one_key(pg_server, migrate) -> None:
    from rateline_shared.testing import fresh_database

    settings = GatewaySettings(database_url=fresh_database(pg_server, "gwkeys"), log_json=False)
    await migrate(settings)
    engines = [create_engine(settings.database_url, 2) for _ in range(2)]
    try:
        first, second = await asyncio.gather(
            *(ensure_signing_keys(session_factory(e)) for e in engines)
        )
        assert first.kid == second.kid
        assert first.jwks() == second.jwks()
        async with engines[0].connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(signing_keys))).scalar()
        assert count == 1
        again = await ensure_signing_keys(session_factory(engines[1]))
        assert again.kid == first.kid
    finally:
        for engine in engines:
            await engine.dispose()


async def test_jwks_publishes_public_parts_only(client) -> None:
    resp = await client.get("/.well-known/jwks.json")
    key = resp.json()["keys"][0]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert {"n", "e", "kid"} <= set(key)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


async def test_a_restarted_gateway_keeps_its_key(client, settings) -> None:
    before = (await client.get("/.well-known/jwks.json")).json()
    async with running_service(create_app, settings, MIGRATIONS) as second:
        assert (await second.get("/.well-known/jwks.json")).json() == before


# -- admin API ----------------------------------------------------------------------------


async def test_admin_creates_and_lists_clients(client, acme_admin, token_for, settings) -> None:
    admin = {"Authorization": "Bearer " + await token_for(client, "acme-admin", "acme-admin-secret")}
    resp = await client.post(
        "/v1/oauth-clients", json={"name": "billing bot", "scopes": ["invoices:*"]}, headers=admin
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store"
    created = resp.json()
    assert created["tenant"] == "acme"
    assert created["scopes"] == ["invoices:*"]
    assert created["client_secret"]

    issued = await token_for(client, created["client_id"], created["client_secret"])
    principal = await (await jwks_verifier(client, settings)).verify(issued)
    assert principal.scopes == {"invoices:*"}

    await create_client(settings, tenant="globex", scopes="admin", name="other tenant")
    listing = await client.get("/v1/oauth-clients", params={"limit": 500}, headers=admin)
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert created["client_id"] in [c["client_id"] for c in items]
    assert all(c["tenant"] == "acme" for c in items)
    assert all("client_secret" not in c and "secret_hash" not in c for c in items)
    page = await client.get("/v1/oauth-clients", params={"limit": 1}, headers=admin)
    assert len(page.json()["items"]) == 1 and page.json()["next_cursor"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "scopes": ["admin"], "tenant": "globex"}, 403),
        ({"name": "x", "scopes": ["root"]}, 422),
        ({"name": "x", "scopes": []}, 422),
        ({"name": "x", "scopes": ["admin"], "secret_hash": "mine"}, 422),
    ],
)
async def test_admin_api_refuses_bad_input(client, acme_admin, token_for, body, status) -> None:
    admin = {"Authorization": "Bearer " + await token_for(client, "acme-admin", "acme-admin-secret")}
    resp = await client.post("/v1/oauth-clients", json=body, headers=admin)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"


async def test_admin_api_needs_the_admin_scope(client, acme_crm, token_for) -> None:
    crm = {"Authorization": "Bearer " + await token_for(
        client, acme_crm["client_id"], acme_crm["client_secret"])}
    assert (await client.get("/v1/oauth-clients", headers=crm)).status_code == 403
    anonymous = await client.get("/v1/oauth-clients")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"


# -- create-client CLI --------------------------------------------------------------------


async def test_create_client_inserts_then_updates(client, settings, token_for) -> None:
    made = await create_client(
        settings, tenant="initech", scopes="customers:read, usage:*", name="dev",
        client_id="initech-dev", client_secret="first-secret",
    )
    assert made == {"client_id": "initech-dev", "client_secret": "first-secret",
                    "tenant": "initech", "scopes": ["customers:read", "usage:*"]}
    await token_for(client, "initech-dev", "first-secret")

    again = await create_client(
        settings, tenant="initech", scopes="admin", name="dev",
        client_id="initech-dev", client_secret="second-secret",
    )
    assert again["scopes"] == ["admin"]
    old = await client.post("/oauth/token", **token("initech-dev", "first-secret"))
    assert old.status_code == 401
    new = await client.post("/oauth/token", **token("initech-dev", "second-secret"))
    assert new.json()["scope"] == "admin"


async def test_create_client_refuses_unknown_scopes(settings) -> None:
    with pytest.raises(ScopeError):
        await create_client(settings, tenant="acme", scopes="root", name="x")


def run_cli(settings: GatewaySettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RATELINE_GATEWAY_DATABASE_URL": settings.database_url,
           "RATELINE_GATEWAY_LOG_JSON": "false"}
    return subprocess.run(
        [sys.executable, "-m", "rateline_gateway", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


async def test_cli_entry_point_prints_the_client_as_json(client, settings) -> None:
    result = await asyncio.to_thread(
        run_cli, settings, "create-client", "--tenant", "hooli", "--scopes", "admin",
        "--name", "dev stack", "--client-id", "hooli-admin", "--client-secret", "hooli-secret",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "client_id": "hooli-admin", "client_secret": "hooli-secret",
        "tenant": "hooli", "scopes": ["admin"],
    }
    resp = await client.post("/oauth/token", **token("hooli-admin", "hooli-secret"))
    assert resp.status_code == 200
    bad = await asyncio.to_thread(
        run_cli, settings, "create-client", "--tenant", "hooli", "--scopes", "root", "--name", "x"
    )
    assert bad.returncode == 2
    assert "unknown scope" in bad.stderr


# -- ops ----------------------------------------------------------------------------------


async def test_health_readiness_metrics_and_correlation(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "signing_keys": "ok"}
    metrics = await client.get("/metrics")
    assert "rateline_http_requests_total" in metrics.text
    echoed = await client.get("/healthz", headers={"X-Correlation-ID": "cid-123"})
    assert echoed.headers["x-correlation-id"] == "cid-123"
