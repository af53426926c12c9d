"""Plan versions on invoices against real PostgreSQL and NATS, fed by the catalog's and the
usage service's events: quarterly fees, one-time charges, tiered data, late usage, re-rating."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from rateline_invoicing.app import MIGRATIONS, create_app
from rateline_invoicing.settings import InvoicingSettings
from rateline_shared.engines import EmbeddedNats, EmbeddedPostgres
from rateline_shared.events.payloads import (
    Adjustment,
    OneTimeCharge,
    PlanPublished,
    RatedRecord,
    Tier,
    UsageRate,
)
from rateline_shared.testing import running_service, service_settings, wait_until

from .conftest import new_id

if TYPE_CHECKING:  # imported for annotations only: pytest would try to collect it
    from rateline_shared.testing import TestKeys

GB = 1024**3
OCT = {"period_start": "2026-10-01", "period_end": "2026-11-01"}
NOV = {"period_start": "2026-11-01", "period_end": "2026-12-01"}
DEC = {"period_start": "2026-12-01", "period_end": "2027-01-01"}
JAN = {"period_start": "2027-01-01", "period_end": "2027-02-01"}
SEPT = {"period_start": "2026-09-01", "period_end": "2026-10-01"}

DATA = UsageRate(
    service="data", unit="GB", pricing="graduated",
    tiers=[
        Tier(up_to="1", unit_price="5.00"),
        Tier(up_to="10", unit_price="2.00", flat_fee="1.00"),
        Tier(unit_price="1.00"),
    ],
)
VOICE = UsageRate(service="voice", unit="minute", price="0.10")


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def money(amount: str, currency: str = "EUR") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def lines(invoice: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (ln["kind"], ln["description"], ln["service"], ln["quantity"], ln["unit"], ln["amount"]["amount"])
        for ln in invoice["lines"]
    ]


class World:
    """One account on one subscription, and records of it as the usage service rates them."""

    def __init__(self, t: Any, account_id: str, sub_id: str, plan_id: str) -> None:
        self.t, self.account_id, self.sub_id, self.plan_id = t, account_id, sub_id, plan_id

    @classmethod
    async def create(cls, t: Any, plan_id: str, start: date = date(2026, 10, 1)) -> World:
        account_id = await t.account()
        sub_id = await t.subscription(account_id, plan_id, start)
        await t.caught_up(account_id, records=0)
        return cls(t, account_id, sub_id, plan_id)

    def voice(self, at: datetime, amount: str = "0.1000", record_id: str | None = None) -> RatedRecord:
        return RatedRecord(
            record_id=record_id or new_id(), source="cdr", account_id=self.account_id, line_id="line-1",
            subscription_id=self.sub_id, plan_id=self.plan_id, service="voice", started_at=at,
            quantity="60", billed_quantity="60", unit="second", amount=amount, currency="EUR",
            plan_version=1,
        )

    def data(
        self, at: datetime, billed: int, chargeable: int | None = None, record_id: str | None = None
    ) -> RatedRecord:
        return RatedRecord(
            record_id=record_id or new_id(), source="radius", account_id=self.account_id,
            line_id="line-1", subscription_id=self.sub_id, plan_id=self.plan_id, service="data",
            started_at=at, quantity=str(billed), billed_quantity=str(billed), unit="byte",
            amount="0", currency="EUR", plan_version=1, pricing="graduated",
            chargeable_quantity=str(chargeable) if chargeable is not None else None,
        )

    def adjustment(
        self, r: RatedRecord, new_amount: str, chargeable: int | None = None
    ) -> Adjustment:
        old = r.amount
        return Adjustment(
            source=r.source, record_id=r.record_id, account_id=self.account_id,
            subscription_id=self.sub_id, plan_id=self.plan_id, service=r.service,
            started_at=r.started_at, old_amount=str(old), new_amount=new_amount,
            delta=str(Decimal(new_amount) - old), currency="EUR",
            chargeable_quantity=str(chargeable) if chargeable is not None else None,
        )

    async def billable(self, period: dict[str, str]) -> dict[str, Any]:
        resp = await self.t.billable(self.account_id, period)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    async def invoice_for(self, period: dict[str, str], **run: Any) -> dict[str, Any]:
        done = await self.t.bill_run(**period, **run)
        assert done["status"] == "completed", done
        (invoice,) = [i for i in await self.t.invoices(account_id=self.account_id)
                      if i["period_start"] == period["period_start"]]
        return invoice  # type: ignore[no-any-return]

    async def pending(self, count: int) -> None:
        async def probe() -> bool | None:
            return (await self.billable(OCT))["pending_adjustments"] == count or None

        await wait_until(probe)


@pytest.fixture(scope="module")
async def client(
    pg_server: EmbeddedPostgres, nats_server: EmbeddedNats, test_keys: TestKeys
) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(
        InvoicingSettings, pg_server, nats_server, test_keys, "invoicing",
        bill_run_poll_interval=0.05,
    )
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


async def test_a_version_with_a_one_time_charge_tiered_data_and_a_quarterly_fee(
    tenant_factory: Callable[[], Any],
) -> None:
    t = tenant_factory()
    plan_id = await t.plan_version(
        name="Pro", fee="90.00", billing_period="quarterly", billing_timing="advance",
        one_time_charges=[OneTimeCharge(code="SETUP", description="Activation fee", amount="25.00")],
        rates=[DATA, VOICE],
    )
    w = await World.create(t, plan_id)
    await t.records([
        w.data(utc(2026, 10, 3, 8), billed=GB, chargeable=GB // 2),  # half of it in an allowance
        w.data(utc(2026, 10, 20, 8), billed=2 * GB),
        w.voice(utc(2026, 10, 5, 9)),
        w.voice(utc(2026, 10, 6, 9)),
    ])
    known = await t.caught_up(w.account_id, records=4)
    data = {s["service"]: s for s in known["services"]}["data"]
    assert (data["billed_quantity"], data["chargeable_quantity"], data["amount"]) == (
        str(3 * GB), str(5 * GB // 2), money("0.00"))

    october = await w.invoice_for(OCT, auto_finalize=True)
    assert lines(october) == [
        ("recurring", "Pro quarterly fee 2026-10-01 to 2026-12-31", None, "1", "quarter", "90.00"),
        ("one_time", "Activation fee (Pro)", None, "1", "charge", "25.00"),
        # 2.5 GB chargeable: 1 GB x 5.00 + 1.5 GB x 2.00 + 1.00 for reaching the second tier
        ("usage", "Data usage (Pro)", "data", "2.5", "GB", "9.00"),
        ("usage", "Voice usage (Pro)", "voice", "2", "minute", "0.20"),
    ]
    assert october["total"] == money("124.20") and october["status"] == "finalized"

    # November: no quarterly fee, and the one-time charge is never charged again
    await t.records([w.voice(utc(2026, 11, 2, 9))])
    await t.caught_up(w.account_id, records=1, period=NOV)
    november = await w.invoice_for(NOV)
    assert lines(november) == [("usage", "Voice usage (Pro)", "voice", "1", "minute", "0.10")]
    # December has nothing to bill; January starts the next quarter
    december = await t.bill_run(**DEC)
    assert (december["invoices_created"], december["errors"]) == (0, [])
    january = await w.invoice_for(JAN)
    assert lines(january) == [
        ("recurring", "Pro quarterly fee 2027-01-01 to 2027-03-31", None, "1", "quarter", "90.00"),
    ]


async def test_a_rerated_record_of_an_invoiced_period_is_adjusted_on_the_next_invoice(
    tenant_factory: Callable[[], Any],
) -> None:
    t = tenant_factory()
    plan_id = await t.plan_version(name="Pro", fee="10.00", rates=[DATA, VOICE])
    w = await World.create(t, plan_id)
    r1, r2 = w.voice(utc(2026, 10, 5, 9)), w.voice(utc(2026, 10, 6, 9))
    d1 = w.data(utc(2026, 10, 7, 9), billed=2 * GB)
    await t.records([r1, r2, d1])
    await t.caught_up(w.account_id, records=3)
    october = await w.invoice_for(OCT, auto_finalize=True)
    assert october["total"] == money("18.20")  # 10.00 + data 2 GB (5 + 2 + 1) + voice 0.20
    finalized = await t.invoice(october["id"])

    # a re-rating job: the first call costs 0.05 less, and only 1.5 GB of the data was
    # chargeable; usage sends the chunk twice (a retry with a new event id)
    job = new_id()
    chunk = [w.adjustment(r1, "0.0500"), w.adjustment(d1, "0", chargeable=3 * GB // 2)]
    await t.rerated(job, chunk)
    await t.rerated(job, chunk)
    await w.pending(2)
    await t.records([w.voice(utc(2026, 11, 3, 9))])
    await t.caught_up(w.account_id, records=1, period=NOV)

    november = await w.invoice_for(NOV)
    assert lines(november) == [
        ("recurring", "Pro monthly fee 2026-11-01 to 2026-11-30", None, "1", "month", "10.00"),
        ("usage", "Voice usage (Pro)", "voice", "1", "minute", "0.10"),
        # 2 GB cost 8.00, 1.5 GB cost 5 + 0.5 x 2 + 1 = 7.00
        ("adjustment", "Usage adjustment: Data (Pro)", "data", "1", "record", "-1.00"),
        ("adjustment", "Usage adjustment: Voice (Pro)", "voice", "1", "record", "-0.05"),
    ]
    assert november["total"] == money("9.05")
    assert await t.invoice(october["id"]) == finalized  # a finalized invoice is never rewritten
    after = await w.billable(OCT)
    assert after["pending_adjustments"] == 0
    assert {s["service"]: s["amount"] for s in after["services"]}["voice"] == money("0.15")

    # a second job on the same records is measured against what was invoiced since
    await t.rerated(new_id(), [w.adjustment(r1.model_copy(update={"amount": Decimal("0.0500")}), "0.0400"),
                               w.adjustment(d1, "0", chargeable=GB)])
    await w.pending(2)
    december = await w.invoice_for(DEC)
    assert lines(december)[1:] == [
        ("adjustment", "Usage adjustment: Data (Pro)", "data", "1", "record", "-2.00"),  # 7.00 -> 5.00
        ("adjustment", "Usage adjustment: Voice (Pro)", "voice", "1", "record", "-0.01"),
    ]
    assert december["total"] == money("7.99")


async def test_a_rerated_record_not_yet_invoiced_just_changes_its_amount(
    tenant_factory: Callable[[], Any],
) -> None:
    t = tenant_factory()
    account_id, sub_id, plan_id = await t.simple_account()  # a plan known only by catalog.plan.published
    w = World(t, account_id, sub_id, plan_id)
    r1 = w.voice(utc(2026, 10, 5, 9))
    await t.records([r1, w.voice(utc(2026, 10, 6, 9))])
    await t.caught_up(account_id, records=2)

    await t.rerated(new_id(), [w.adjustment(r1, "0.0700")])

    async def changed() -> dict[str, Any] | None:
        body = await w.billable(OCT)
        return body if body["services"][0]["amount"] == money("0.17") else None

    body = await wait_until(changed)
    assert (body["uninvoiced"], body["pending_adjustments"]) == (2, 0)
    october = await w.invoice_for(OCT)
    assert lines(october) == [
        ("recurring", "Basic monthly fee 2026-10-01 to 2026-10-31", None, "1", "month", "10.00"),
        ("usage", "Voice usage (Basic)", "voice", "2", "minute", "0.17"),
    ]


async def test_a_late_record_lands_on_the_next_invoice(tenant_factory: Callable[[], Any]) -> None:
    t = tenant_factory()
    plan_id = await t.plan_version(name="Pro", fee="10.00", rates=[DATA, VOICE])
    w = await World.create(t, plan_id, start=date(2026, 9, 20))
    await t.records([
        w.voice(utc(2026, 9, 25, 9)),  # September is never billed: not late, stays for September
        w.voice(utc(2026, 10, 5, 9)),
        w.data(utc(2026, 10, 5, 9), billed=GB // 2),
    ])
    await t.caught_up(w.account_id, records=2)
    october = await w.invoice_for(OCT, auto_finalize=True)
    assert october["total"] == money("12.60")  # 10.00 + 0.5 GB x 5.00 + 0.10
    finalized = await t.invoice(october["id"])

    # records of October that reach invoicing after October was invoiced, and one of November
    await t.records([
        w.voice(utc(2026, 10, 20, 9), "0.2000"),
        w.data(utc(2026, 10, 27, 23), billed=GB),  # local 28 October, 00:00 CET
        w.voice(utc(2026, 11, 2, 9)),
    ])
    await t.caught_up(w.account_id, records=1, period=NOV)
    await t.caught_up(w.account_id, records=4)
    november = await w.invoice_for(NOV)
    assert lines(november) == [
        ("recurring", "Pro monthly fee 2026-11-01 to 2026-11-30", None, "1", "month", "10.00"),
        ("usage", "Voice usage (Pro)", "voice", "1", "minute", "0.10"),
        # October's data goes from 0.5 GB (2.50) to 1.5 GB (5 + 0.5 x 2 + 1 = 7.00)
        ("late_usage", "Late usage: Data (Pro), 2026-10-28", "data", "1024", "MB", "4.50"),
        ("late_usage", "Late usage: Voice (Pro), 2026-10-20", "voice", "1", "minute", "0.20"),
    ]
    assert november["total"] == money("14.80")
    assert await t.invoice(october["id"]) == finalized
    assert (await w.billable(OCT))["uninvoiced"] == 0
    assert (await w.billable(SEPT))["uninvoiced"] == 1


async def test_versions_migrations_and_the_older_plan_event(tenant_factory: Callable[[], Any]) -> None:
    t = tenant_factory()
    plan_id = await t.plan_version(name="Pro", fee="10.00", also_plan_published=False)
    # an older catalog.plan.published of version 1 arriving after the version event changes nothing
    await t.publish(
        "catalog", "catalog.plan.published",
        PlanPublished(plan_id=plan_id, code="OLD", name="Old", currency="EUR", recurring_fee="99.00",
                      billing_period="monthly", rates=[], published_at=datetime.now(UTC)),
        plan_id,
    )
    await t.plan_version(plan_id=plan_id, version=2, name="Pro", fee="20.00",
                         effective_from=utc(2026, 10, 15))
    w = await World.create(t, plan_id)
    await t.migration(plan_id, 2, utc(2026, 10, 31, 23))  # local 1 November
    october = await w.invoice_for(OCT)
    november = await w.invoice_for(NOV)
    assert lines(october) == [("recurring", "Pro monthly fee 2026-10-01 to 2026-10-31", None, "1", "month", "10.00")]
    assert lines(november) == [("recurring", "Pro monthly fee 2026-11-01 to 2026-11-30", None, "1", "month", "20.00")]
    known = (await w.billable(OCT))["subscriptions"][0]["plan"]
    assert (known["code"], known["version"], known["recurring_fee"]) == (f"P-{plan_id[:4]}", 2, "20.00")
