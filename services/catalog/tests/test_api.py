"""Catalog service against real PostgreSQL and NATS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest

from rateline_catalog.app import MIGRATIONS, create_app
from rateline_catalog.settings import CatalogSettings
from rateline_shared.events.envelope import CloudEvent
from rateline_shared.events.payloads import PlanPublished
from rateline_shared.testing import running_service, service_settings, wait_until

PLAN: dict[str, Any] = {
    "code": "MOBILE-S",
    "name": "Mobile S",
    "currency": "EUR",
    "recurring_fee": "10.00",
    "billing_period": "monthly",
    "rates": [
        {"service": "voice", "unit": "minute", "price": "0.10", "first_increment": 60, "increment": 60},
        {"service": "sms", "unit": "message", "price": "0.05"},
    ],
}


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(CatalogSettings, pg_server, nats_server, test_keys, "catalog")
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


@pytest.fixture(scope="module")
def auth(test_keys) -> dict[str, str]:
    return test_keys.headers("acme", ["catalog:*"])


async def test_create_publishes_plan_and_event(client, auth, nats_server) -> None:
    resp = await client.post("/v1/plans", json=PLAN, headers=auth)
    assert resp.status_code == 201, resp.text
    plan = resp.json()
    assert plan["status"] == "published"
    assert plan["recurring_fee"] == {"amount": "10.00", "currency": "EUR"}
    per_unit = {"pricing": "per_unit", "tiers": [], "package_size": None, "minimum_charge": None, "tariff": None}
    assert plan["rates"] == [
        {"service": "voice", "unit": "minute", "price": "0.10", "first_increment": 60, "increment": 60, **per_unit},
        {"service": "sms", "unit": "message", "price": "0.05", "first_increment": 1, "increment": 1, **per_unit},
    ]
    assert {"id", "code", "name", "currency", "billing_period", "created_at"} <= plan.keys()
    assert plan["product_id"] is None
    current = plan["current_version"]
    assert (current["version"], current["plan_id"], current["billing_timing"]) == (1, plan["id"], "advance")
    assert current["rates"] == plan["rates"] and current["recurring_fee"] == plan["recurring_fee"]
    assert current["effective_from"] == current["published_at"] == plan["published_at"]

    got = await client.get(f"/v1/plans/{plan['id']}", headers=auth)
    assert got.status_code == 200
    assert got.json() == plan

    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("catalog.plan.published", durable="t-observer", stream="CATALOG")

        async def fetch_one() -> list[Any] | None:
            try:
                return await sub.fetch(1, timeout=0.5)  # type: ignore[no-any-return]
            except nats.errors.TimeoutError:
                return None

        (msg,) = await wait_until(fetch_one)
        await msg.ack()
    finally:
        await nc.close()
    event = CloudEvent.model_validate_json(msg.data)
    assert event.type == "catalog.plan.published"
    assert event.tenant == "acme"
    assert event.subject == plan["id"]
    assert msg.headers["Nats-Msg-Id"] == event.id
    payload = PlanPublished.model_validate(event.data)
    assert payload.plan_id == plan["id"]
    assert payload.code == "MOBILE-S" and payload.currency == "EUR"
    assert str(payload.recurring_fee) == "10.00"
    assert [(r.service, str(r.price), r.first_increment, r.increment) for r in payload.rates] == [
        ("voice", "0.10", 60, 60),
        ("sms", "0.05", 1, 1),
    ]
    # Decimal strings on the wire, never JSON numbers.
    raw = json.loads(msg.data)["data"]
    assert raw["recurring_fee"] == "10.00" and raw["rates"][0]["price"] == "0.10"


async def test_duplicate_code_is_409_and_emits_nothing(client, test_keys) -> None:
    h = test_keys.headers("dup", ["catalog:*"])
    first = await client.post("/v1/plans", json={**PLAN, "code": "DUP"}, headers=h)
    assert first.status_code == 201
    again = await client.post("/v1/plans", json={**PLAN, "code": "DUP", "name": "Other"}, headers=h)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["errors"][0]["field"] == "code"
    # The same code in another tenant is fine.
    other = await client.post("/v1/plans", json={**PLAN, "code": "DUP"}, headers=test_keys.headers("dup2", ["catalog:*"]))
    assert other.status_code == 201
    items = (await client.get("/v1/plans", params={"code": "DUP"}, headers=h)).json()["items"]
    assert [p["name"] for p in items] == ["Mobile S"]
    runtime = client.app.state.runtime
    async with runtime.engine.connect() as conn:
        from sqlalchemy import text

        tenants = (await conn.execute(text(
            "SELECT count(*) FROM outbox WHERE payload->>'tenant' = 'dup'"
        ))).scalar_one()
        versions = (await conn.execute(text("SELECT count(*) FROM plan_versions WHERE tenant = 'dup'"))).scalar_one()
    # The relay may already have sent the first plan's two events; never more for the refused one.
    assert tenants <= 2
    assert versions == 1


@pytest.mark.parametrize(
    ("change", "status", "slug", "field"),
    [
        ({"currency": "EUX"}, 422, "validation-error", "currency"),
        ({"recurring_fee": 10.0}, 422, "validation-error", "recurring_fee"),
        ({"recurring_fee": "-1.00"}, 422, "unprocessable", "recurring_fee"),
        ({"tenant": "evil"}, 422, "validation-error", "tenant"),
        ({"status": "draft"}, 422, "validation-error", "status"),
        ({"rates": [{"service": "voice", "unit": "minute", "price": 0.1}]}, 422, "validation-error", "rates.0.price"),
        ({"rates": [{"service": "voice", "unit": "minute", "price": "0.1", "increment": 1.5}]}, 422, "validation-error", "rates.0.increment"),
        ({"rates": [{"service": "voice", "unit": "minute", "price": "0.1", "increment": 0}]}, 422, "unprocessable", "rates.0.increment"),
        ({"rates": [{"service": "voice", "unit": "message", "price": "0.1"}]}, 422, "unprocessable", "rates.0.unit"),
        ({"rates": [{"service": "fax", "unit": "page", "price": "0.1"}]}, 422, "unprocessable", "rates.0.service"),
        ({"rates": [PLAN["rates"][1], PLAN["rates"][1]]}, 422, "unprocessable", "rates.1.service"),
        ({"billing_period": "weekly"}, 422, "unprocessable", "billing_period"),
        ({"billing_timing": "later"}, 422, "unprocessable", "billing_timing"),
        ({"product_id": "no-such-product"}, 422, "unprocessable", "product_id"),
        ({"effective_from": "2030-01-01T00:00:00"}, 422, "unprocessable", "effective_from"),
        ({"rates": [{"service": "voice", "unit": "minute", "pricing": "tariff"}]}, 422, "unprocessable", "rates.0.tariff"),
        ({"allowances": [{"code": "A", "service": "data", "quantity": "1", "unit": "GB"}]}, 422, "unprocessable", "allowances.0.service"),
        ({"spend_cap": {"amount": "0"}}, 422, "unprocessable", "spend_cap.amount"),
        ({"one_time_charges": [{"code": "ACT", "description": "Activation", "amount": 5}]}, 422, "validation-error", "one_time_charges.0.amount"),
    ],
)
async def test_invalid_plans_are_refused_and_nothing_is_written(client, test_keys, change, status, slug, field) -> None:
    h = test_keys.headers("invalid", ["catalog:*"])
    resp = await client.post("/v1/plans", json={**PLAN, "code": "BAD", **change}, headers=h)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/" + slug)
    assert field in [e["field"] for e in body["errors"]]
    assert (await client.get("/v1/plans", headers=h)).json()["items"] == []


async def test_scopes_and_tenant_isolation(client, auth, test_keys) -> None:
    plan = (await client.post("/v1/plans", json={**PLAN, "code": "ISO"}, headers=auth)).json()
    ro = test_keys.headers("acme", ["catalog:read"])
    assert (await client.post("/v1/plans", json={**PLAN, "code": "RO"}, headers=ro)).status_code == 403
    assert (await client.get(f"/v1/plans/{plan['id']}", headers=ro)).status_code == 200
    assert (await client.get("/v1/plans", headers=test_keys.headers("acme", ["usage:read"]))).status_code == 403
    assert (await client.get("/v1/plans")).status_code == 401
    other = test_keys.headers("globex", ["catalog:*"])
    assert (await client.get(f"/v1/plans/{plan['id']}", headers=other)).status_code == 404
    assert (await client.get("/v1/plans", params={"code": "ISO"}, headers=other)).json()["items"] == []


async def test_list_is_paginated_in_creation_order(client, test_keys) -> None:
    h = test_keys.headers("pager", ["catalog:*"])
    for i in range(5):
        r = await client.post("/v1/plans", json={**PLAN, "code": f"P{i}", "rates": []}, headers=h)
        assert r.status_code == 201
    codes, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/plans", params=params, headers=h)).json()
        codes += [p["code"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert codes == [f"P{i}" for i in range(5)]
    bad = await client.get("/v1/plans", params={"cursor": "!!"}, headers=h)
    assert bad.status_code == 400
