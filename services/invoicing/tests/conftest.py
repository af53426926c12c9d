"""Helpers for the invoicing service tests: play the other services on NATS, watch our events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy import text

from rateline_shared.db import unit_of_work
from rateline_shared.events import CloudEvent, new_event
from rateline_shared.events.payloads import (
    AccountCreated,
    Adjustment,
    OneTimeCharge,
    PaymentOutcome,
    PlanMigrationScheduled,
    PlanPublished,
    PlanVersionPublished,
    RatedRecord,
    RecordsRated,
    RecordsRerated,
    SubscriptionActivated,
    UsageRate,
)
from rateline_shared.testing import TestKeys, wait_until

BERLIN = "Europe/Berlin"
OCT = {"period_start": "2026-10-01", "period_end": "2026-11-01"}
DONE = ("completed", "completed_with_errors")


def new_id() -> str:
    return str(uuid.uuid4())


class Tenant:
    """One tenant's world as the other services would publish it, plus its API headers."""

    def __init__(self, client: httpx.AsyncClient, keys: TestKeys, name: str) -> None:
        self.client = client
        self.name = name
        self.headers = keys.headers(name, ["invoices:*"])

    # --- events as customer, catalog, usage and payment publish them ----------------------------
    async def publish(self, service: str, type_: str, data: Any, subject: str | None = None) -> CloudEvent:
        runtime = self.client.app.state.runtime  # type: ignore[attr-defined]
        event = new_event(service=service, type=type_, tenant=self.name, subject=subject, data=data)
        await runtime.js.publish(
            event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id}
        )
        return event

    async def account(
        self, *, currency: str = "EUR", timezone: str = BERLIN, bill_cycle_day: int = 1
    ) -> str:
        account_id = new_id()
        await self.publish(
            "customer", "customer.account.created",
            AccountCreated(
                account_id=account_id, name=f"Account {account_id[:4]}", currency=currency,
                timezone=timezone, bill_cycle_day=bill_cycle_day, country="DE",
                created_at=datetime.now(UTC),
            ),
            account_id,
        )
        return account_id

    async def plan(self, *, fee: str = "10.00", currency: str = "EUR", name: str = "Basic") -> str:
        plan_id = new_id()
        await self.publish(
            "catalog", "catalog.plan.published",
            PlanPublished(
                plan_id=plan_id, code=f"P-{plan_id[:4]}", name=name, currency=currency,
                recurring_fee=fee, billing_period="monthly", rates=[],
                published_at=datetime.now(UTC),
            ),
            plan_id,
        )
        return plan_id

    async def plan_version(
        self,
        *,
        plan_id: str | None = None,
        version: int = 1,
        fee: str = "10.00",
        name: str = "Basic",
        billing_period: str = "monthly",
        billing_timing: str = "advance",
        one_time_charges: list[OneTimeCharge] | None = None,
        rates: list[UsageRate] | None = None,
        effective_from: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        also_plan_published: bool = True,
    ) -> str:
        """A plan version as the catalog publishes it: for version 1 first the (older)
        catalog.plan.published, then catalog.plan_version.published in the same transaction.
        Returns once invoicing holds the version."""
        plan_id = plan_id or new_id()
        code = f"P-{plan_id[:4]}"
        now = datetime.now(UTC)
        if version == 1 and also_plan_published:
            await self.publish(
                "catalog", "catalog.plan.published",
                PlanPublished(
                    plan_id=plan_id, code=code, name=name, currency="EUR", recurring_fee=fee,
                    billing_period=billing_period, rates=rates or [], published_at=now,
                ),
                plan_id,
            )
        await self.publish(
            "catalog", "catalog.plan_version.published",
            PlanVersionPublished(
                plan_id=plan_id, code=code, name=name, currency="EUR", version=version,
                effective_from=effective_from, recurring_fee=fee, billing_period=billing_period,
                billing_timing=billing_timing, one_time_charges=one_time_charges or [],
                rates=rates or [], published_at=now,
            ),
            plan_id,
        )
        await self.wait_stored(
            "SELECT count(*) FROM plan_versions WHERE tenant = :t AND plan_id = :p AND version = :v "
            "AND source = 'version'",
            {"p": plan_id, "v": version},
        )
        return plan_id

    async def migration(self, plan_id: str, to_version: int, effective_from: datetime) -> str:
        migration_id = new_id()
        await self.publish(
            "catalog", "catalog.plan_migration.scheduled",
            PlanMigrationScheduled(
                migration_id=migration_id, plan_id=plan_id, to_version=to_version,
                effective_from=effective_from, subscription_ids=None, created_at=datetime.now(UTC),
            ),
            plan_id,
        )
        await self.wait_stored(
            "SELECT count(*) FROM plan_migrations WHERE tenant = :t AND id = :m", {"m": migration_id}
        )
        return migration_id

    async def wait_stored(self, sql: str, params: dict[str, Any], expected: int = 1) -> int:
        """Wait until ``sql`` (a count, with ``:t`` the tenant) gives ``expected``."""
        runtime = self.client.app.state.runtime  # type: ignore[attr-defined]

        async def probe() -> int | None:
            async with unit_of_work(runtime.sessions) as session:
                count = int((await session.execute(text(sql), {"t": self.name, **params})).scalar_one())
            return count if count == expected else None

        return await wait_until(probe)

    async def records(self, records: list[RatedRecord]) -> None:
        await self.publish("usage", "usage.records.rated", RecordsRated(batch_id=new_id(), records=records))

    async def rerated(self, job_id: str, adjustments: list[Adjustment], reason: str = "tariff fix") -> None:
        await self.publish(
            "usage", "usage.records.rerated",
            RecordsRerated(job_id=job_id, reason=reason, adjustments=adjustments),
        )

    async def subscription(
        self, account_id: str, plan_id: str, start_date: date = date(2026, 9, 15)
    ) -> str:
        sub_id = new_id()
        await self.publish(
            "customer", "customer.subscription.activated",
            SubscriptionActivated(
                subscription_id=sub_id, account_id=account_id, line_id=None, plan_id=plan_id,
                start_date=start_date, activated_at=datetime.now(UTC),
            ),
            sub_id,
        )
        return sub_id

    async def rated(
        self,
        account_id: str,
        sub_id: str,
        plan_id: str,
        records: list[tuple[str, datetime, str, str]],
        *,
        currency: str = "EUR",
        record_ids: list[str] | None = None,
    ) -> list[str]:
        """``records``: (service, started_at, billed_quantity, amount)."""
        ids = record_ids or [new_id() for _ in records]
        await self.publish(
            "usage", "usage.records.rated",
            RecordsRated(
                batch_id=new_id(),
                records=[
                    RatedRecord(
                        record_id=rid, source="test-cdr", account_id=account_id, line_id=new_id(),
                        subscription_id=sub_id, plan_id=plan_id, service=service,
                        started_at=at, quantity=billed, billed_quantity=billed,
                        unit="second" if service == "voice" else "message",
                        amount=amount, currency=currency,
                    )
                    for rid, (service, at, billed, amount) in zip(ids, records, strict=True)
                ],
            ),
        )
        return ids

    async def payment(
        self,
        invoice: dict[str, Any],
        *,
        succeeded: bool = True,
        amount: str | None = None,
        payment_id: str | None = None,
    ) -> str:
        payment_id = payment_id or new_id()
        await self.publish(
            "payment",
            "payment.payment.succeeded" if succeeded else "payment.payment.failed",
            PaymentOutcome(
                payment_id=payment_id, invoice_id=invoice["id"], account_id=invoice["account_id"],
                amount=amount or invoice["total"]["amount"], currency=invoice["currency"],
                status="succeeded" if succeeded else "failed", provider="sandbox",
                failure_code=None if succeeded else "card_declined",
                failure_message=None if succeeded else "The card was declined",
                occurred_at=datetime.now(UTC),
            ),
            payment_id,
        )
        return payment_id

    # --- API --------------------------------------------------------------------------------
    async def billable(self, account_id: str, period: dict[str, str] = OCT) -> httpx.Response:
        return await self.client.get(
            "/v1/billable-usage", params={"account_id": account_id, **period}, headers=self.headers
        )

    async def caught_up(
        self, account_id: str, *, records: int, plans: int = 1, period: dict[str, str] = OCT
    ) -> dict[str, Any]:
        """Wait until invoicing holds the account, ``plans`` subscriptions with known plans and
        ``records`` rated records in the period."""

        async def probe() -> dict[str, Any] | None:
            resp = await self.billable(account_id, period)
            if resp.status_code != 200:
                return None
            body: dict[str, Any] = resp.json()
            known = [s for s in body["subscriptions"] if s["plan"] is not None]
            return body if body["records"] == records and len(known) == plans else None

        return await wait_until(probe)

    async def bill_run(self, **body: Any) -> dict[str, Any]:
        """Start a bill run and wait until it is done."""
        resp = await self.client.post("/v1/bill-runs", json={**OCT, **body}, headers=self.headers)
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "pending"
        return await self.wait_run(resp.json()["id"])

    async def wait_run(self, run_id: str) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            run: dict[str, Any] = (
                await self.client.get(f"/v1/bill-runs/{run_id}", headers=self.headers)
            ).json()
            return run if run["status"] in DONE else None

        return await wait_until(done)

    async def invoices(self, **params: Any) -> list[dict[str, Any]]:
        resp = await self.client.get("/v1/invoices", params=params, headers=self.headers)
        assert resp.status_code == 200, resp.text
        items: list[dict[str, Any]] = resp.json()["items"]
        return items

    async def invoice(self, invoice_id: str) -> dict[str, Any]:
        resp = await self.client.get(f"/v1/invoices/{invoice_id}", headers=self.headers)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    async def finalize(self, invoice_id: str) -> httpx.Response:
        return await self.client.post(f"/v1/invoices/{invoice_id}/finalize", headers=self.headers)

    async def simple_account(
        self, *, fee: str = "10.00", voice: list[datetime] | None = None, **account: Any
    ) -> tuple[str, str, str]:
        """An account on a plan with ``fee``, with one 60 s call at 0.10 per start time given."""
        plan_id = await self.plan(fee=fee)
        account_id = await self.account(**account)
        sub_id = await self.subscription(account_id, plan_id)
        calls = voice or []
        if calls:
            await self.rated(account_id, sub_id, plan_id, [("voice", t, "60", "0.1000") for t in calls])
        await self.caught_up(account_id, records=len(calls))
        return account_id, sub_id, plan_id


@pytest.fixture
def tenant_factory(client: httpx.AsyncClient, test_keys: TestKeys) -> Callable[[], Tenant]:
    return lambda: Tenant(client, test_keys, f"t-{uuid.uuid4().hex[:10]}")


class Observer:
    """Reads what this service published on its own stream (through the outbox relay)."""

    def __init__(self, psub: Any) -> None:
        self.psub = psub
        self.seen: list[dict[str, Any]] = []

    async def wait_for(self, pred: Callable[[dict[str, Any]], bool], count: int = 1) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            try:
                for m in await self.psub.fetch(50, timeout=0.2):
                    self.seen.append(CloudEvent.model_validate_json(m.data).model_dump(mode="json"))
                    await m.ack()
            except nats.errors.TimeoutError:
                pass
            hits = [e for e in self.seen if pred(e)]
            return hits if len(hits) >= count else None

        return await wait_until(probe)


@pytest.fixture(scope="module")
async def observer(client: httpx.AsyncClient, nats_server: Any) -> AsyncIterator[Observer]:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    psub = await js.pull_subscribe("invoicing.>", durable=f"observer-{new_id()[:8]}", stream="INVOICING")
    yield Observer(psub)
    await nc.close()
