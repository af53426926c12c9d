"""Bill runs that are killed half-way, restarted, repeated, or worked by several replicas at once
never invoice an account twice for a period, and always finish.

The service runs here without its background worker; the test drives the worker's steps itself
to stop at chosen points, then restarts the service with the worker on the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import func, select

from rateline_invoicing import billing, billrun
from rateline_invoicing import repository as repo
from rateline_invoicing.app import MIGRATIONS, create_app
from rateline_invoicing.settings import InvoicingSettings
from rateline_shared.db import unit_of_work, utcnow
from rateline_shared.engines import EmbeddedNats, EmbeddedPostgres
from rateline_shared.testing import running_service, service_settings

if TYPE_CHECKING:  # imported for annotations only: pytest would try to collect it
    from rateline_shared.testing import TestKeys

OCT = {"period_start": "2026-10-01", "period_end": "2026-11-01"}


@pytest.fixture(scope="module")
def settings(
    pg_server: EmbeddedPostgres, nats_server: EmbeddedNats, test_keys: TestKeys
) -> InvoicingSettings:
    s = service_settings(
        InvoicingSettings, pg_server, nats_server, test_keys, "invoicing",
        bill_run_worker=False, bill_run_poll_interval=0.05,
    )
    assert isinstance(s, InvoicingSettings)
    return s


@pytest.fixture(scope="module")
async def client(settings: InvoicingSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


def calls(n: int) -> list[datetime]:
    return [datetime(2026, 10, 5, 9, i, tzinfo=UTC) for i in range(n)]


async def invoice_count(sessions: Any, tenant: str) -> int:
    async with unit_of_work(sessions) as s:
        stmt = select(func.count()).select_from(repo.invoices).where(repo.invoices.c.tenant == tenant)
        return int((await s.execute(stmt)).scalar_one())


async def test_a_run_killed_half_way_resumes_after_restart(
    tenant_factory: Callable[[], Any], client: httpx.AsyncClient, settings: InvoicingSettings
) -> None:
    t = tenant_factory()
    accounts = [(await t.simple_account(voice=calls(2)))[0] for _ in range(3)]
    resp = await t.client.post("/v1/bill-runs", json=OCT, headers=t.headers)
    assert resp.status_code == 202
    run_id = resp.json()["id"]
    sessions = client.app.state.runtime.sessions  # type: ignore[attr-defined]

    # worker 1 claims the run and bills one account, then is killed in the middle of the next
    run = await billrun.claim_run(sessions)
    assert run is not None and run["id"] == run_id
    assert (run["status"], run["accounts_total"]) == ("running", 3)
    assert await billrun.process_next_account(sessions, run, settings)
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as s:
            item = await repo.pick_pending_item(s, run_id)
            assert item is not None
            outcome = await billing.bill_account(
                s, tenant=t.name, account_id=item["account_id"], period_start=run["period_start"],
                period_end=run["period_end"], bill_run_id=run_id, auto_finalize=False,
                now=utcnow(), payment_terms_days=14,
            )
            assert outcome.status == "invoiced"
            raise RuntimeError("SIGKILL before the commit")

    state = (await t.client.get(f"/v1/bill-runs/{run_id}", headers=t.headers)).json()
    assert (state["status"], state["accounts_done"], state["invoices_created"]) == ("running", 1, 1)
    assert await invoice_count(sessions, t.name) == 1
    assert sum([(await t.billable(a)).json()["uninvoiced"] for a in accounts]) == 4

    # restart: a service with its worker picks the running run up and finishes it
    with_worker = settings.model_copy(update={"bill_run_worker": True})
    async with running_service(create_app, with_worker, MIGRATIONS) as restarted:
        t.client = restarted
        done = await t.wait_run(run_id)
        assert (done["status"], done["accounts_done"], done["invoices_created"]) == ("completed", 3, 3)
        invoices = await t.invoices()
        assert sorted(i["account_id"] for i in invoices) == sorted(accounts)
        assert {i["total"]["amount"] for i in invoices} == {"10.20"}
        assert [(await t.billable(a)).json()["uninvoiced"] for a in accounts] == [0, 0, 0]

        again = await t.bill_run()
        assert (again["status"], again["errors"]) == ("completed", [])
        assert (again["accounts_done"], again["invoices_created"]) == (3, 0)
        assert len(await t.invoices()) == 3
    t.client = client


async def test_replicas_and_overlapping_runs_invoice_each_account_once(
    tenant_factory: Callable[[], Any], client: httpx.AsyncClient, settings: InvoicingSettings
) -> None:
    t = tenant_factory()
    accounts = [(await t.simple_account(voice=calls(1)))[0] for _ in range(6)]
    run_ids = []
    for _ in range(2):  # two runs for the same period, started before any worker ran
        resp = await t.client.post("/v1/bill-runs", json={**OCT, "auto_finalize": True}, headers=t.headers)
        run_ids.append(resp.json()["id"])
    sessions = client.app.state.runtime.sessions  # type: ignore[attr-defined]

    async def replica() -> None:
        while await billrun.work_once(sessions, settings):
            pass

    await asyncio.gather(*(replica() for _ in range(4)))

    runs = [(await t.client.get(f"/v1/bill-runs/{r}", headers=t.headers)).json() for r in run_ids]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert [r["accounts_done"] for r in runs] == [6, 6]
    assert sum(r["invoices_created"] for r in runs) == 6
    invoices = await t.invoices()
    assert sorted(i["account_id"] for i in invoices) == sorted(accounts)
    # every invoice was finalized by whichever run created it; the numbers have no gap
    assert sorted(i["number"] for i in invoices) == [f"INV-00000{n}" for n in range(1, 7)]


async def test_an_account_that_keeps_failing_is_reported_and_the_run_finishes(
    tenant_factory: Callable[[], Any],
    client: httpx.AsyncClient,
    settings: InvoicingSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t = tenant_factory()
    healthy, _, _ = await t.simple_account()
    broken, _, _ = await t.simple_account()
    resp = await t.client.post("/v1/bill-runs", json=OCT, headers=t.headers)
    run_id = resp.json()["id"]
    sessions = client.app.state.runtime.sessions  # type: ignore[attr-defined]

    real = billing.bill_account

    async def flaky(session: Any, **kw: Any) -> billing.AccountOutcome:
        if kw["account_id"] == broken:
            raise ConnectionResetError("database connection lost")
        return await real(session, **kw)

    monkeypatch.setattr(billing, "bill_account", flaky)
    while await billrun.work_once(sessions, settings):
        pass

    run = (await t.client.get(f"/v1/bill-runs/{run_id}", headers=t.headers)).json()
    assert run["status"] == "completed_with_errors"
    assert (run["accounts_done"], run["invoices_created"]) == (2, 1)
    (error,) = run["errors"]
    assert (error["account_id"], error["code"]) == (broken, "internal-error")
    assert f"{settings.bill_run_max_attempts} times" in error["reason"]
    assert [i["account_id"] for i in await t.invoices()] == [healthy]

    # once the cause is gone, a new run for the period bills the account that failed
    monkeypatch.setattr(billing, "bill_account", real)
    resp = await t.client.post("/v1/bill-runs", json=OCT, headers=t.headers)
    while await billrun.work_once(sessions, settings):
        pass
    rerun = (await t.client.get(f"/v1/bill-runs/{resp.json()['id']}", headers=t.headers)).json()
    assert (rerun["status"], rerun["invoices_created"]) == ("completed", 1)
    assert sorted(i["account_id"] for i in await t.invoices()) == sorted([healthy, broken])
