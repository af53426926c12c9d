"""Customer service against real PostgreSQL and NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import nats
import pytest

from rateline_customer.app import MIGRATIONS, create_app
from rateline_customer.settings import CustomerSettings
from rateline_shared.events import new_event
from rateline_shared.events.payloads import PlanPublished
from rateline_shared.testing import running_service, service_settings, wait_until


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(CustomerSettings, pg_server, nats_server, test_keys, "customer")
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


@pytest.fixture(scope="module")
def auth(test_keys) -> dict[str, str]:
    return test_keys.headers("acme", ["customers:*"])


async def publish_plan(client: httpx.AsyncClient, plan_id: str, currency: str) -> None:
    """Play the catalog: put a plan.published event on the CATALOG stream."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    event = new_event(
        service="catalog", type="catalog.plan.published", tenant="acme", subject=plan_id,
        data=PlanPublished(
            plan_id=plan_id, code=f"P-{plan_id[:4]}", name="Plan", currency=currency,
            recurring_fee="10.00", billing_period="monthly", rates=[],
            published_at=datetime.now(UTC),
        ),
    )
    await runtime.js.publish(event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})


async def test_account_line_subscription_flow_publishes_events(client, auth, nats_server) -> None:
    resp = await client.post(
        "/v1/accounts",
        json={"name": "Anna", "currency": "EUR", "timezone": "Europe/Berlin", "bill_cycle_day": 1},
        headers=auth,
    )
    assert resp.status_code == 201, resp.text
    account = resp.json()
    line = await client.post(f"/v1/accounts/{account['id']}/lines", json={"msisdn": "0171 1234567"}, headers=auth)
    assert line.status_code == 201, line.text
    assert line.json()["msisdn"] == "+491711234567"

    await publish_plan(client, "11111111-aaaa-bbbb-cccc-000000000001", "EUR")

    async def subscribed() -> httpx.Response | None:
        r = await client.post(
            "/v1/subscriptions",
            json={"account_id": account["id"], "line_id": line.json()["id"],
                  "plan_id": "11111111-aaaa-bbbb-cccc-000000000001", "start_date": "2026-10-01"},
            headers=auth,
        )
        return r if r.status_code == 201 else None

    sub = await wait_until(subscribed)
    assert sub.json()["status"] == "active"

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    psub = await js.pull_subscribe("customer.>", durable="test-observer", stream="CUSTOMER")
    seen: list[str] = []

    async def all_events() -> bool:
        try:
            for m in await psub.fetch(10, timeout=0.5):
                seen.append(m.subject)
                await m.ack()
        except nats.errors.TimeoutError:
            pass
        return len(seen) >= 3

    await wait_until(all_events)
    await nc.close()
    assert seen == ["customer.account.created", "customer.line.created", "customer.subscription.activated"]


async def test_bad_input_gets_problem_json_and_writes_nothing(client, auth) -> None:
    before = (await client.get("/v1/accounts", headers=auth)).json()["items"]
    cases = [
        (b'{"name": "x", ', 400, "malformed-json"),
        (b'{"name": "x", "currency": "EUR", "timezone": "UTC", "tenant": "evil"}', 422, "validation-error"),
        (b'{"name": "x", "currency": "XXY", "timezone": "UTC"}', 422, "validation-error"),
        (b'{"name": "x", "currency": "EUR", "timezone": "Mars/Base"}', 422, "unprocessable"),
        (b'{"name": "x", "currency": "EUR", "timezone": "UTC", "bill_cycle_day": 31}', 422, "unprocessable"),
    ]
    for body, status, slug in cases:
        resp = await client.post("/v1/accounts", content=body, headers={**auth, "content-type": "application/json"})
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["type"].endswith("/" + slug)
    after = (await client.get("/v1/accounts", headers=auth)).json()["items"]
    assert after == before


async def test_currency_mismatch_and_unknown_plan_are_refused(client, auth) -> None:
    acc = (await client.post("/v1/accounts", json={"name": "Bo", "currency": "USD", "timezone": "UTC"}, headers=auth)).json()
    await publish_plan(client, "22222222-aaaa-bbbb-cccc-000000000002", "EUR")
    body = {"account_id": acc["id"], "plan_id": "22222222-aaaa-bbbb-cccc-000000000002", "start_date": "2026-10-01"}

    async def refused_for_currency() -> httpx.Response | None:
        r = await client.post("/v1/subscriptions", json=body, headers=auth)
        return r if r.json()["type"].endswith("currency-mismatch") else None

    resp = await wait_until(refused_for_currency)
    assert resp.status_code == 422
    unknown = await client.post("/v1/subscriptions", json={**body, "plan_id": "nope"}, headers=auth)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "plan_id"
    subs = (await client.get("/v1/subscriptions", params={"account_id": acc["id"]}, headers=auth)).json()
    assert subs["items"] == []


async def test_auth_and_tenant_isolation(client, auth, test_keys) -> None:
    assert (await client.get("/v1/accounts")).status_code == 401
    assert (await client.get("/v1/accounts", headers={"Authorization": "Bearer junk"})).status_code == 401
    ro = test_keys.headers("acme", ["customers:read"])
    denied = await client.post("/v1/accounts", json={"name": "x", "currency": "EUR", "timezone": "UTC"}, headers=ro)
    assert denied.status_code == 403
    assert denied.json()["type"].endswith("/forbidden")
    mine = (await client.post("/v1/accounts", json={"name": "Mine", "currency": "EUR", "timezone": "UTC"}, headers=auth)).json()
    other = test_keys.headers("globex", ["customers:*"])
    assert (await client.get(f"/v1/accounts/{mine['id']}", headers=other)).status_code == 404
    assert all(a["id"] != mine["id"] for a in (await client.get("/v1/accounts", headers=other)).json()["items"])


async def test_pagination_is_stable(client, test_keys) -> None:
    h = test_keys.headers("pager", ["customers:*"])
    for i in range(5):
        await client.post("/v1/accounts", json={"name": f"A{i}", "currency": "EUR", "timezone": "UTC"}, headers=h)
    names, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/accounts", params=params, headers=h)).json()
        names += [a["name"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == [f"A{i}" for i in range(5)]
