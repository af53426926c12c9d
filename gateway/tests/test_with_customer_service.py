"""The real customer service behind the gateway: it fetches the gateway's JWKS over HTTP,
accepts tokens the gateway issued, enforces scopes and tenants itself, and its OpenAPI
document shows up in the merged one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from rateline_customer.app import MIGRATIONS as CUSTOMER_MIGRATIONS
from rateline_customer.app import create_app as create_customer_app
from rateline_customer.settings import CustomerSettings
from rateline_gateway.app import create_app
from rateline_gateway.cli import create_client
from rateline_shared.engines import free_port
from rateline_shared.migrations import upgrade_async
from rateline_shared.testing import fresh_database


@dataclass
class Env:
    http: httpx.AsyncClient
    writer: dict[str, str]
    reader_other_area: dict[str, str]
    other_tenant: dict[str, str]


@pytest.fixture(scope="module")
async def env(pg_server, nats_server, gateway_settings, serve, migrate, token_for) -> AsyncIterator[Env]:
    customer_port = free_port()
    settings = gateway_settings(customer_url=f"http://127.0.0.1:{customer_port}")
    await migrate(settings)
    async with serve(create_app(settings)) as gateway_url:
        customer_settings = CustomerSettings(
            database_url=fresh_database(pg_server, "customer"),
            nats_url=nats_server.url,
            jwks_url=f"{gateway_url}/.well-known/jwks.json",
            log_json=False,
        )
        await upgrade_async(CUSTOMER_MIGRATIONS, customer_settings.database_url)
        async with (
            serve(create_customer_app(customer_settings), port=customer_port),
            httpx.AsyncClient(base_url=gateway_url, timeout=10) as http,
        ):
            async def bearer(tenant: str, scopes: str) -> dict[str, str]:
                made = await create_client(settings, tenant=tenant, scopes=scopes, name=scopes)
                token = await token_for(http, made["client_id"], made["client_secret"])
                return {"Authorization": f"Bearer {token}"}

            yield Env(
                http,
                writer=await bearer("acme", "customers:*"),
                reader_other_area=await bearer("acme", "catalog:read"),
                other_tenant=await bearer("globex", "customers:*"),
            )


async def test_account_round_trip_through_the_gateway(env: Env) -> None:
    created = await env.http.post(
        "/v1/accounts",
        json={"name": "Anna", "currency": "EUR", "timezone": "Europe/Berlin"},
        headers={**env.writer, "X-Correlation-ID": "through-gw"},
    )
    assert created.status_code == 201, created.text
    assert created.headers.get_list("x-correlation-id") == ["through-gw"]
    account = created.json()
    fetched = await env.http.get(f"/v1/accounts/{account['id']}", headers=env.writer)
    assert fetched.status_code == 200
    assert fetched.json() == account

    # Scopes and tenants are the service's business: 403 and 404 come from it.
    forbidden = await env.http.get(f"/v1/accounts/{account['id']}", headers=env.reader_other_area)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    hidden = await env.http.get(f"/v1/accounts/{account['id']}", headers=env.other_tenant)
    assert hidden.status_code == 404
    invalid = await env.http.post("/v1/accounts", json={"name": "x"}, headers=env.writer)
    assert invalid.status_code == 422
    assert invalid.json()["errors"]


async def test_merged_openapi_contains_the_customer_service(env: Env) -> None:
    doc = (await env.http.get("/openapi.json")).json()
    assert {"/v1/accounts", "/v1/accounts/{account_id}", "/v1/subscriptions"} <= set(doc["paths"])
    assert "customer" not in doc["info"].get("x-rateline-missing", [])
    create = doc["paths"]["/v1/accounts"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    assert create["security"] == [{"OAuth2ClientCredentials": []}]

