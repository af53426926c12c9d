"""Re-rating jobs against real PostgreSQL and NATS. The customer and catalog services are played by
publishing their events onto their JetStream streams, exactly as their outbox relays would.

Tariff amounts from the shared CGRateS sample plan ``tutorial2`` (RP_STANDARD, DST_10 at PEAK:
0.2 connect, RT_120C 1.2 for the first minute, then 1.2/60 = 0.02 per second); the corrected
import halves the first minute to 0.6.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from rateline_shared.engines import EmbeddedNats
from rateline_shared.events import CloudEvent, new_event
from rateline_shared.events.payloads import (
    AccountCreated,
    LineCreated,
    PlanVersionPublished,
    SpendCap,
    SubscriptionActivated,
    TariffImported,
    TariffRef,
    UsageRate,
)
from rateline_shared.testing import running_service, service_settings, shared_data_dir, wait_until
from rateline_usage import repository as repo
from rateline_usage import rerating
from rateline_usage.app import MIGRATIONS, create_app
from rateline_usage.domain.tariffing import encode_files
from rateline_usage.settings import UsageSettings

NOW = datetime.now(UTC).replace(microsecond=0)
ACTIVATED = NOW - timedelta(days=120)
VOICE_010 = UsageRate(service="voice", unit="minute", price=Decimal("0.10"), first_increment=60, increment=60)
SMS_005 = UsageRate(service="sms", unit="message", price=Decimal("0.05"))
TARIFF_VOICE = UsageRate(service="voice", unit="second", pricing="tariff", tariff=TariffRef(category="call", subject="*line"))


def peak_hour() -> datetime:
    """A recent weekday at 13:00 UTC (PEAK in the sample plan), in the past."""
    day = (NOW - timedelta(days=1)).date()
    while day.weekday() >= 5 or (day.month, day.day) == (1, 1):
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 13, tzinfo=UTC)


AT = peak_hour()


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(
        UsageSettings, pg_server, nats_server, test_keys, "usage", rerating_chunk_size=2, rerating_poll_interval=0.05
    )
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


def h(test_keys, tenant: str, scopes: list[str] | None = None) -> dict[str, str]:
    return test_keys.headers(tenant, scopes or ["usage:*"])


def new_id() -> str:
    return str(uuid.uuid4())


async def publish(client: httpx.AsyncClient, service: str, type_: str, tenant: str, data: BaseModel) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    event = new_event(service=service, type=type_, tenant=tenant, data=data)
    await runtime.js.publish(event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})


class Customer:
    def __init__(self, lines: int) -> None:
        self.account = new_id()
        self.lines = [new_id() for _ in range(lines)]
        self.subs = [new_id() for _ in range(lines)]
        self.msisdns = [f"+49171{uuid.uuid4().int % 10**8:08d}" for _ in range(lines)]


async def customer(client, tenant: str, plan_id: str, lines: int = 1) -> Customer:
    c = Customer(lines)
    await publish(client, "customer", "customer.account.created", tenant, AccountCreated(
        account_id=c.account, name="Anna", currency="EUR", timezone="UTC", bill_cycle_day=1, country="DE",
        created_at=ACTIVATED,
    ))
    for i in range(lines):
        await publish(client, "customer", "customer.line.created", tenant, LineCreated(
            line_id=c.lines[i], account_id=c.account, msisdn=c.msisdns[i], status="active", activated_at=ACTIVATED,
        ))
        await publish(client, "customer", "customer.subscription.activated", tenant, SubscriptionActivated(
            subscription_id=c.subs[i], account_id=c.account, line_id=c.lines[i], plan_id=plan_id,
            start_date=ACTIVATED.date(), activated_at=ACTIVATED,
        ))
    return c


async def plan_version(client, tenant: str, plan_id: str, rates: list[UsageRate], published_at: datetime = NOW) -> None:
    """Version 1 of the plan (published again later with a later ``published_at``: a correction)."""
    await publish(client, "catalog", "catalog.plan_version.published", tenant, PlanVersionPublished(
        plan_id=plan_id, code=f"P-{plan_id[:8]}", name="Mobile", currency="EUR", version=1,
        effective_from=ACTIVATED - timedelta(days=1), recurring_fee=Decimal("10.00"), billing_period="monthly",
        rates=rates, published_at=published_at,
    ))


def tariff_event(import_id: str, imported_at: datetime, *changes: tuple[str, str, str]) -> TariffImported:
    files = {p.name: p.read_text() for p in (shared_data_dir() / "cgrates" / "tutorial2").glob("*.csv")}
    for name, old, new in changes:
        assert old in files[name]
        files[name] = files[name].replace(old, new)
    return TariffImported(
        import_id=import_id, format="cgrates", currency="EUR", counts={"rating_profiles": 6},
        imported_at=imported_at, files_gzip_b64=encode_files(files), timezone="UTC",
    )


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


async def price_is(client, tenant: str, plan_id: str, price: str) -> None:
    engine = client.app.state.runtime.engine

    async def ready() -> bool:
        async with engine.connect() as conn:
            rates = (await conn.execute(
                text("SELECT rates FROM plan_versions WHERE tenant = :t AND plan_id = :p"), {"t": tenant, "p": plan_id}
            )).scalar_one()
        return bool(Decimal(rates[0]["price"]) == Decimal(price))

    await wait_until(ready)


async def post(client, test_keys, tenant: str, records: list[dict[str, Any]]) -> dict[str, str]:
    """Ingest; returns the stored ids by record_id."""
    resp = await client.post("/v1/usage/records", json={"records": records}, headers=h(test_keys, tenant))
    assert resp.status_code == 200, resp.text
    return {r["record_id"]: r["id"] for r in resp.json()["results"]}


def voice(rid: str, msisdn: str, seconds: int, at: datetime, destination: str | None = "+4930123456") -> dict[str, Any]:
    record = {"source": "sw", "record_id": rid, "service": "voice", "msisdn": msisdn,
              "started_at": at.isoformat(), "duration_seconds": seconds}
    return record | ({"destination": destination} if destination else {})


def sms(rid: str, msisdn: str, count: int, at: datetime) -> dict[str, Any]:
    return {"source": "smsc", "record_id": rid, "service": "sms", "msisdn": msisdn, "started_at": at.isoformat(),
            "count": count}


async def amounts(client, test_keys, tenant: str, ids: dict[str, str]) -> dict[str, tuple[str, str]]:
    """(status, amount) of each stored record by record_id."""
    out = {}
    for rid, ident in ids.items():
        got = (await client.get(f"/v1/usage/records/{ident}", headers=h(test_keys, tenant))).json()
        out[rid] = (got["status"], got["amount"]["amount"] if got["amount"] else None)
    return out


async def start_job(client, test_keys, tenant: str, **body: Any) -> dict[str, Any]:
    body = {"started_from": (AT - timedelta(hours=1)).isoformat(),
            "started_before": (AT + timedelta(hours=1)).isoformat(), "reason": "tariff corrected"} | body
    resp = await client.post("/v1/usage/rerating-jobs", json=body, headers=h(test_keys, tenant))
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert resp.headers["location"] == f"/v1/usage/rerating-jobs/{job['id']}"
    return job


async def finished(client, test_keys, tenant: str, job_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        job = (await client.get(f"/v1/usage/rerating-jobs/{job_id}", headers=h(test_keys, tenant))).json()
        return job if job["status"] in ("completed", "failed") else None

    return await wait_until(done)


async def adjustments(client, test_keys, tenant: str, job_id: str, limit: int = 2) -> list[dict[str, Any]]:
    """Every adjustment of the job, page by page (small pages: the cursor is exercised)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        resp = await client.get(f"/v1/usage/rerating-jobs/{job_id}/adjustments", params=params,
                                headers=h(test_keys, tenant))
        assert resp.status_code == 200, resp.text
        items += resp.json()["items"]
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            return items


async def rerated_events(
    client, nats_url: str, tenant: str, subject: str = "usage.records.rerated"
) -> list[dict[str, Any]]:
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
    return [e.data | {"_subject": e.subject} for e in events if e.tenant == tenant]


# --- a corrected tariff --------------------------------------------------------------------------
async def test_a_corrected_tariff_rerates_the_account_into_exact_adjustments(client, test_keys, nats_server) -> None:
    tenant, plan = "rr-tariff", new_id()
    await plan_version(client, tenant, plan, [TARIFF_VOICE, SMS_005])
    a, b = await customer(client, tenant, plan), await customer(client, tenant, plan)
    await publish(client, "catalog", "catalog.tariff.imported", tenant, tariff_event(new_id(), NOW - timedelta(days=1)))
    await projected(client, tenant, accounts=2, lines=2, subscriptions=2, plan_versions=1, tariff_imports=1)
    m = a.msisdns[0]
    ids = await post(client, test_keys, tenant, [
        voice("a-1", m, 85, AT, "+1002"),
        voice("a-2", m, 60, AT + timedelta(minutes=1), "1002"),
        voice("a-3", m, 120, AT + timedelta(minutes=2), "1099"),
        voice("a-4", m, 45, AT + timedelta(minutes=3), "+3012345"),
        voice("a-5", m, 60, AT + timedelta(minutes=4), "voicemail"),
        sms("a-6", m, 2, AT + timedelta(minutes=5)),
        voice("a-old", m, 85, AT - timedelta(days=7), "1002"),  # before the period (same weekday)
        voice("a-rej", m, 60, AT, "+5012345"),  # rejected: not re-rated
        voice("b-1", b.msisdns[0], 85, AT, "1002"),  # another account
    ])
    before = await amounts(client, test_keys, tenant, ids)
    assert before == {
        "a-1": ("rated", "1.9000"), "a-2": ("rated", "1.4000"), "a-3": ("rated", "2.6000"),
        "a-4": ("rated", "1.4000"), "a-5": ("rated", "0.0000"), "a-6": ("rated", "0.1000"),
        "a-old": ("rated", "1.9000"), "a-rej": ("rejected", None), "b-1": ("rated", "1.9000"),
    }
    # The correction: the first minute of RT_120C costs 0.6, and 30... is no longer a destination.
    await publish(client, "catalog", "catalog.tariff.imported", tenant, tariff_event(
        new_id(), NOW, ("Rates.csv", "RT_120C,0.2,1.2,1m,1m,0", "RT_120C,0.2,0.6,1m,1m,0"),
        ("Destinations.csv", "DST_2030,30\n", ""),
    ))
    await projected(client, tenant, tariff_imports=2)

    job = await start_job(client, test_keys, tenant, account_id=a.account)
    assert job | {"id": None, "created_at": None, "period": None} == {
        "id": None, "status": "queued", "scope": {"kind": "account", "id": a.account}, "period": None,
        "reason": "tariff corrected", "total": 6, "processed": 0, "changed": 0, "skipped": 0,
        "skipped_reasons": {}, "deltas": {}, "created_at": None, "started_at": None, "finished_at": None,
        "error": None,
    }
    assert {k: datetime.fromisoformat(v) for k, v in job["period"].items()} == {
        "started_from": AT - timedelta(hours=1), "started_before": AT + timedelta(hours=1),
    }
    done = await finished(client, test_keys, tenant, job["id"])
    assert {k: done[k] for k in ("status", "total", "processed", "changed", "skipped", "skipped_reasons", "deltas",
                                 "error")} == {
        "status": "completed", "total": 6, "processed": 6, "changed": 3, "skipped": 1,
        "skipped_reasons": {"unknown-destination": 1}, "deltas": {"EUR": "-1.8000"}, "error": None,
    }
    assert done["started_at"] is not None and done["finished_at"] >= done["started_at"]

    # exact adjustments per record: 0.2 + 0.6 + the seconds after the first minute at 0.02
    adj = await adjustments(client, test_keys, tenant, job["id"])
    assert [(x["record_id"], x["old_amount"], x["new_amount"], x["delta"], x["old_chargeable_quantity"],
             x["new_chargeable_quantity"], x["currency"]) for x in adj] == [
        ("a-1", "1.9000", "1.3000", "-0.6000", "85", "85", "EUR"),
        ("a-2", "1.4000", "0.8000", "-0.6000", "60", "60", "EUR"),
        ("a-3", "2.6000", "2.0000", "-0.6000", "120", "120", "EUR"),
    ]
    assert [x["usage_record_id"] for x in adj] == [ids["a-1"], ids["a-2"], ids["a-3"]]
    assert adj[0]["previous"]["rating_plan"] == "RP_STANDARD"
    assert [i["cost"] for i in adj[0]["previous"]["tariff_intervals"]] == ["1.20000", "0.50000"]
    assert sum(Decimal(x["delta"]) for x in adj) == Decimal("-1.8000")

    # the records themselves now carry the corrected rating; the others are untouched
    after = await amounts(client, test_keys, tenant, ids)
    assert after == before | {"a-1": ("rated", "1.3000"), "a-2": ("rated", "0.8000"), "a-3": ("rated", "2.0000")}
    a1 = (await client.get(f"/v1/usage/records/{ids['a-1']}", headers=h(test_keys, tenant))).json()
    assert [(i["increments"], i["cost"]) for i in a1["tariff_intervals"]] == [(1, "0.60000"), (25, "0.50000")]
    assert (a1["chargeable_quantity"], a1["billed_quantity"], a1["rating_plan"]) == ("85", "85", "RP_STANDARD")

    # the same adjustments on the bus, for invoicing
    events = await rerated_events(client, nats_server.url, tenant)
    assert {(e["job_id"], e["reason"], e["_subject"]) for e in events} == {(job["id"], "tariff corrected", job["id"])}
    on_bus = sorted((x for e in events for x in e["adjustments"]), key=lambda x: x["record_id"])
    assert [datetime.fromisoformat(x.pop("started_at")) for x in on_bus] == [AT + timedelta(minutes=i) for i in range(3)]
    assert on_bus == [
        {"source": "sw", "record_id": rid, "account_id": a.account, "subscription_id": a.subs[0], "plan_id": plan,
         "service": "voice", "old_amount": old, "new_amount": new, "delta": "-0.6000", "currency": "EUR",
         "chargeable_quantity": q}
        for rid, old, new, q in [
            ("a-1", "1.9000", "1.3000", "85"), ("a-2", "1.4000", "0.8000", "60"), ("a-3", "2.6000", "2.0000", "120"),
        ]
    ]

    # every tariff-priced record of the tenant: only b-1 still changes (a-4 is skipped again)
    tariff_job = await finished(client, test_keys, tenant, (await start_job(client, test_keys, tenant, tariff=True))["id"])
    assert (tariff_job["scope"], tariff_job["total"], tariff_job["changed"], tariff_job["skipped"],
            tariff_job["deltas"]) == ({"kind": "tariff", "id": None}, 6, 1, 1, {"EUR": "-0.6000"})
    assert [x["record_id"] for x in await adjustments(client, test_keys, tenant, tariff_job["id"])] == ["b-1"]


# --- scopes ------------------------------------------------------------------------------------------
async def test_jobs_pick_exactly_the_records_of_their_scope(client, test_keys) -> None:
    tenant, p1, p2 = "rr-scope", new_id(), new_id()
    await plan_version(client, tenant, p1, [VOICE_010])
    await plan_version(client, tenant, p2, [VOICE_010])
    c1, c2 = await customer(client, tenant, p1, lines=2), await customer(client, tenant, p2)
    await projected(client, tenant, accounts=2, lines=3, subscriptions=3, plan_versions=2)
    ids = await post(client, test_keys, tenant, [
        voice("l0-1", c1.msisdns[0], 60, AT), voice("l0-2", c1.msisdns[0], 120, AT + timedelta(minutes=1)),
        voice("l1-1", c1.msisdns[1], 60, AT), voice("p2-1", c2.msisdns[0], 60, AT),
    ])
    assert set((await amounts(client, test_keys, tenant, ids)).values()) == {("rated", "0.1000"), ("rated", "0.2000")}

    # a per-unit plan re-rated with unchanged prices: nothing changes
    same = await finished(client, test_keys, tenant, (await start_job(client, test_keys, tenant, plan_id=p2))["id"])
    assert (same["status"], same["total"], same["processed"], same["changed"], same["deltas"]) == (
        "completed", 1, 1, 0, {},
    )
    assert await adjustments(client, test_keys, tenant, same["id"]) == []

    await plan_version(client, tenant, p1, [VOICE_010.model_copy(update={"price": Decimal("0.20")})],
                       published_at=NOW + timedelta(seconds=1))
    await price_is(client, tenant, p1, "0.20")
    line = await finished(client, test_keys, tenant, (await start_job(client, test_keys, tenant, line_id=c1.lines[0]))["id"])
    assert (line["total"], line["changed"], line["deltas"]) == (2, 2, {"EUR": "0.3000"})
    assert [(x["record_id"], x["delta"]) for x in await adjustments(client, test_keys, tenant, line["id"])] == [
        ("l0-1", "0.1000"), ("l0-2", "0.2000"),
    ]
    plan = await finished(client, test_keys, tenant, (await start_job(client, test_keys, tenant, plan_id=p1))["id"])
    assert (plan["total"], plan["processed"], plan["changed"], plan["deltas"]) == (3, 3, 1, {"EUR": "0.1000"})
    assert [x["record_id"] for x in await adjustments(client, test_keys, tenant, plan["id"])] == ["l1-1"]
    account = await finished(client, test_keys, tenant, (await start_job(client, test_keys, tenant, account_id=c2.account))["id"])
    assert (account["total"], account["changed"]) == (1, 0)
    nothing = await finished(client, test_keys, tenant, (await start_job(client, test_keys, tenant, tariff=True))["id"])
    assert (nothing["status"], nothing["total"], nothing["processed"]) == ("completed", 0, 0)
    assert await amounts(client, test_keys, tenant, ids) == {
        "l0-1": ("rated", "0.2000"), "l0-2": ("rated", "0.4000"), "l1-1": ("rated", "0.2000"),
        "p2-1": ("rated", "0.1000"),
    }

    # the list, filtered and paginated
    listed = await client.get("/v1/usage/rerating-jobs", params={"status": "completed", "limit": 3},
                              headers=h(test_keys, tenant))
    assert listed.status_code == 200 and len(listed.json()["items"]) == 3 and listed.json()["next_cursor"]
    rest = await client.get("/v1/usage/rerating-jobs", params={"status": "completed", "cursor": listed.json()["next_cursor"]},
                            headers=h(test_keys, tenant))
    assert [j["id"] for j in listed.json()["items"] + rest.json()["items"]] == [
        same["id"], line["id"], plan["id"], account["id"], nothing["id"],
    ]
    queued = await client.get("/v1/usage/rerating-jobs", params={"status": "queued"}, headers=h(test_keys, tenant))
    assert queued.json()["items"] == []


# --- spend caps follow the corrected amounts -------------------------------------------------------
async def test_spend_totals_move_by_the_deltas_and_thresholds_are_announced_once(client, test_keys, nats_server) -> None:
    tenant, plan = "rr-spend", new_id()

    async def publish_plan(price: str, published_at: datetime) -> None:
        await publish(client, "catalog", "catalog.plan_version.published", tenant, PlanVersionPublished(
            plan_id=plan, code="SPEND", name="Capped", currency="EUR", version=1,
            effective_from=ACTIVATED - timedelta(days=1), recurring_fee=Decimal("10.00"), billing_period="monthly",
            rates=[VOICE_010.model_copy(update={"price": Decimal(price)})],
            spend_cap=SpendCap(amount=Decimal("1.00"), thresholds=[50, 80]), published_at=published_at,
        ))

    await publish_plan("0.10", NOW)
    c = await customer(client, tenant, plan)
    await projected(client, tenant, accounts=1, lines=1, subscriptions=1, plan_versions=1)
    await post(client, test_keys, tenant, [voice(f"s-{i}", c.msisdns[0], 60, AT + timedelta(minutes=i)) for i in range(4)])
    spent = text("SELECT amount FROM spend_totals WHERE tenant = :t")
    async with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        assert (await conn.execute(spent, {"t": tenant})).scalar_one() == Decimal("0.4000")
    assert await rerated_events(client, nats_server.url, tenant, "usage.spend.threshold_reached") == []

    await publish_plan("0.25", NOW + timedelta(seconds=1))
    await price_is(client, tenant, plan, "0.25")
    for _ in range(2):  # the second job changes nothing and announces nothing again
        job = await finished(client, test_keys, tenant, (await start_job(client, test_keys, tenant, plan_id=plan))["id"])
        assert job["status"] == "completed"
    async with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        assert (await conn.execute(spent, {"t": tenant})).scalar_one() == Decimal("1.0000")
    reached = await rerated_events(client, nats_server.url, tenant, "usage.spend.threshold_reached")
    # chunks of 2 records: the first brings the total to 0.70 (50 % reached), the second to 1.00
    assert [(e["threshold"], e["spent"], e["cap"], e["subscription_id"]) for e in reached] == [
        (50, "0.7000", "1.00", c.subs[0]), (80, "1.0000", "1.00", c.subs[0]),
    ]


# --- bad requests, tenants, scopes ---------------------------------------------------------------
async def test_bad_requests_are_422_and_other_tenants_see_nothing(client, test_keys) -> None:
    tenant = "rr-bad"
    period = {"started_from": "2026-10-01T00:00:00+02:00", "started_before": "2026-11-01T00:00:00+01:00"}

    async def create(body: dict[str, Any], scopes: list[str] | None = None) -> httpx.Response:
        return await client.post("/v1/usage/rerating-jobs", json=body, headers=h(test_keys, tenant, scopes))

    for body, field in [
        (period | {"reason": "x"}, ""),  # no scope
        (period | {"reason": "x", "account_id": "a", "line_id": "l"}, ""),  # two scopes
        (period | {"reason": "x", "tariff": False}, ""),
        (period | {"reason": "x", "tariff": "yes"}, "tariff"),
        (period | {"reason": "", "account_id": "a"}, "reason"),
        (period | {"reason": "   ", "account_id": "a"}, "reason"),
        (period | {"reason": "x" * 201, "account_id": "a"}, "reason"),
        (period | {"account_id": "a"}, "reason"),
        (period | {"reason": "x", "account_id": "a", "status": "completed"}, "status"),
        ({"reason": "x", "account_id": "a", "started_from": "2026-10-01T00:00:00",
          "started_before": period["started_before"]}, "started_from"),
        ({"reason": "x", "account_id": "a", "started_from": period["started_before"],
          "started_before": period["started_from"]}, "started_before"),
        ({"reason": "x", "account_id": "a", "started_from": "2025-01-01T00:00:00Z",
          "started_before": "2026-01-03T00:00:00Z"}, "started_before"),  # 367 days
        ({"reason": "x", "account_id": "a", "started_from": period["started_from"]}, "started_before"),
    ]:
        resp = await create(body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in resp.json()["errors"]], (body, resp.json())
    ok = await create({"reason": "x", "account_id": "a", "started_from": "2025-01-01T00:00:00Z",
                       "started_before": "2026-01-02T00:00:00Z"})  # 366 days
    assert (ok.status_code, ok.json()["total"]) == (202, 0)
    assert (await create(period | {"reason": "x", "tariff": True}, ["usage:read"])).status_code == 403

    job_id = ok.json()["id"]
    for path in (f"/v1/usage/rerating-jobs/{job_id}", f"/v1/usage/rerating-jobs/{job_id}/adjustments"):
        assert (await client.get(path, headers=h(test_keys, tenant))).status_code == 200
        other = await client.get(path, headers=h(test_keys, "rr-someone-else"))
        assert (other.status_code, other.headers["content-type"]) == (404, "application/problem+json")
    assert (await client.get("/v1/usage/rerating-jobs", headers=h(test_keys, "rr-someone-else"))).json()["items"] == []
    assert (await client.get("/v1/usage/rerating-jobs", params={"status": "done"},
                             headers=h(test_keys, tenant))).status_code == 422
    assert (await client.get("/v1/usage/rerating-jobs/nope", headers=h(test_keys, tenant))).status_code == 404


# --- crashes ---------------------------------------------------------------------------------------
def test_transient_failures_are_told_apart() -> None:
    assert rerating.is_transient(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert rerating.is_transient(ConnectionResetError())
    assert not rerating.is_transient(RuntimeError("a bug"))
    assert not rerating.is_transient(ValueError("bad data"))


@pytest.fixture
def own_nats(tmp_path) -> Iterator[EmbeddedNats]:
    """A NATS of the test's own: the module's service shares the durable consumers of the
    module's NATS, and would take the events meant for this test's service."""
    server = EmbeddedNats(tmp_path / "nats").start()
    yield server
    server.stop()


async def test_a_job_killed_midway_resumes_with_the_same_totals_and_nothing_twice(
    pg_server, own_nats, test_keys, monkeypatch
) -> None:
    nats_server = own_nats
    settings = service_settings(
        UsageSettings, pg_server, nats_server, test_keys, "usage", rerating_chunk_size=2,
        rerating_poll_interval=0.05, rerating_worker=False,
    )
    assert isinstance(settings, UsageSettings)
    tenant, plan = "rr-crash", new_id()

    async def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed inside the chunk")

    async with running_service(create_app, settings, MIGRATIONS) as c:
        sessions = c.app.state.runtime.sessions  # type: ignore[attr-defined]
        await plan_version(c, tenant, plan, [VOICE_010])
        cust = await customer(c, tenant, plan)
        await projected(c, tenant, accounts=1, lines=1, subscriptions=1, plan_versions=1)
        ids = await post(c, test_keys, tenant, [
            voice(f"r-{i}", cust.msisdns[0], 60 * (i + 1), AT + timedelta(minutes=i)) for i in range(5)
        ])
        await plan_version(c, tenant, plan, [VOICE_010.model_copy(update={"price": Decimal("0.20")})],
                           published_at=NOW + timedelta(seconds=1))
        await price_is(c, tenant, plan, "0.20")

        # a chunk that keeps failing for a non-transient reason fails its job, changing nothing
        doomed = await start_job(c, test_keys, tenant, account_id=cust.account)
        monkeypatch.setattr(rerating, "publish_in_transaction", boom)
        for _ in range(settings.rerating_max_attempts):
            assert await rerating.work_once(sessions, settings) is False
        failed = (await c.get(f"/v1/usage/rerating-jobs/{doomed['id']}", headers=h(test_keys, tenant))).json()
        assert (failed["status"], failed["processed"], failed["error"]) == (
            "failed", 0, "RuntimeError: killed inside the chunk",
        )
        assert failed["finished_at"] is not None
        monkeypatch.undo()
        assert await rerating.work_once(sessions, settings) is False  # a failed job is not taken again

        job = await start_job(c, test_keys, tenant, account_id=cust.account)
        assert job["total"] == 5
        # two workers: the one holding the job's lock makes the other skip it
        async with sessions() as s1, s1.begin(), sessions() as s2, s2.begin():
            assert (await repo.claim_rerating_job(s1))["id"] == job["id"]  # type: ignore[index]
            assert await repo.claim_rerating_job(s2) is None
        assert await rerating.work_once(sessions, settings) is True  # one chunk, committed
        # killed inside the next chunk: rolled back
        monkeypatch.setattr(rerating, "publish_in_transaction", boom)
        assert await rerating.work_once(sessions, settings) is False
        monkeypatch.undo()
        midway = (await c.get(f"/v1/usage/rerating-jobs/{job['id']}", headers=h(test_keys, tenant))).json()
        assert (midway["status"], midway["processed"], midway["changed"], midway["deltas"]) == (
            "running", 2, 2, {"EUR": "0.3000"},
        )
        assert midway["error"] == "RuntimeError: killed inside the chunk"
        assert [x["record_id"] for x in await adjustments(c, test_keys, tenant, job["id"])] == ["r-0", "r-1"]
        assert await amounts(c, test_keys, tenant, ids) == {
            "r-0": ("rated", "0.2000"), "r-1": ("rated", "0.4000"), "r-2": ("rated", "0.3000"),
            "r-3": ("rated", "0.4000"), "r-4": ("rated", "0.5000"),
        }

    # started again, with the worker: it resumes from the cursor
    async with running_service(create_app, settings.model_copy(update={"rerating_worker": True}), MIGRATIONS) as c:
        done = await finished(c, test_keys, tenant, job["id"])
        assert {k: done[k] for k in ("status", "total", "processed", "changed", "skipped", "deltas", "error")} == {
            "status": "completed", "total": 5, "processed": 5, "changed": 5, "skipped": 0,
            "deltas": {"EUR": "1.5000"}, "error": None,
        }
        adj = await adjustments(c, test_keys, tenant, job["id"])
        assert [(x["record_id"], x["old_amount"], x["new_amount"]) for x in adj] == [
            (f"r-{i}", f"0.{i + 1}000", f"0.{2 * (i + 1)}000") for i in range(4)
        ] + [("r-4", "0.5000", "1.0000")]
        assert await amounts(c, test_keys, tenant, ids) == {
            f"r-{i}": ("rated", str(Decimal("0.2000") * (i + 1))) for i in range(5)
        }
        events = await rerated_events(c, nats_server.url, tenant)
        on_bus = [(e["job_id"], x["record_id"], x["delta"]) for e in events for x in e["adjustments"]]
        assert sorted(on_bus) == [(job["id"], f"r-{i}", str(Decimal("0.1000") * (i + 1))) for i in range(5)]
        doomed_after = (await c.get(f"/v1/usage/rerating-jobs/{doomed['id']}", headers=h(test_keys, tenant))).json()
        assert doomed_after["status"] == "failed"
