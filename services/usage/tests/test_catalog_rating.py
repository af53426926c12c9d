"""Rating from plan versions, migrations, imported tariffs and allowances, against real
PostgreSQL and NATS. The customer and catalog services are played by publishing their events
onto their JetStream streams, exactly as their outbox relays would.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel
from sqlalchemy import text

from rateline_rating.cycles import cycle_containing, previous_cycle
from rateline_shared.events import CloudEvent, new_event
from rateline_shared.events.payloads import (
    AccountCreated,
    Allowance,
    LineCreated,
    PlanMigrationScheduled,
    PlanVersionPublished,
    SpendCap,
    SubscriptionActivated,
    TariffImported,
    TariffRef,
    UsageRate,
)
from rateline_shared.testing import running_service, service_settings, shared_data_dir, wait_until
from rateline_usage.app import MIGRATIONS, create_app
from rateline_usage.domain.tariffing import encode_files
from rateline_usage.settings import UsageSettings
from rateline_usage.tariffs import CACHE

NOW = datetime.now(UTC).replace(microsecond=0)
ACTIVATED = NOW - timedelta(days=120)
# A cycle day that makes the current cycle start 3 to 6 days ago (records fit in it, in the past).
CYCLE_DAY = min((NOW - timedelta(days=3)).day, 28)
CUR = cycle_containing(NOW, CYCLE_DAY, "UTC")
PREV = previous_cycle(CUR, CYCLE_DAY, "UTC")
IN_CUR = CUR.start_utc + timedelta(hours=1)
IN_PREV = PREV.start_utc + timedelta(hours=1)
VOICE_010 = UsageRate(service="voice", unit="minute", price=Decimal("0.10"), first_increment=60, increment=60)
SMS_005 = UsageRate(service="sms", unit="message", price=Decimal("0.05"))


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(UsageSettings, pg_server, nats_server, test_keys, "usage")
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


def h(test_keys, tenant: str, scopes: list[str] | None = None) -> dict[str, str]:
    return test_keys.headers(tenant, scopes or ["usage:*"])


async def publish(client: httpx.AsyncClient, service: str, type_: str, tenant: str, data: BaseModel) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    event = new_event(service=service, type=type_, tenant=tenant, data=data)
    await runtime.js.publish(event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})


def new_id() -> str:
    return str(uuid.uuid4())


class Customer:
    """An account with lines and subscriptions (one per line), published as customer events."""

    def __init__(self, lines: int) -> None:
        self.account = new_id()
        self.lines = [new_id() for _ in range(lines)]
        self.subs = [new_id() for _ in range(lines)]
        self.msisdns = [f"+49171{uuid.uuid4().int % 10**8:08d}" for _ in range(lines)]


async def customer(
    client, tenant: str, plan_id: str, lines: int = 1, start_dates: Sequence[Any] | None = None
) -> Customer:
    c = Customer(lines)
    await publish(client, "customer", "customer.account.created", tenant, AccountCreated(
        account_id=c.account, name="Anna", currency="EUR", timezone="UTC", bill_cycle_day=CYCLE_DAY,
        country="DE", created_at=ACTIVATED,
    ))
    for i in range(lines):
        await publish(client, "customer", "customer.line.created", tenant, LineCreated(
            line_id=c.lines[i], account_id=c.account, msisdn=c.msisdns[i], status="active", activated_at=ACTIVATED,
        ))
        await publish(client, "customer", "customer.subscription.activated", tenant, SubscriptionActivated(
            subscription_id=c.subs[i], account_id=c.account, line_id=c.lines[i], plan_id=plan_id,
            start_date=(start_dates[i] if start_dates else ACTIVATED.date()), activated_at=ACTIVATED,
        ))
    return c


async def plan_version(
    client, tenant: str, plan_id: str, version: int, effective_from: datetime, rates: list[UsageRate],
    allowances: Sequence[Allowance] = (), spend_cap: SpendCap | None = None,
) -> None:
    await publish(client, "catalog", "catalog.plan_version.published", tenant, PlanVersionPublished(
        plan_id=plan_id, code=f"P-{plan_id[:8]}", name="Mobile", currency="EUR", version=version,
        effective_from=effective_from, recurring_fee=Decimal("10.00"), billing_period="monthly", rates=rates,
        allowances=list(allowances), spend_cap=spend_cap, published_at=NOW,
    ))


async def projected(client, tenant: str, **expected: int) -> None:
    """Wait until the projections hold ``expected`` rows of each table for ``tenant``."""
    engine = client.app.state.runtime.engine

    async def ready() -> bool:
        async with engine.connect() as conn:
            for table, count in expected.items():
                found = (await conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE tenant = :t"), {"t": tenant}
                )).scalar_one()
                if found != count:
                    return False
        return True

    await wait_until(ready)


async def post(client, test_keys, tenant: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    resp = await client.post("/v1/usage/records", json={"records": records}, headers=h(test_keys, tenant))
    assert resp.status_code == 200, resp.text
    return resp.json()


def voice(rid: str, msisdn: str, seconds: int, at: datetime, destination: str | None = "+4930123456") -> dict[str, Any]:
    record = {"source": "sw", "record_id": rid, "service": "voice", "msisdn": msisdn,
              "started_at": at.isoformat(), "duration_seconds": seconds}
    return record | ({"destination": destination} if destination else {})


def sms(rid: str, msisdn: str, count: int, at: datetime) -> dict[str, Any]:
    return {"source": "smsc", "record_id": rid, "service": "sms", "msisdn": msisdn, "started_at": at.isoformat(),
            "count": count}


async def stored(client, test_keys, tenant: str, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in body["results"]:
        got = await client.get(f"/v1/usage/records/{r['id']}", headers=h(test_keys, tenant))
        assert got.status_code == 200
        out[r["record_id"]] = got.json()
    return out


async def usage_events(client, nats_url: str, subject: str, tenant: str) -> list[dict[str, Any]]:
    """Every ``subject`` event of ``tenant`` on the USAGE stream, once the outbox is drained."""
    runtime = client.app.state.runtime

    async def drained() -> bool:
        async with runtime.engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one() == 0

    await wait_until(drained)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable=f"obs-{uuid.uuid4().hex[:8]}", stream="USAGE")
        events: list[CloudEvent] = []
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                break
            events += [CloudEvent.model_validate_json(m.data) for m in msgs]
            await asyncio.gather(*(m.ack() for m in msgs))
    finally:
        await nc.close()
    return [e.data for e in events if e.tenant == tenant]


# --- plan versions and migrations -----------------------------------------------------------------
async def test_the_version_in_force_at_the_records_start_prices_it(client, test_keys) -> None:
    tenant, plan = "versions", new_id()
    await plan_version(client, tenant, plan, 1, ACTIVATED - timedelta(days=1), [VOICE_010])
    v2 = VOICE_010.model_copy(update={"price": Decimal("0.20")})
    await plan_version(client, tenant, plan, 2, NOW - timedelta(days=10), [v2])
    await plan_version(client, tenant, plan, 3, NOW - timedelta(hours=2),
                       [VOICE_010.model_copy(update={"price": Decimal("0.50")})])
    # line 1 started on version 1; line 2 started after version 2 took effect
    c = await customer(client, tenant, plan, lines=2, start_dates=[ACTIVATED.date(), (NOW - timedelta(days=5)).date()])
    await publish(client, "catalog", "catalog.plan_migration.scheduled", tenant, PlanMigrationScheduled(
        migration_id=new_id(), plan_id=plan, to_version=2, effective_from=NOW - timedelta(days=1),
        subscription_ids=[c.subs[0]], created_at=NOW,
    ))
    await projected(client, tenant, accounts=1, lines=2, subscriptions=2, plan_versions=3, plan_migrations=1)
    body = await post(client, test_keys, tenant, [
        voice("before-migration", c.msisdns[0], 60, NOW - timedelta(days=2)),
        voice("after-migration", c.msisdns[0], 60, NOW - timedelta(hours=12)),
        voice("line-2", c.msisdns[1], 60, NOW - timedelta(days=2)),
        voice("line-2-later", c.msisdns[1], 60, NOW - timedelta(hours=1)),
    ])
    assert body["rated"] == 4, body
    got = await stored(client, test_keys, tenant, body)
    assert {k: (v["plan_version"], v["amount"]["amount"], v["pricing"]) for k, v in got.items()} == {
        "before-migration": (1, "0.1000", "per_unit"),
        "after-migration": (2, "0.2000", "per_unit"),
        "line-2": (2, "0.2000", "per_unit"),
        "line-2-later": (2, "0.2000", "per_unit"),  # version 3 is for subscriptions started after it
    }
    sub = await client.get(f"/v1/usage/subscribers/{c.msisdns[0]}", headers=h(test_keys, tenant))
    assert (sub.json()["plan_version"], sub.json()["rates"][0]["price"]) == (2, "0.20")


# --- tariffs ------------------------------------------------------------------------------------
def peak_hour() -> datetime:
    """A recent weekday at 13:00 UTC (PEAK in the sample plan), in the past."""
    day = (NOW - timedelta(days=1)).date()
    while day.weekday() >= 5 or (day.month, day.day) == (1, 1):
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 13, tzinfo=UTC)


def tariff_event(import_id: str, name: str = "tutorial2") -> TariffImported:
    files = {p.name: p.read_text() for p in (shared_data_dir() / "cgrates" / name).glob("*.csv")}
    return TariffImported(
        import_id=import_id, format="cgrates", currency="EUR", counts={"rating_profiles": 6}, imported_at=NOW,
        files_gzip_b64=encode_files(files), timezone="UTC",
    )


async def test_tariff_rated_cdrs_cost_exactly_what_the_tariff_says(client, test_keys, nats_server) -> None:
    tenant, plan = "tariff", new_id()
    rate = UsageRate(service="voice", unit="second", pricing="tariff", tariff=TariffRef(category="call", subject="*line"))
    await plan_version(client, tenant, plan, 1, ACTIVATED - timedelta(days=1), [rate, SMS_005])
    c = await customer(client, tenant, plan)
    await projected(client, tenant, accounts=1, lines=1, subscriptions=1, plan_versions=1)
    at = peak_hour()
    msisdn = c.msisdns[0]
    # nothing imported yet: rejected, kept for re-processing
    early = await post(client, test_keys, tenant, [voice("t-1", msisdn, 85, at, "+1002")])
    assert [(r["status"], r["reason"]) for r in early["results"]] == [("rejected", "no-tariff")]

    await publish(client, "catalog", "catalog.tariff.imported", tenant, tariff_event(new_id()))
    await projected(client, tenant, tariff_imports=1)
    compiled = CACHE.compilations
    redo = await client.post("/v1/usage/records/reprocess", json={"reason": "no-tariff"}, headers=h(test_keys, tenant))
    assert redo.json()["rated"] == 1, redo.text
    body = await post(client, test_keys, tenant, [
        voice("t-2", msisdn, 60, at + timedelta(minutes=5), "1002"),
        voice("t-3", msisdn, 60, at, "+999"),
        voice("t-4", msisdn, 60, at, None),
    ])
    assert CACHE.compilations == compiled + 1  # compiled once for both batches
    assert [(r["record_id"], r["status"], r.get("reason")) for r in body["results"]] == [
        ("t-2", "rated", None), ("t-3", "rejected", "unknown-destination"), ("t-4", "rejected", "no-destination"),
    ]
    got = await stored(client, test_keys, tenant, body)
    t1 = (await client.get(f"/v1/usage/records/{early['results'][0]['id']}", headers=h(test_keys, tenant))).json()
    # RP_STANDARD, DST_10 at PEAK: 0.2 connect + 1.2 first minute + 25 x 0.02 = 1.9000
    assert (t1["status"], t1["amount"], t1["rating_plan"], t1["pricing"], t1["billed_quantity"]) == (
        "rated", {"amount": "1.9000", "currency": "EUR"}, "RP_STANDARD", "tariff", "85",
    )
    assert [(i["timing"], i["increments"], i["cost"]) for i in t1["tariff_intervals"]] == [
        ("PEAK", 1, "1.20000"), ("PEAK", 25, "0.50000"),
    ]
    assert got["t-2"]["amount"]["amount"] == "1.4000"  # 0.2 + 1.2
    events = await usage_events(client, nats_server.url, "usage.records.rated", tenant)
    rated = [r for e in events for r in e["records"]]
    assert {r["record_id"]: (r["amount"], r["pricing"], r["rating_plan"]) for r in rated} == {
        "t-1": ("1.9000", "tariff", "RP_STANDARD"), "t-2": ("1.4000", "tariff", "RP_STANDARD"),
    }


# --- allowances, thresholds, spend caps ------------------------------------------------------------
async def test_allowance_first_then_overage_and_thresholds_exactly_once(client, test_keys, nats_server) -> None:
    tenant, plan = "allowance", new_id()
    await plan_version(
        client, tenant, plan, 1, ACTIVATED - timedelta(days=1), [VOICE_010],
        allowances=[Allowance(code="MIN10", service="voice", quantity=Decimal(10), unit="minute", thresholds=[50, 100])],
        spend_cap=SpendCap(amount=Decimal("1.00"), thresholds=[80, 100]),
    )
    c = await customer(client, tenant, plan)
    await projected(client, tenant, accounts=1, lines=1, subscriptions=1, plan_versions=1)
    m = c.msisdns[0]
    first = [voice("a-1", m, 240, IN_CUR), voice("a-2", m, 240, IN_CUR + timedelta(hours=1))]
    second = [voice("a-3", m, 300, IN_CUR + timedelta(hours=2))]
    third = [voice("a-4", m, 600, IN_CUR + timedelta(hours=3))]
    results = {}
    for batch in (first, second, third, third, first):  # the last two are re-sent
        body = await post(client, test_keys, tenant, batch)
        results.update({r["record_id"]: r for r in body["results"] if r["status"] != "duplicate"})
    assert len(results) == 4
    got = {rid: (await client.get(f"/v1/usage/records/{r['id']}", headers=h(test_keys, tenant))).json()
           for rid, r in results.items()}
    assert {k: (v["allowance_code"], v["allowance_used"], v["chargeable_quantity"], v["amount"]["amount"])
            for k, v in got.items()} == {
        "a-1": ("MIN10", "240", "0", "0.0000"),
        "a-2": ("MIN10", "240", "0", "0.0000"),
        "a-3": ("MIN10", "120", "180", "0.3000"),  # 2 minutes left, then 3 minutes at 0.10
        "a-4": (None, "0", "600", "1.0000"),
    }
    allowance_events = await usage_events(client, nats_server.url, "usage.allowance.threshold_reached", tenant)
    assert [(e["threshold"], e["used"], e["granted"]) for e in allowance_events] == [(50, "480", "600"),
                                                                                      (100, "600", "600")]
    assert allowance_events[1] | {"reached_at": None} == {
        "account_id": c.account, "subscription_id": c.subs[0], "allowance_code": "MIN10", "service": "voice",
        "plan_id": plan, "period_start": CUR.start.isoformat(), "period_end": CUR.end.isoformat(),
        "threshold": 100, "granted": "600", "used": "600", "unit": "second", "reached_at": None,
    }
    spend_events = await usage_events(client, nats_server.url, "usage.spend.threshold_reached", tenant)
    assert [(e["threshold"], e["spent"], e["cap"], e["subscription_id"]) for e in spend_events] == [
        (80, "1.3000", "1.00", c.subs[0]), (100, "1.3000", "1.00", c.subs[0]),
    ]
    rated = [r for e in await usage_events(client, nats_server.url, "usage.records.rated", tenant) for r in e["records"]]
    a3 = next(r for r in rated if r["record_id"] == "a-3")
    assert (a3["allowance_code"], a3["allowance_used"], a3["chargeable_quantity"], a3["plan_version"]) == (
        "MIN10", "120", "180", 1,
    )
    balances = await client.get("/v1/usage/balances", params={"subscription_id": c.subs[0]}, headers=h(test_keys, tenant))
    assert balances.status_code == 200, balances.text
    (item,) = balances.json()["items"]
    assert item == {
        "allowance_code": "MIN10", "service": "voice", "pooled": False, "owner": "subscription",
        "subscription_id": c.subs[0], "account_id": c.account, "plan_id": plan, "plan_version": 1,
        "period_start": CUR.start.isoformat(), "period_end": CUR.end.isoformat(), "granted": "600",
        "rollover": "0", "used": "600", "remaining": "0", "unit": "second",
        "display": {"unit": "minute", "granted": "10", "rollover": "0", "used": "10", "remaining": "0"},
    }


async def test_concurrent_batches_never_over_consume_a_balance(client, test_keys) -> None:
    tenant, plan = "race", new_id()
    await plan_version(
        client, tenant, plan, 1, ACTIVATED - timedelta(days=1), [SMS_005],
        allowances=[Allowance(code="S10", service="sms", quantity=Decimal(10), unit="message")],
    )
    c = await customer(client, tenant, plan)
    await projected(client, tenant, accounts=1, lines=1, subscriptions=1, plan_versions=1)
    batches = [[sms(f"r-{b}-{i}", c.msisdns[0], 1, IN_CUR + timedelta(minutes=i)) for i in range(4)] for b in range(5)]
    bodies = await asyncio.gather(*(post(client, test_keys, tenant, b) for b in batches))
    assert sum(b["rated"] for b in bodies) == 20
    items = (await client.get("/v1/usage/records", params={"limit": 100}, headers=h(test_keys, tenant))).json()["items"]
    covered = sum(Decimal(i["allowance_used"]) for i in items)
    charged = sum(Decimal(i["amount"]["amount"]) for i in items)
    assert (covered, charged) == (10, Decimal("0.5000"))  # 10 covered, 10 at 0.05
    (balance,) = (await client.get("/v1/usage/balances", params={"account_id": c.account},
                                   headers=h(test_keys, tenant))).json()["items"]
    assert (balance["used"], balance["remaining"]) == ("10", "0")


async def test_pooled_allowance_is_shared_by_the_lines_and_rolls_over_capped(client, test_keys) -> None:
    tenant, plan = "pooled", new_id()
    await plan_version(
        client, tenant, plan, 1, ACTIVATED - timedelta(days=1), [SMS_005],
        allowances=[Allowance(code="POOL5", service="sms", quantity=Decimal(5), unit="message", pooled=True,
                              rollover_cap=Decimal(2))],
    )
    c = await customer(client, tenant, plan, lines=2)
    await projected(client, tenant, accounts=1, lines=2, subscriptions=2, plan_versions=1)
    await post(client, test_keys, tenant, [sms("p-prev", c.msisdns[0], 2, IN_PREV)])

    async def balances(**params: str) -> list[dict[str, Any]]:
        resp = await client.get("/v1/usage/balances", params=params, headers=h(test_keys, tenant))
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]

    (prev,) = await balances(account_id=c.account, at=IN_PREV.isoformat())
    assert (prev["granted"], prev["used"], prev["remaining"], prev["period_start"]) == ("5", "2", "3", PREV.start.isoformat())
    # not touched yet in this cycle: listed with its rollover (3 unused, capped at 2)
    (untouched,) = await balances(account_id=c.account, at=IN_CUR.isoformat())
    assert (untouched["granted"], untouched["rollover"], untouched["used"], untouched["owner"], untouched["subscription_id"]) == (
        "7", "2", "0", "account", None,
    )
    body = await post(client, test_keys, tenant, [
        sms("p-1", c.msisdns[0], 4, IN_CUR), sms("p-2", c.msisdns[1], 4, IN_CUR + timedelta(minutes=1)),
    ])
    got = await stored(client, test_keys, tenant, body)
    assert [(got[k]["allowance_used"], got[k]["amount"]["amount"]) for k in ("p-1", "p-2")] == [
        ("4", "0.0000"), ("3", "0.0500"),
    ]
    by_line = await balances(line_id=c.lines[1], at=IN_CUR.isoformat())
    by_account = await balances(account_id=c.account, at=IN_CUR.isoformat())
    assert by_line == by_account and [(b["granted"], b["used"], b["remaining"], b["pooled"]) for b in by_line] == [
        ("7", "7", "0", True),
    ]

    # bad filters, other tenants, scopes
    async def status(tenant_: str = tenant, scopes: list[str] | None = None, **params: str) -> int:
        resp = await client.get("/v1/usage/balances", params=params, headers=h(test_keys, tenant_, scopes))
        if resp.status_code >= 400:
            assert resp.headers["content-type"] == "application/problem+json"
        return resp.status_code

    assert await status() == 422
    assert await status(at="2026-10-01T00:00:00", account_id=c.account) == 422  # no offset
    assert await status(subscription_id=new_id()) == 404
    assert await status(line_id=new_id()) == 404
    assert await status(tenant_="someone-else", account_id=c.account) == 404
    assert await status(scopes=["customers:read"], account_id=c.account) == 403
    assert await status(scopes=["usage:read"], account_id=c.account) == 200


# --- data sessions and mms ---------------------------------------------------------------------
async def test_data_sessions_and_mms_through_every_intake_path(client, test_keys) -> None:
    tenant, plan = "data", new_id()
    mb = 2**20
    await plan_version(client, tenant, plan, 1, ACTIVATED - timedelta(days=1), [
        UsageRate(service="data", unit="MB", price=Decimal("0.01"), first_increment=mb, increment=mb),
        UsageRate(service="mms", unit="message", price=Decimal("0.30")),
    ])
    c = await customer(client, tenant, plan)
    await projected(client, tenant, accounts=1, lines=1, subscriptions=1, plan_versions=1)
    m, at = c.msisdns[0], IN_CUR
    base = {"msisdn": m, "started_at": at.isoformat()}
    body = await post(client, test_keys, tenant, [
        {"source": "radius", "record_id": "d-1", "service": "data", "bytes_up": mb // 2, "bytes_down": mb, **base},
        {"source": "mmsc", "record_id": "mms-1", "service": "mms", "count": 2, **base},
    ])
    got = await stored(client, test_keys, tenant, body)
    assert (got["d-1"]["quantity"], got["d-1"]["billed_quantity"], got["d-1"]["unit"], got["d-1"]["amount"]["amount"]) == (
        str(mb + mb // 2), str(2 * mb), "byte", "0.0200",
    )
    assert (got["mms-1"]["quantity"], got["mms-1"]["unit"], got["mms-1"]["amount"]["amount"]) == ("2", "message", "0.6000")
    bad = await client.post("/v1/usage/records", json={"records": [
        {"source": "radius", "record_id": "d-x", "service": "data", **base},
        {"source": "radius", "record_id": "d-y", "service": "data", "quantity": 5, "bytes_up": 1, **base},
    ]}, headers=h(test_keys, tenant))
    assert [(e["index"], e["field"]) for e in bad.json()["errors"]] == [(0, "records.0.quantity"), (1, "records.1.quantity")]

    csv = f"source,record_id,service,msisdn,started_at,quantity\nradius,d-2,data,{m},{at.isoformat()},{mb}\n"
    resp = await client.post("/v1/usage/records", content=csv,
                             headers=h(test_keys, tenant) | {"content-type": "text/csv"})
    assert resp.json()["rated"] == 1, resp.text

    mapping = {"name": "radius", "service": "data",
               "columns": {"record_id": "session", "msisdn": "user", "started_at": "start",
                           "bytes_up": "in", "bytes_down": "out"}}
    mapping_id = (await client.post("/v1/usage/column-mappings", json=mapping, headers=h(test_keys, tenant))).json()["id"]
    file = f"session,user,start,in,out\nd-3,{m},{at.isoformat()},1,0\nd-bad,{m},{at.isoformat()},x,0\n"
    resp = await client.post("/v1/usage/imports", content=file, params={"format": "mapping", "source": "radius-file",
                             "mapping_id": mapping_id}, headers=h(test_keys, tenant) | {"content-type": "text/csv"})
    assert (resp.json()["rated"], resp.json()["malformed"]) == (1, 1), resp.text
    bad_id = next(r["id"] for r in resp.json()["results"] if r["record_id"] == "d-bad")
    kept = (await client.get(f"/v1/usage/records/{bad_id}", headers=h(test_keys, tenant))).json()
    assert (kept["service"], kept["quantity"], kept["reason"]) == ("data", None, "malformed")
    fix = await client.patch(f"/v1/usage/records/{bad_id}", json={"count": 2}, headers=h(test_keys, tenant))
    assert fix.status_code == 422 and fix.json()["errors"][0]["field"] in ("count", "quantity")
    fix = await client.patch(f"/v1/usage/records/{bad_id}", json={"bytes_up": 2 * mb, "bytes_down": 1},
                             headers=h(test_keys, tenant))
    assert (fix.status_code, fix.json()["quantity"], fix.json()["unit"]) == (200, str(2 * mb + 1), "byte")
    redo = await client.post(f"/v1/usage/records/{bad_id}/reprocess", headers=h(test_keys, tenant))
    assert (redo.json()["status"], redo.json()["amount"]["amount"]) == ("rated", "0.0300")  # 3 started MB

    js = client.app.state.runtime.js

    async def consumer_ready() -> bool:
        try:
            await js.consumer_info("MEDIATION", "usage-mediation")
        except Exception:
            return False
        return True

    await wait_until(consumer_ready)
    message = {"records": [{"record_id": "d-4", "service": "data", "bytes_down": 3 * mb, **base}]}
    await js.publish(f"mediation.records.{tenant}.radius", json.dumps(message).encode())

    async def data_records() -> list[dict[str, Any]] | None:
        resp = await client.get("/v1/usage/records", params={"service": "data", "status": "rated"},
                                headers=h(test_keys, tenant))
        items = resp.json()["items"]
        return items if len(items) == 5 else None

    items = await wait_until(data_records)
    assert {i["record_id"]: i["amount"]["amount"] for i in items} == {
        "d-1": "0.0200", "d-2": "0.0100", "d-3": "0.0100", "d-bad": "0.0300", "d-4": "0.0300",
    }
