"""Usage service against real PostgreSQL and NATS.

The customer and catalog services are played by publishing their events onto their JetStream
streams, exactly as their outbox relays would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import nats
import pytest
from pydantic import BaseModel
from sqlalchemy import text

from rateline_shared.events import CloudEvent, new_event
from rateline_shared.events.payloads import (
    AccountCreated,
    LineCreated,
    PlanPublished,
    RecordsRated,
    SubscriptionActivated,
    UsageRate,
)
from rateline_shared.testing import running_service, service_settings, wait_until
from rateline_usage.app import MIGRATIONS, create_app
from rateline_usage.settings import UsageSettings

NOW = datetime.now(UTC).replace(microsecond=0)
ACTIVATED = NOW - timedelta(days=30)
CALL_AT = NOW - timedelta(days=2)


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(UsageSettings, pg_server, nats_server, test_keys, "usage")
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


def headers(test_keys, tenant: str, scopes: list[str] | None = None) -> dict[str, str]:
    return test_keys.headers(tenant, scopes or ["usage:*"])


async def publish(client: httpx.AsyncClient, service: str, type_: str, tenant: str, data: BaseModel) -> None:
    """Play another service: put its event on its stream."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    event = new_event(service=service, type=type_, tenant=tenant, data=data)
    await runtime.js.publish(event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})


async def publish_plan(client: httpx.AsyncClient, tenant: str, plan_id: str, currency: str = "EUR") -> None:
    await publish(
        client, "catalog", "catalog.plan.published", tenant,
        PlanPublished(
            plan_id=plan_id, code=f"P-{plan_id[:8]}", name="Mobile S", currency=currency,
            recurring_fee=Decimal("10.00"), billing_period="monthly",
            rates=[
                UsageRate(service="voice", unit="minute", price=Decimal("0.10"), first_increment=60, increment=60),
                UsageRate(service="sms", unit="message", price=Decimal("0.05")),
            ],
            published_at=NOW,
        ),
    )


async def publish_account(client: httpx.AsyncClient, tenant: str, account_id: str) -> None:
    await publish(
        client, "customer", "customer.account.created", tenant,
        AccountCreated(
            account_id=account_id, name="Anna", currency="EUR", timezone="Europe/Berlin",
            bill_cycle_day=1, country="DE", created_at=ACTIVATED,
        ),
    )


async def publish_line(client: httpx.AsyncClient, tenant: str, line_id: str, account_id: str, msisdn: str) -> None:
    await publish(
        client, "customer", "customer.line.created", tenant,
        LineCreated(line_id=line_id, account_id=account_id, msisdn=msisdn, status="active", activated_at=ACTIVATED),
    )


async def publish_subscription(
    client: httpx.AsyncClient, tenant: str, sub_id: str, account_id: str, line_id: str | None, plan_id: str
) -> None:
    await publish(
        client, "customer", "customer.subscription.activated", tenant,
        SubscriptionActivated(
            subscription_id=sub_id, account_id=account_id, line_id=line_id, plan_id=plan_id,
            start_date=ACTIVATED.date(), activated_at=ACTIVATED,
        ),
    )


class Ids:
    def __init__(self) -> None:
        self.account, self.line, self.sub, self.plan = (str(uuid.uuid4()) for _ in range(4))


async def wait_subscriber(client, test_keys, tenant: str, msisdn: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        r = await client.get(f"/v1/usage/subscribers/{msisdn}", headers=headers(test_keys, tenant))
        body = r.json() if r.status_code == 200 else None
        return body if body and body["plan_code"] and body["account_currency"] else None

    return await wait_until(ready)


async def subscriber(client, test_keys, tenant: str, msisdn: str) -> Ids:
    """A fully known subscriber: account, line, plan and subscription projected."""
    ids = Ids()
    await publish_plan(client, tenant, ids.plan)
    await publish_account(client, tenant, ids.account)
    await publish_line(client, tenant, ids.line, ids.account, msisdn)
    await publish_subscription(client, tenant, ids.sub, ids.account, ids.line, ids.plan)
    await wait_subscriber(client, test_keys, tenant, msisdn)
    return ids


def voice(record_id: str, msisdn: str, seconds: int = 90, **extra: Any) -> dict[str, Any]:
    return {
        "source": "switch-1", "record_id": record_id, "service": "voice", "msisdn": msisdn,
        "destination": "+4930123456", "started_at": CALL_AT.isoformat(), "duration_seconds": seconds,
        **extra,
    }


def sms(record_id: str, msisdn: str, **extra: Any) -> dict[str, Any]:
    return {"source": "smsc-1", "record_id": record_id, "service": "sms", "msisdn": msisdn,
            "started_at": CALL_AT.isoformat(), **extra}


async def post(client, test_keys, tenant: str, records: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/v1/usage/records", json={"records": records}, headers=headers(test_keys, tenant))


async def rated_events(client, nats_url: str, tenant: str) -> list[RecordsRated]:
    """Every usage.records.rated event of ``tenant`` on the stream, once the outbox is drained."""
    runtime = client.app.state.runtime

    async def drained() -> bool:
        async with runtime.engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one() == 0

    await wait_until(drained)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("USAGE")
        sub = await js.pull_subscribe("usage.records.rated", durable=f"obs-{uuid.uuid4().hex[:8]}", stream="USAGE")
        events: list[CloudEvent] = []
        while len(events) < info.state.messages:
            for msg in await sub.fetch(min(100, info.state.messages - len(events)), timeout=5):
                events.append(CloudEvent.model_validate_json(msg.data))
                await msg.ack()
    finally:
        await nc.close()
    return [RecordsRated.model_validate(e.data) for e in events if e.tenant == tenant]


async def test_voice_and_sms_are_rated_exactly(client, test_keys, nats_server) -> None:
    tenant, msisdn = "rate", "+4917111111111"
    ids = await subscriber(client, test_keys, tenant, msisdn)
    resp = await post(client, test_keys, tenant, [
        voice("v-90", msisdn, 90),
        voice("v-0", "0171 11111111", 0),  # national format, unanswered
        voice("v-60", msisdn, 60),
        sms("s-1", msisdn),
        sms("s-3", msisdn, count=3),
    ])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["received"], body["rated"], body["rejected"], body["duplicates"]) == (5, 5, 0, 0)
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert all(r["status"] == "rated" and "reason" not in r for r in body["results"])

    got = {}
    for r in body["results"]:
        rec = await client.get(f"/v1/usage/records/{r['id']}", headers=headers(test_keys, tenant))
        assert rec.status_code == 200
        got[r["record_id"]] = rec.json()
    assert got["v-90"]["amount"] == {"amount": "0.2000", "currency": "EUR"}
    assert (got["v-90"]["quantity"], got["v-90"]["billed_quantity"], got["v-90"]["unit"]) == ("90", "120", "second")
    assert got["v-0"]["amount"] == {"amount": "0.0000", "currency": "EUR"}
    assert got["v-0"]["billed_quantity"] == "0" and got["v-0"]["msisdn"] == msisdn
    assert got["v-60"]["amount"]["amount"] == "0.1000"
    assert got["s-1"]["amount"]["amount"] == "0.0500" and got["s-1"]["unit"] == "message"
    assert got["s-3"]["amount"]["amount"] == "0.1500" and got["s-3"]["billed_quantity"] == "3"
    v = got["v-90"]
    assert (v["status"], v["reason"], v["line_id"], v["account_id"], v["subscription_id"], v["plan_id"]) == (
        "rated", None, ids.line, ids.account, ids.sub, ids.plan,
    )

    events = await rated_events(client, nats_server.url, tenant)
    records = [r for e in events for r in e.records]
    assert len(records) == 5
    first = next(r for r in records if r.record_id == "v-90")
    assert first.model_dump(mode="json") == {
        "record_id": "v-90", "source": "switch-1", "account_id": ids.account, "line_id": ids.line,
        "subscription_id": ids.sub, "plan_id": ids.plan, "service": "voice",
        "started_at": CALL_AT.isoformat().replace("+00:00", "Z"), "quantity": "90", "billed_quantity": "120",
        "unit": "second", "amount": "0.2000", "currency": "EUR", "destination": "+4930123456",
        "plan_version": 1, "pricing": "per_unit", "chargeable_quantity": "120", "allowance_code": None,
        "allowance_used": "0", "rating_plan": None,
    }


async def test_duplicates_are_stored_and_rated_once(client, test_keys, nats_server) -> None:
    tenant, msisdn = "dups", "+4917122222222"
    await subscriber(client, test_keys, tenant, msisdn)
    same = voice("cdr-0001", msisdn, 90)
    first = (await post(client, test_keys, tenant, [same, same, voice("cdr-0002", msisdn, 30)])).json()
    assert (first["rated"], first["duplicates"]) == (2, 1)
    assert [r["status"] for r in first["results"]] == ["rated", "duplicate", "rated"]
    assert first["results"][1]["id"] == first["results"][0]["id"]
    again = (await post(client, test_keys, tenant, [same])).json()
    assert (again["received"], again["rated"], again["duplicates"]) == (1, 0, 1)
    assert again["results"][0] == {"index": 0, "record_id": "cdr-0001", "status": "duplicate", "id": first["results"][0]["id"]}
    # The same record_id from another source is another record.
    other = (await post(client, test_keys, tenant, [{**same, "source": "switch-2"}])).json()
    assert other["rated"] == 1

    listed = (await client.get("/v1/usage/records", params={"source": "switch-1"}, headers=headers(test_keys, tenant))).json()
    assert [r["record_id"] for r in listed["items"]] == ["cdr-0001", "cdr-0002"]
    records = [r for e in await rated_events(client, nats_server.url, tenant) for r in e.records]
    assert sorted((r.source, r.record_id) for r in records) == [
        ("switch-1", "cdr-0001"), ("switch-1", "cdr-0002"), ("switch-2", "cdr-0001"),
    ]


async def test_unratable_records_are_kept_and_reprocessed(client, test_keys, nats_server) -> None:
    tenant, msisdn = "late", "+4917133333333"
    h = headers(test_keys, tenant)
    resp = (await post(client, test_keys, tenant, [voice("early-1", msisdn), sms("early-2", msisdn), voice("junk", "call me")])).json()
    assert (resp["rated"], resp["rejected"]) == (0, 3)
    assert [(r["status"], r["reason"]) for r in resp["results"]] == [
        ("rejected", "unknown-line"), ("rejected", "unknown-line"), ("rejected", "invalid-msisdn"),
    ]
    assert all(r["message"] for r in resp["results"])
    rejected = (await client.get("/v1/usage/records", params={"status": "rejected"}, headers=h)).json()["items"]
    assert [(r["record_id"], r["reason"], r["amount"]) for r in rejected] == [
        ("early-1", "unknown-line", None), ("early-2", "unknown-line", None), ("junk", "invalid-msisdn", None),
    ]
    assert (await client.get("/v1/usage/records", params={"status": "rated"}, headers=h)).json()["items"] == []
    assert (await client.get(f"/v1/usage/subscribers/{msisdn}", headers=h)).status_code == 404

    # The line arrives, but no subscription yet: still rejected, with the new reason.
    ids = Ids()
    await publish_account(client, tenant, ids.account)
    await publish_line(client, tenant, ids.line, ids.account, msisdn)

    async def line_known() -> bool:
        return (await client.get(f"/v1/usage/subscribers/{msisdn}", headers=h)).status_code == 200

    await wait_until(line_known)
    early_1 = resp["results"][0]["id"]
    again = await client.post("/v1/usage/records/reprocess", json={"record_ids": [early_1, "nope"]}, headers=h)
    assert again.json() == {"considered": 1, "rated": 0, "rejected": 1, "skipped": 1}
    rec = (await client.get(f"/v1/usage/records/{early_1}", headers=h)).json()
    assert (rec["status"], rec["reason"], rec["line_id"], rec["account_id"]) == ("rejected", "no-subscription", ids.line, ids.account)

    await publish_plan(client, tenant, ids.plan)
    await publish_subscription(client, tenant, ids.sub, ids.account, ids.line, ids.plan)
    await wait_subscriber(client, test_keys, tenant, msisdn)
    done = await client.post("/v1/usage/records/reprocess", json={"all_rejected": True}, headers=h)
    assert done.status_code == 200
    assert done.json() == {"considered": 3, "rated": 2, "rejected": 1, "skipped": 0}
    rec = (await client.get(f"/v1/usage/records/{early_1}", headers=h)).json()
    assert (rec["status"], rec["reason"], rec["amount"]) == ("rated", None, {"amount": "0.2000", "currency": "EUR"})
    # Rated records are not re-processed (never rated twice).
    twice = await client.post("/v1/usage/records/reprocess", json={"record_ids": [early_1]}, headers=h)
    assert twice.json() == {"considered": 0, "rated": 0, "rejected": 0, "skipped": 1}
    rejected = (await client.get("/v1/usage/records", params={"status": "rejected"}, headers=h)).json()["items"]
    assert [r["record_id"] for r in rejected] == ["junk"]
    records = [r for e in await rated_events(client, nats_server.url, tenant) for r in e.records]
    assert sorted((r.record_id, str(r.amount)) for r in records) == [("early-1", "0.2000"), ("early-2", "0.0500")]

    bad = await client.post("/v1/usage/records/reprocess", json={"all_rejected": True, "record_ids": [early_1]}, headers=h)
    assert bad.status_code == 422
    assert (await client.post("/v1/usage/records/reprocess", json={}, headers=h)).status_code == 422


async def test_other_rejection_reasons(client, test_keys) -> None:
    tenant, msisdn = "reasons", "+4917144444444"
    ids = await subscriber(client, test_keys, tenant, msisdn)
    # A plan without an SMS rate, on a second line; and a subscription without a line.
    other_plan, other_line = str(uuid.uuid4()), str(uuid.uuid4())
    await publish(client, "catalog", "catalog.plan.published", tenant, PlanPublished(
        plan_id=other_plan, code="VOICE-ONLY", name="Voice only", currency="EUR", recurring_fee=Decimal("5"),
        billing_period="monthly", rates=[UsageRate(service="voice", unit="minute", price=Decimal("0.02"))],
        published_at=NOW,
    ))
    await publish_line(client, tenant, other_line, ids.account, "+4917144444445")
    await publish_subscription(client, tenant, str(uuid.uuid4()), ids.account, other_line, other_plan)
    await publish_subscription(client, tenant, str(uuid.uuid4()), ids.account, None, ids.plan)
    await wait_subscriber(client, test_keys, tenant, "+4917144444445")
    resp = (await post(client, test_keys, tenant, [
        voice("before", msisdn, started_at=(ACTIVATED - timedelta(hours=1)).isoformat()),
        sms("no-rate", "+4917144444445"),
        voice("per-second", "+4917144444445", 61),
    ])).json()
    assert [(r["status"], r.get("reason")) for r in resp["results"]] == [
        ("rejected", "before-activation"), ("rejected", "no-rate"), ("rated", None),
    ]
    rec = (await client.get(f"/v1/usage/records/{resp['results'][2]['id']}", headers=headers(test_keys, tenant))).json()
    assert (rec["billed_quantity"], rec["amount"]["amount"]) == ("61", "0.0203")  # 61 s at 0.02/min, 1/1


async def test_more_than_10000_records_is_413_and_writes_nothing(client, test_keys) -> None:
    tenant = "big"
    records = [sms(f"r{i}", "+4917100000000") for i in range(10_001)]
    resp = await post(client, test_keys, tenant, records)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/payload-too-large")
    assert (await client.get("/v1/usage/records", headers=headers(test_keys, tenant))).json()["items"] == []


async def test_malformed_batches_are_422_and_write_nothing(client, test_keys) -> None:
    tenant, msisdn = "strict", "+4917155555555"
    h = headers(test_keys, tenant)
    good = voice("ok", msisdn)
    future = (datetime.now(UTC) + timedelta(days=1, hours=1)).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "tenant": "evil"}, "tenant"),
        ({**good, "duration_seconds": 90.0}, "duration_seconds"),
        ({**good, "duration_seconds": "90"}, "duration_seconds"),
        ({**good, "duration_seconds": -1}, "duration_seconds"),
        ({k: v for k, v in good.items() if k != "record_id"}, "record_id"),
        ({k: v for k, v in good.items() if k != "duration_seconds"}, "duration_seconds"),
        ({**good, "started_at": future}, "started_at"),
        ({**good, "started_at": "2026-10-05T10:00:00"}, "started_at"),
        ({**good, "service": "fax"}, "service"),
        ({**sms("s", msisdn), "count": 0}, "count"),
        ({**sms("s", msisdn), "duration_seconds": 5}, "duration_seconds"),
    ]
    for bad, field in cases:
        resp = await post(client, test_keys, tenant, [good, bad, {**good, "record_id": "ok-2"}])
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        problem = resp.json()
        assert problem["type"].endswith("/validation-error")
        assert [(e["index"], e["field"]) for e in problem["errors"]] == [(1, f"records.1.{field}")], problem

    # Several bad records are all listed.
    many = await post(client, test_keys, tenant, [{**good, "duration_seconds": -1}, good, {**good, "extra": 1}])
    assert [e["field"] for e in many.json()["errors"]] == ["records.0.duration_seconds", "records.2.extra"]
    assert many.json()["invalid_records"] == 2
    for body, status in [
        (b'{"records": [', 400),
        (b'{"records": []}', 422),
        (b'{"records": {}}', 422),
        (b'[]', 422),
        (b'{"records": [], "batch": 1}', 422),
    ]:
        resp = await client.post("/v1/usage/records", content=body, headers={**h, "content-type": "application/json"})
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/usage/records", headers=h)).json()["items"] == []


async def test_tenant_isolation_and_scopes(client, test_keys) -> None:
    msisdn = "+4917166666666"
    await subscriber(client, test_keys, "iso-a", msisdn)
    mine = (await post(client, test_keys, "iso-a", [voice("x", msisdn)])).json()
    assert mine["rated"] == 1
    theirs = (await post(client, test_keys, "iso-b", [voice("x", msisdn)])).json()
    assert (theirs["rated"], theirs["duplicates"], theirs["results"][0]["reason"]) == (0, 0, "unknown-line")
    b = headers(test_keys, "iso-b")
    assert (await client.get(f"/v1/usage/records/{mine['results'][0]['id']}", headers=b)).status_code == 404
    assert (await client.get(f"/v1/usage/subscribers/{msisdn}", headers=b)).status_code == 404
    assert [r["record_id"] for r in (await client.get("/v1/usage/records", headers=b)).json()["items"]] == ["x"]
    assert (await client.post("/v1/usage/records/reprocess", json={"record_ids": [mine["results"][0]["id"]]}, headers=b)).json()["considered"] == 0

    read_only = headers(test_keys, "iso-a", ["usage:read"])
    assert (await client.post("/v1/usage/records", json={"records": [voice("y", msisdn)]}, headers=read_only)).status_code == 403
    assert (await client.get("/v1/usage/records", headers=read_only)).status_code == 200
    assert (await client.get("/v1/usage/records", headers=headers(test_keys, "iso-a", ["catalog:read"]))).status_code == 403
    assert (await client.post("/v1/usage/records", json={"records": [voice("y", msisdn)]})).status_code == 401


async def test_filters_and_pagination(client, test_keys) -> None:
    tenant, msisdn = "pages", "+4917177777777"
    ids = await subscriber(client, test_keys, tenant, msisdn)
    h = headers(test_keys, tenant)
    records = [voice(f"v{i}", msisdn) for i in range(5)] + [sms("s0", msisdn), voice("u0", "+4917100000001")]
    assert (await post(client, test_keys, tenant, records)).status_code == 200
    seen, cursor = [], None
    while True:
        page = (await client.get("/v1/usage/records", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=h)).json()
        seen += [r["record_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [r["record_id"] for r in records]  # the order they were sent

    async def ids_for(**params: str) -> list[str]:
        return [r["record_id"] for r in (await client.get("/v1/usage/records", params=params, headers=h)).json()["items"]]

    assert await ids_for(service="sms") == ["s0"]
    assert await ids_for(msisdn="0171 77777777", service="voice") == [f"v{i}" for i in range(5)]
    assert await ids_for(account_id=ids.account, status="rated") == [f"v{i}" for i in range(5)] + ["s0"]
    assert await ids_for(status="rejected") == ["u0"]
    assert (await client.get("/v1/usage/records", params={"status": "nope"}, headers=h)).status_code == 422


async def test_a_full_batch_of_10000_records(client, test_keys, nats_server) -> None:
    tenant, msisdn = "full", "+4917188888888"
    await subscriber(client, test_keys, tenant, msisdn)
    records = [voice(f"c{i:05d}", msisdn, seconds=i % 300) for i in range(10_000)]
    resp = await post(client, test_keys, tenant, records)
    assert resp.status_code == 200
    body = resp.json()
    assert (body["received"], body["rated"], body["rejected"], body["duplicates"]) == (10_000, 10_000, 0, 0)
    events = await rated_events(client, nats_server.url, tenant)
    assert sorted(len(e.records) for e in events) == [500] * 20
    total = sum((r.amount for e in events for r in e.records), Decimal(0))
    # seconds cycle 0..299: billed minutes per cycle = 0 + 60*1 + 60*2 + 60*3 + 60*4 + 59*5 = 895
    # 10,000 records = 33 full cycles (29,535 min) + 100 records (0..99 s: 0 + 60*1 + 39*2 = 138 min)
    assert total == Decimal("0.10") * (33 * 895 + 138)
