"""Invoicing service against real PostgreSQL and NATS, fed by events as the other services
publish them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from rateline_invoicing import billing
from rateline_invoicing.app import MIGRATIONS, create_app
from rateline_invoicing.settings import InvoicingSettings
from rateline_shared.db import unit_of_work, utcnow
from rateline_shared.engines import EmbeddedNats, EmbeddedPostgres
from rateline_shared.testing import running_service, service_settings, wait_until

if TYPE_CHECKING:  # imported for annotations only: pytest would try to collect it
    from rateline_shared.testing import TestKeys

BERLIN = "Europe/Berlin"
OCT = {"period_start": "2026-10-01", "period_end": "2026-11-01"}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def money(amount: str, currency: str = "EUR") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


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


async def test_bill_run_invoices_monthly_fee_and_usage_exactly(tenant_factory: Callable[[], Any]) -> None:
    t = tenant_factory()
    plan_id = await t.plan(fee="10.00", name="Basic")
    account_id = await t.account()
    sub_id = await t.subscription(account_id, plan_id, date(2026, 9, 15))
    calls = [
        ("voice", utc(2026, 9, 30, 22, 0), "60", "0.1000"),  # local 1 Oct 00:00 (CEST): in
        ("voice", utc(2026, 10, 31, 22, 59, 59), "60", "0.1000"),  # local 31 Oct 23:59:59 (CET): in
        ("voice", utc(2026, 9, 30, 21, 59, 59), "60", "0.1000"),  # local 30 Sep: September
        ("voice", utc(2026, 10, 31, 23, 0), "60", "0.1000"),  # local 1 Nov 00:00: November
    ]
    sms = [("sms", utc(2026, 10, 10, 8, i), "1", "0.0150") for i in range(3)]  # 0.045 -> 0.05
    await t.rated(account_id, sub_id, plan_id, calls + sms)

    known = await t.caught_up(account_id, records=5)
    assert known["period_start_utc"] == "2026-09-30T22:00:00Z"
    assert known["period_end_utc"] == "2026-10-31T23:00:00Z"
    assert known["uninvoiced"] == 5
    by_service = {s["service"]: s for s in known["services"]}
    assert by_service["voice"]["amount"] == money("0.20")
    assert by_service["voice"]["billed_quantity"] == "120"
    assert by_service["sms"]["amount"] == money("0.045")

    run = await t.bill_run()
    assert run["status"] == "completed", run
    assert (run["accounts_total"], run["accounts_done"], run["invoices_created"]) == (1, 1, 1)
    assert run["errors"] == [] and run["completed_at"] is not None

    (listed,) = await t.invoices(account_id=account_id)
    invoice = await t.invoice(listed["id"])
    assert invoice["status"] == "draft" and invoice["number"] is None
    assert invoice["bill_run_id"] == run["id"]
    assert (invoice["period_start"], invoice["period_end"]) == ("2026-10-01", "2026-11-01")
    assert [(ln["kind"], ln["description"], ln["service"], ln["quantity"], ln["unit"], ln["amount"])
            for ln in invoice["lines"]] == [
        ("recurring", "Basic monthly fee 2026-10-01 to 2026-10-31", None, "1", "month", money("10.00")),
        ("usage", "SMS usage (Basic)", "sms", "3", "message", money("0.05")),
        ("usage", "Voice usage (Basic)", "voice", "2", "minute", money("0.20")),
    ]
    assert invoice["total"] == money("10.25")
    assert invoice["amount_paid"] == money("0.00")
    assert invoice["due_date"] is None and invoice["issued_at"] is None

    after = (await t.billable(account_id)).json()
    assert (after["records"], after["uninvoiced"]) == (5, 0)
    # the November call stays for November; the September one for September
    nov = (await t.billable(account_id, {"period_start": "2026-11-01", "period_end": "2026-12-01"})).json()
    assert (nov["records"], nov["uninvoiced"]) == (1, 1)


async def test_repeated_bill_run_creates_no_new_invoice(tenant_factory: Callable[[], Any]) -> None:
    t = tenant_factory()
    account_id, _, _ = await t.simple_account(voice=[utc(2026, 10, 5, 9), utc(2026, 10, 6, 9)])
    first = await t.bill_run()
    assert first["invoices_created"] == 1
    (invoice,) = await t.invoices(account_id=account_id)
    assert invoice["total"] == money("10.20")

    again = await t.bill_run()
    assert again["status"] == "completed"
    assert (again["accounts_total"], again["accounts_done"], again["invoices_created"]) == (1, 1, 0)
    assert [i["id"] for i in await t.invoices(account_id=account_id)] == [invoice["id"]]
    listed = (await t.client.get("/v1/bill-runs", params={"status": "completed"}, headers=t.headers)).json()
    assert [r["id"] for r in listed["items"]] == [first["id"], again["id"]]


async def test_plan_in_another_currency_is_reported_and_nothing_is_written(
    tenant_factory: Callable[[], Any],
) -> None:
    t = tenant_factory()
    good, _, _ = await t.simple_account(voice=[utc(2026, 10, 5, 9)])
    usd_plan = await t.plan(currency="USD")
    bad = await t.account(currency="EUR")
    bad_sub = await t.subscription(bad, usd_plan)
    await t.rated(bad, bad_sub, usd_plan, [("voice", utc(2026, 10, 5, 9), "60", "0.10")], currency="USD")
    await t.caught_up(bad, records=1)

    run = await t.bill_run()
    assert run["status"] == "completed_with_errors"
    assert (run["accounts_total"], run["accounts_done"], run["invoices_created"]) == (2, 2, 1)
    (error,) = run["errors"]
    assert error["account_id"] == bad and error["code"] == "currency-mismatch"
    assert "USD" in error["reason"] and "EUR" in error["reason"]
    assert await t.invoices(account_id=bad) == []
    assert len(await t.invoices(account_id=good)) == 1
    assert (await t.billable(bad)).json()["uninvoiced"] == 1


async def test_finalize_assigns_gapless_numbers_per_tenant(
    tenant_factory: Callable[[], Any], client: httpx.AsyncClient, observer: Any
) -> None:
    t = tenant_factory()
    accounts = [(await t.simple_account(voice=[utc(2026, 10, 5, 9)]))[0] for _ in range(3)]
    run = await t.bill_run()
    assert run["invoices_created"] == 3
    ids = [i["id"] for i in await t.invoices(bill_run_id=run["id"])]
    assert len(ids) == 3

    first = await t.finalize(ids[0])
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["status"], body["number"]) == ("finalized", "INV-000001")
    today_berlin = utcnow().astimezone(ZoneInfo(BERLIN)).date()
    assert body["due_date"] == (today_berlin + timedelta(days=14)).isoformat()
    assert body["issued_at"] is not None

    # a second finalize of the same invoice is a 409 problem and takes no number
    twice = await t.finalize(ids[0])
    assert twice.status_code == 409
    assert twice.headers["content-type"] == "application/problem+json"
    assert twice.json()["type"].endswith("/invoice-not-draft")
    # a finalize whose transaction fails after taking a number gives the number back
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        async with unit_of_work(runtime.sessions) as session:
            row = await billing.finalize_invoice(
                session, t.name, ids[1], now=utcnow(), payment_terms_days=14
            )
            assert row["number"] == "INV-000002"
            raise RuntimeError("the process died before the commit")
    assert (await t.invoice(ids[1]))["status"] == "draft"
    assert (await t.finalize("no-such-invoice")).status_code == 404

    numbers = [(await t.finalize(i)).json()["number"] for i in ids[1:]]
    assert numbers == ["INV-000002", "INV-000003"]
    # numbering is per tenant: another tenant starts at 1
    other = tenant_factory()
    await other.simple_account()
    await other.bill_run()
    (theirs,) = await other.invoices()
    assert (await other.finalize(theirs["id"])).json()["number"] == "INV-000001"

    events = await observer.wait_for(
        lambda e: e["type"] == "invoicing.invoice.finalized" and e["tenant"] == t.name, count=3
    )
    assert sorted(e["data"]["number"] for e in events) == ["INV-000001", "INV-000002", "INV-000003"]
    assert {e["data"]["account_id"] for e in events} == set(accounts)
    sample = next(e for e in events if e["data"]["invoice_id"] == ids[0])
    assert sample["data"]["total"] == "10.10" and sample["data"]["currency"] == "EUR"


async def test_payments_pay_invoices_and_failures_are_recorded(
    tenant_factory: Callable[[], Any], observer: Any
) -> None:
    t = tenant_factory()
    for _ in range(2):
        await t.simple_account(voice=[utc(2026, 10, 5, 9), utc(2026, 10, 6, 9)])
    await t.bill_run(auto_finalize=True)
    paid_one, failed_one = await t.invoices()
    assert paid_one["status"] == failed_one["status"] == "finalized"

    payment_id = await t.payment(paid_one)

    async def is_paid() -> dict[str, Any] | None:
        inv = await t.invoice(paid_one["id"])
        return inv if inv["status"] == "paid" else None

    paid = await wait_until(is_paid)
    assert paid["amount_paid"] == money("10.20") and paid["amount_due"] == money("0.00")
    assert paid["paid_at"] is not None
    (event,) = await observer.wait_for(
        lambda e: e["type"] == "invoicing.invoice.paid" and e["data"]["invoice_id"] == paid_one["id"]
    )
    assert event["data"]["payment_id"] == payment_id and event["data"]["amount_paid"] == "10.20"

    await t.payment(failed_one, succeeded=False)

    async def has_error() -> dict[str, Any] | None:
        inv = await t.invoice(failed_one["id"])
        return inv if inv["last_payment_error"] else None

    failed = await wait_until(has_error)
    assert failed["status"] == "finalized"
    assert failed["last_payment_error"] == "card_declined: The card was declined"

    # the same payment delivered again (another event id) changes nothing; a later success of
    # the failed invoice still pays it, and both are visible in order
    await t.payment(paid_one, payment_id=payment_id)
    await t.payment(failed_one)

    async def second_paid() -> dict[str, Any] | None:
        inv = await t.invoice(failed_one["id"])
        return inv if inv["status"] == "paid" else None

    await wait_until(second_paid)
    assert (await t.invoice(paid_one["id"]))["amount_paid"] == money("10.20")
    paid_events = [e for e in observer.seen
                   if e["type"] == "invoicing.invoice.paid" and e["data"]["invoice_id"] == paid_one["id"]]
    assert len(paid_events) == 1


async def test_zero_total_invoice_is_paid_when_finalized(
    tenant_factory: Callable[[], Any], observer: Any
) -> None:
    t = tenant_factory()
    await t.simple_account(fee="0.00")
    run = await t.bill_run()
    assert run["invoices_created"] == 1
    (draft,) = await t.invoices()
    assert draft["total"] == money("0.00")
    body = (await t.finalize(draft["id"])).json()
    assert (body["status"], body["number"], body["amount_due"]) == ("paid", "INV-000001", money("0.00"))
    assert body["paid_at"] is not None
    await observer.wait_for(
        lambda e: e["type"] == "invoicing.invoice.paid" and e["data"]["invoice_id"] == draft["id"]
    )


async def test_auto_finalize_and_bill_cycle_day(tenant_factory: Callable[[], Any]) -> None:
    t = tenant_factory()
    day1, _, _ = await t.simple_account(bill_cycle_day=1)
    day15, _, _ = await t.simple_account(bill_cycle_day=15)
    run = await t.bill_run(
        period_start="2026-10-15", period_end="2026-11-15", bill_cycle_day=15, auto_finalize=True
    )
    assert (run["accounts_total"], run["invoices_created"], run["bill_cycle_day"]) == (1, 1, 15)
    (invoice,) = await t.invoices()
    assert invoice["account_id"] == day15
    assert (invoice["status"], invoice["number"]) == ("finalized", "INV-000001")
    assert invoice["lines"][0]["description"] == "Basic monthly fee 2026-10-15 to 2026-11-14"
    assert await t.invoices(account_id=day1) == []


async def test_bad_periods_are_refused_and_write_nothing(tenant_factory: Callable[[], Any]) -> None:
    t = tenant_factory()
    account_id, _, _ = await t.simple_account()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"period_start": "2026-11-01", "period_end": "2026-10-01"}, 422, "invalid-period"),
        ({"period_start": "2026-10-01", "period_end": "2026-10-01"}, 422, "invalid-period"),
        ({"period_start": "2026-10-01", "period_end": "2030-10-01"}, 422, "invalid-period"),
        ({"period_start": "2026-02-30", "period_end": "2026-03-30"}, 422, "validation-error"),
        ({"period_start": "2026-10-01"}, 422, "validation-error"),
        ({**OCT, "bill_cycle_day": 31}, 422, "validation-error"),
        ({**OCT, "status": "completed"}, 422, "validation-error"),
    ]
    for body, status, slug in cases:
        resp = await t.client.post("/v1/bill-runs", json=body, headers=t.headers)
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["type"].endswith("/" + slug), resp.text
    bad = await t.client.post("/v1/bill-runs", json={"period_start": "2026-11-01", "period_end": "2026-10-01"},
                              headers=t.headers)
    assert bad.json()["errors"][0]["field"] == "period_end"
    malformed = await t.client.post(
        "/v1/bill-runs", content=b'{"period_start": ', headers={**t.headers, "content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert (await t.client.get("/v1/bill-runs", headers=t.headers)).json()["items"] == []

    inverted = await t.billable(account_id, {"period_start": "2026-11-01", "period_end": "2026-10-01"})
    assert inverted.status_code == 422
    assert (await t.billable("unknown-account")).status_code == 404
    unknown_status = await t.client.get("/v1/invoices", params={"status": "void"}, headers=t.headers)
    assert unknown_status.status_code == 422


async def test_scopes_and_tenant_isolation(tenant_factory: Callable[[], Any], test_keys: Any) -> None:
    mine, theirs = tenant_factory(), tenant_factory()
    account_id, _, _ = await mine.simple_account(voice=[utc(2026, 10, 5, 9)])
    run = await mine.bill_run()
    (invoice,) = await mine.invoices()

    client = mine.client
    assert (await client.get("/v1/invoices")).status_code == 401
    read_only = test_keys.headers(mine.name, ["invoices:read"])
    assert (await client.get("/v1/invoices", headers=read_only)).status_code == 200
    denied = await client.post("/v1/bill-runs", json=OCT, headers=read_only)
    assert denied.status_code == 403 and denied.json()["type"].endswith("/forbidden")
    assert (await client.post(f"/v1/invoices/{invoice['id']}/finalize", headers=read_only)).status_code == 403
    wrong_area = test_keys.headers(mine.name, ["customers:*"])
    assert (await client.get("/v1/invoices", headers=wrong_area)).status_code == 403

    # the other tenant sees none of it and cannot touch it
    assert (await client.get(f"/v1/invoices/{invoice['id']}", headers=theirs.headers)).status_code == 404
    assert (await client.post(f"/v1/invoices/{invoice['id']}/finalize", headers=theirs.headers)).status_code == 404
    assert (await client.get(f"/v1/bill-runs/{run['id']}", headers=theirs.headers)).status_code == 404
    assert await theirs.invoices() == []
    assert (await theirs.billable(account_id)).status_code == 404
    # its own bill run covers none of our accounts
    their_run = await theirs.bill_run()
    assert (their_run["accounts_total"], their_run["invoices_created"]) == (0, 0)
    assert (await mine.invoice(invoice["id"]))["status"] == "draft"


async def test_rated_records_are_stored_once(tenant_factory: Callable[[], Any]) -> None:
    t = tenant_factory()
    account_id, sub_id, plan_id = await t.simple_account()
    record = [("voice", utc(2026, 10, 5, 9), "60", "0.1000")]
    ids = await t.rated(account_id, sub_id, plan_id, record)
    await t.caught_up(account_id, records=1)
    # usage re-sends the same record in a new batch (new event id): stored once
    await t.rated(account_id, sub_id, plan_id, record, record_ids=ids)
    marker = await t.rated(account_id, sub_id, plan_id, [("sms", utc(2026, 10, 5, 10), "1", "0.01")])
    assert marker
    body = await t.caught_up(account_id, records=2)
    assert {s["service"]: s["records"] for s in body["services"]} == {"voice": 1, "sms": 1}
    await t.bill_run()
    (invoice,) = await t.invoices()
    assert invoice["total"] == money("10.11")


async def test_invoice_list_paginates_in_a_stable_order(tenant_factory: Callable[[], Any]) -> None:
    t = tenant_factory()
    for _ in range(5):
        await t.simple_account()
    await t.bill_run()
    everything = await t.invoices()
    assert len(everything) == 5
    seen, cursor = [], None
    while True:
        page = (await t.client.get(
            "/v1/invoices", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=t.headers
        )).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [i["id"] for i in everything]
    assert await t.invoices(status="finalized") == []
    assert len(await t.invoices(status="draft")) == 5


async def test_a_payload_that_cannot_validate_is_dead_lettered(
    tenant_factory: Callable[[], Any], test_keys: Any
) -> None:
    t = tenant_factory()
    event = await t.publish("usage", "usage.records.rated", {"batch_id": "b-1"})  # no records
    admin = test_keys.headers(t.name, ["admin"])

    async def dead() -> list[dict[str, Any]] | None:
        resp = await t.client.get("/v1/admin/invoicing/dead-letters", headers=admin)
        items = [d for d in resp.json()["items"] if d["event_id"] == event.id]
        return items or None

    (letter,) = await wait_until(dead)
    assert letter["consumer"] == "invoicing-usage" and "validate" in letter["error"]
    forbidden = await t.client.get("/v1/admin/invoicing/dead-letters", headers=t.headers)
    assert forbidden.status_code == 403
