"""SIGKILL the usage service, and later the invoicing service, in the middle of the chain.

The chain must still complete with every CDR rated exactly once and exactly one invoice per
account: the client re-sends what it is not sure about (CDR de-duplication makes that safe),
the outbox publishes what was committed before the kill, and the bill run resumes.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import httpx

from rateline_devstack.stack import Stack
from rateline_shared.testing import wait_until
from tests.e2e.conftest import Api
from tests.e2e.scenario import (
    all_pages,
    create_customer,
    expected_usage,
    october,
    plan_body,
    sms,
    voice,
    wait_bill_run,
    wait_billable,
    wait_usage_knows,
)

ACCOUNTS = 12
BATCHES = 6
PER_BATCH = 1500


async def post_resilient(api: Api, batch: list[dict]) -> None:
    """A mediation device's loop: re-send a batch until the API has answered it."""

    async def sent() -> bool:
        try:
            resp = await api.post("/v1/usage/records", {"records": batch})
        except httpx.TransportError:
            return False
        return resp.status_code == 200

    await wait_until(sent, timeout=60, interval=0.2)


async def test_chain_survives_sigkill_of_usage_and_invoicing(api: Api, stack: Stack) -> None:
    plan = await api.ok("POST", "/v1/plans", plan_body("FAULT-M"))
    msisdns = [f"+49151123{5000 + i:05d}" for i in range(ACCOUNTS)]
    customers = [await create_customer(api, plan["id"], m) for m in msisdns]
    for m in msisdns:
        await wait_usage_knows(api, m)

    rng = random.Random(20261125)
    records = []
    for i in range(BATCHES * PER_BATCH):
        m = msisdns[i % ACCOUNTS]
        when = october(1 + rng.randrange(30), rng.randrange(24))
        if rng.random() < 0.8:
            records.append(voice("fault-sw", f"f-{i}", m, rng.randrange(0, 900), when))
        else:
            records.append(sms("fault-sw", f"f-{i}", m, when))
    batches = [records[i:i + PER_BATCH] for i in range(0, len(records), PER_BATCH)]

    await post_resilient(api, batches[0])
    in_flight = asyncio.create_task(api.post("/v1/usage/records", {"records": batches[1]}))
    await asyncio.sleep(0.05)  # fault injection: let the request reach the service, then kill it
    stack.kill("usage")
    await asyncio.gather(in_flight, return_exceptions=True)
    stack.restart("usage")
    for batch in batches[1:]:  # the client cannot know what landed: it re-sends from batch 1
        await post_resilient(api, batch)
    await post_resilient(api, batches[0])  # and even re-sends a batch it knows landed

    stored = await all_pages(api, "/v1/usage/records", source="fault-sw")
    assert len(stored) == len(records)
    assert {r["record_id"] for r in stored} == {r["record_id"] for r in records}
    assert {r["status"] for r in stored} == {"rated"}

    per_account = {c["account"]["id"]: [r for r in records if r["msisdn"] == c["line"]["msisdn"]] for c in customers}
    for account_id, recs in per_account.items():
        await wait_billable(api, account_id, len(recs))

    run = await api.ok("POST", "/v1/bill-runs", {"period_start": "2026-10-01", "period_end": "2026-11-01"})
    stack.kill("invoicing")  # mid-run (or right before it starts): either way it must resume
    stack.restart("invoicing")
    finished = await wait_bill_run(api, run["id"], timeout=120)
    assert finished["status"] == "completed", finished

    again = await api.ok("POST", "/v1/bill-runs", {"period_start": "2026-10-01", "period_end": "2026-11-01"})
    assert (await wait_bill_run(api, again["id"]))["invoices_created"] == 0

    for account_id, recs in per_account.items():
        invoices = (await api.get("/v1/invoices", account_id=account_id)).json()["items"]
        assert len(invoices) == 1, (account_id, invoices)
        expected = Decimal("10.00") + expected_usage(recs)
        assert Decimal(invoices[0]["total"]["amount"]) == expected, (account_id, invoices[0]["total"])
