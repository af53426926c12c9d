"""Catalog and rating end to end, through the gateway only: a CGRateS tariff plan imported, a
plan version mixing tariff-priced voice with a destination-scoped allowance, per-message SMS and
graduated data, usage rated against the usage service's own projections, balances and threshold
webhooks, and the invoice that prices it all.

Expected figures are derived by hand (CGRateS rules in docs/api.md, section 3):

* oldtutorial, subject 1001 to 1002 on a weekday 08:00-19:00 UTC is RP_RETAIL2 PEAK: connect
  fee 0.4, the first 60 s in one 60 s increment at 0.2/min, then 1 s increments at 0.1/min,
  each 0.1 x 1/60 = 0.0016667 -> 0.00167 (half up, 5 decimals); total rounded *up to 4 decimals.
* The allowance VOICE-5 gives 300 s to destinations starting 1002, consumed in whole
  increments in time order; the connect fee is always charged.
  - call 1, 240 s: 60 s + 180 x 1 s all covered (240 of 300 s used, 80 %): cost 0.4000.
  - call 2, 120 s: the first 60 s increment fits the 60 s left (300 of 300 s, 100 %); 60 x 1 s
    are charged: 0.4 + 60 x 0.00167 = 0.5002.
* SMS: 2 x 0.05 = 0.10. Data, graduated per MB (1,048,576 bytes): 150 MB = 100 x 0.01 + 50 x
  0.005 = 1.25, priced at invoice time.
* October invoice: fee 10.00 (monthly, in advance) + activation 5.00 (first invoice) + voice
  0.9002 -> 0.90 + SMS 0.10 + data 1.25 = 17.25.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from rateline_shared.testing import wait_until
from tests.e2e.conftest import Api, Receiver, body_json
from tests.e2e.scenario import (
    all_pages,
    create_customer,
    run_bill_run,
    tariff_zip,
    wait_bill_run,
    wait_billable,
    wait_usage_knows,
)

MB = 1024 * 1024
MONDAY_1300 = datetime(2026, 10, 5, 13, 0, tzinfo=UTC)
MONDAY_1400 = datetime(2026, 10, 5, 14, 0, tzinfo=UTC)


async def import_tariffs(api: Api, blob: bytes | None = None) -> dict[str, Any]:
    resp = await api.http.post(
        "/v1/tariff-imports", data={"format": "cgrates", "currency": "EUR", "timezone": "UTC"},
        files={"file": ("oldtutorial.zip", blob or tariff_zip("oldtutorial"), "application/zip")},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def bundle_plan(code: str) -> dict[str, Any]:
    return {
        "code": code, "name": f"Bundle {code}", "currency": "EUR", "effective_from": "2026-09-01T00:00:00Z",
        "recurring_fee": "10.00", "billing_period": "monthly", "billing_timing": "advance",
        "one_time_charges": [{"code": "ACTIVATION", "description": "Activation fee", "amount": "5.00"}],
        "rates": [
            {"service": "voice", "unit": "minute", "pricing": "tariff", "tariff": {"category": "call", "subject": "1001"}},
            {"service": "sms", "unit": "message", "price": "0.05"},
            {"service": "data", "unit": "MB", "pricing": "graduated", "tiers": [
                {"up_to": "100", "unit_price": "0.01"}, {"up_to": None, "unit_price": "0.005"}]},
        ],
        "allowances": [{"code": "VOICE-5", "service": "voice", "quantity": "5", "unit": "minute",
                        "destinations": ["1002"], "thresholds": [80, 100]}],
    }


async def customer(api: Api, plan_id: str, msisdn: str, cycle_day: int) -> dict[str, Any]:
    cust = await create_customer(api, plan_id, msisdn, cycle_day=cycle_day)
    await wait_usage_knows(api, msisdn)
    return cust


def call(rid: str, msisdn: str, seconds: int, when: datetime, destination: str = "1002") -> dict[str, Any]:
    return {"source": "sbc-rating", "record_id": rid, "service": "voice", "msisdn": msisdn,
            "destination": destination, "started_at": when.isoformat(), "duration_seconds": seconds}


async def test_tariff_allowance_data_tiers_and_the_invoice(api: Api, receiver: Receiver) -> None:
    await api.ok("POST", "/v1/webhook-endpoints", {
        "url": receiver.url, "event_types": ["usage.allowance.threshold_reached"], "description": "CRM alerts",
    })
    await import_tariffs(api)
    plan = await api.ok("POST", "/v1/plans", bundle_plan(f"BUNDLE-{uuid.uuid4().hex[:6]}"))
    assert plan["current_version"]["version"] == 1
    msisdn = "+4917180000001"
    cust = await customer(api, plan["id"], msisdn, cycle_day=1)
    account_id = cust["account"]["id"]

    records = [
        call("v-1", msisdn, 240, MONDAY_1300),
        call("v-2", msisdn, 120, MONDAY_1400),
        call("v-3", msisdn, 30, MONDAY_1400, destination="99999"),  # no rate: kept rejected
        {"source": "sbc-rating", "record_id": "s-1", "service": "sms", "msisdn": msisdn, "destination": "1003",
         "started_at": MONDAY_1400.isoformat(), "count": 2},
        {"source": "pgw-rating", "record_id": "d-1", "service": "data", "msisdn": msisdn,
         "started_at": MONDAY_1400.isoformat(), "bytes_up": 50 * MB, "bytes_down": 100 * MB},
    ]
    result = await api.ok("POST", "/v1/usage/records", {"records": records})
    assert [(r["record_id"], r["status"], r.get("reason")) for r in result["results"]] == [
        ("v-1", "rated", None), ("v-2", "rated", None), ("v-3", "rejected", "unknown-destination"),
        ("s-1", "rated", None), ("d-1", "rated", None),
    ]
    stored = {r["record_id"]: r for r in await all_pages(api, "/v1/usage/records", account_id=account_id)}
    v1, v2, data = stored["v-1"], stored["v-2"], stored["d-1"]
    assert (Decimal(v1["amount"]["amount"]), v1["allowance_code"], Decimal(v1["allowance_used"])) == (
        Decimal("0.4"), "VOICE-5", 240)
    assert (Decimal(v2["amount"]["amount"]), Decimal(v2["allowance_used"]), Decimal(v2["chargeable_quantity"])) == (
        Decimal("0.5002"), 60, 60)
    assert (v2["pricing"], v2["rating_plan"], v2["plan_version"]) == ("tariff", "RP_RETAIL2", 1)
    assert sum(i["increments"] for i in v2["tariff_intervals"]) == 61
    assert (data["pricing"], Decimal(data["amount"]["amount"]), Decimal(data["chargeable_quantity"])) == (
        "graduated", 0, 150 * MB)

    balances = (await api.get("/v1/usage/balances", account_id=account_id, at="2026-10-20T12:00:00Z")).json()
    (voice_balance,) = balances["items"]
    assert (voice_balance["allowance_code"], voice_balance["period_start"], voice_balance["period_end"]) == (
        "VOICE-5", "2026-10-01", "2026-11-01")
    assert (Decimal(voice_balance["granted"]), Decimal(voice_balance["used"]), Decimal(voice_balance["remaining"])) == (
        300, 300, 0)
    assert (Decimal(voice_balance["display"]["used"]), voice_balance["display"]["unit"]) == (5, "minute")

    # Each threshold is announced once, to the partner, signed like every webhook.
    async def both_thresholds() -> list[int] | None:
        seen = sorted(body_json(r)["data"]["threshold"] for r in receiver.requests
                      if body_json(r)["type"] == "usage.allowance.threshold_reached")
        return seen if len(seen) >= 2 else None

    assert await wait_until(both_thresholds, timeout=30) == [80, 100]

    # Re-sending the whole batch changes nothing: no double consumption, no new threshold.
    again = await api.ok("POST", "/v1/usage/records", {"records": records})
    assert again["duplicates"] == 5
    balances = (await api.get("/v1/usage/balances", account_id=account_id, at="2026-10-20T12:00:00Z")).json()
    assert Decimal(balances["items"][0]["used"]) == 300

    await wait_billable(api, account_id, 4)
    run = await run_bill_run(api, bill_cycle_day=1)
    assert run["invoices_created"] == 1, run
    (invoice,) = (await api.get("/v1/invoices", account_id=account_id)).json()["items"]
    invoice = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
    lines = sorted((line["kind"], line["service"] or "", line["amount"]["amount"]) for line in invoice["lines"])
    assert lines == [
        ("one_time", "", "5.00"), ("recurring", "", "10.00"),
        ("usage", "data", "1.25"), ("usage", "sms", "0.10"), ("usage", "voice", "0.90"),
    ]
    assert invoice["total"] == {"amount": "17.25", "currency": "EUR"}
    assert len([r for r in receiver.requests if body_json(r)["type"] == "usage.allowance.threshold_reached"]) == 2


def per_minute_plan(code: str, price: str) -> dict[str, Any]:
    return {"code": code, "name": f"Voice {code}", "currency": "EUR", "effective_from": "2026-09-01T00:00:00Z",
            "recurring_fee": "3.00",
            "rates": [{"service": "voice", "unit": "minute", "price": price, "first_increment": 60, "increment": 60}]}


async def test_versions_apply_from_their_date_and_only_migrated_subscriptions_move(api: Api) -> None:
    """v1 prices voice at 0.10/min. v2 (0.20/min) takes effect a few seconds from now; line A is
    migrated to it from that instant, line B is not. A call of A before the instant stays at
    v1; after it, v2; B stays on the version it started on."""
    plan = await api.ok("POST", "/v1/plans", per_minute_plan(f"VER-{uuid.uuid4().hex[:6]}", "0.10"))
    a, b = "+4917180000011", "+4917180000012"
    sub_a = (await customer(api, plan["id"], a, cycle_day=3))["subscription"]
    await customer(api, plan["id"], b, cycle_day=3)

    switch = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    v2 = await api.ok("POST", f"/v1/plans/{plan['id']}/versions", {
        **{k: v for k, v in per_minute_plan("x", "0.20").items() if k not in ("code", "name", "currency")},
        "effective_from": switch.isoformat(),
    })
    assert v2["version"] == 2
    past = await api.post(f"/v1/plans/{plan['id']}/versions", {
        **{k: v for k, v in per_minute_plan("x", "0.30").items() if k not in ("code", "name", "currency")},
        "effective_from": "2026-10-01T00:00:00Z",
    })
    assert past.status_code == 422  # a version never rewrites history
    await api.ok("POST", f"/v1/plans/{plan['id']}/migrations",
                 {"to_version": 2, "effective_from": switch.isoformat(), "subscription_ids": [sub_a["id"]]})

    async def usage_sees_v2_for_a() -> bool:
        if datetime.now(UTC) <= switch:
            return False
        body = (await api.get(f"/v1/usage/subscribers/{a}")).json()
        return bool(body.get("plan_version") == 2)

    await wait_until(usage_sees_v2_for_a, timeout=30)
    before, after = switch - timedelta(hours=1), switch + timedelta(seconds=1)
    result = await api.ok("POST", "/v1/usage/records", {"records": [
        call("ver-a-1", a, 60, before), call("ver-a-2", a, 60, after), call("ver-b-1", b, 60, after),
    ]})
    assert result["rated"] == 3, result
    stored = {r["record_id"]: r for r in await all_pages(api, "/v1/usage/records", source="sbc-rating")}
    assert [(stored[k]["plan_version"], stored[k]["amount"]["amount"]) for k in ("ver-a-1", "ver-a-2", "ver-b-1")] == [
        (1, "0.1000"), (2, "0.2000"), (1, "0.1000"),
    ]
    versions = (await api.get(f"/v1/plans/{plan['id']}/versions")).json()["items"]
    assert [v["version"] for v in versions] == [1, 2]


async def test_rerating_after_a_tariff_correction_adjusts_the_next_invoice(api: Api) -> None:
    """October is invoiced (and paid) with RT_20CNT's first minute at 0.2; then the operator
    imports a corrected tariff (0.3) and re-rates the account's October. Each call costs
    exactly 0.1 more (85 s: 0.4 + 0.3 + 25 x 0.00167 = 0.74175 -> 0.7418 instead of 0.6418;
    60 s: 0.7 instead of 0.6), the finalized October invoice is untouched, and November's
    invoice carries a +0.20 adjustment line."""
    await import_tariffs(api)
    plan = await api.ok("POST", "/v1/plans", {
        "code": f"RERATE-{uuid.uuid4().hex[:6]}", "name": "Tariffed", "currency": "EUR",
        "effective_from": "2026-09-01T00:00:00Z", "recurring_fee": "3.00",
        "rates": [{"service": "voice", "unit": "minute", "pricing": "tariff",
                   "tariff": {"category": "call", "subject": "1001"}}],
    })
    msisdn = "+4917180000021"
    cust = await customer(api, plan["id"], msisdn, cycle_day=4)
    account_id = cust["account"]["id"]
    result = await api.ok("POST", "/v1/usage/records", {"records": [
        {**call("rr-1", msisdn, 85, MONDAY_1300), "source": "sbc-rerate"},
        {**call("rr-2", msisdn, 60, datetime(2026, 10, 6, 13, 0, tzinfo=UTC)), "source": "sbc-rerate"},
    ]})
    assert result["rated"] == 2, result
    await wait_billable(api, account_id, 2)
    october = await api.ok("POST", "/v1/bill-runs", {"period_start": "2026-10-04", "period_end": "2026-11-04",
                                                    "bill_cycle_day": 4, "auto_finalize": True})
    await wait_bill_run(api, october["id"])
    (first,) = (await api.get("/v1/invoices", account_id=account_id)).json()["items"]
    assert first["total"] == {"amount": "4.24", "currency": "EUR"}  # 3.00 + 0.6418 + 0.6000 -> 1.24

    corrected = tariff_zip(replace=("Rates.csv", "RT_20CNT,0.4,0.2,60s,60s,0s", "RT_20CNT,0.4,0.3,60s,60s,0s"))
    resp = await api.http.post("/v1/tariff-imports", data={"format": "cgrates", "currency": "EUR"},
                               files={"file": ("fixed.zip", corrected, "application/zip")})
    assert resp.status_code == 201, resp.text
    fixed_import = resp.json()["id"]

    period = {"account_id": account_id, "started_from": "2026-10-01T00:00:00Z",
              "started_before": "2026-11-01T00:00:00Z"}

    async def rerated() -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Run a job; until the corrected tariff's event has reached the usage service a job
        finds nothing to change (that is eventual consistency, not an error): run another."""
        job = await api.ok("POST", "/v1/usage/rerating-jobs", {**period, "reason": f"RT_20CNT corrected ({fixed_import})"})
        assert job["status"] == "queued" and job["total"] == 2, job

        async def finished() -> dict[str, Any] | None:
            body = (await api.get(f"/v1/usage/rerating-jobs/{job['id']}")).json()
            return None if body["status"] in ("queued", "running") else dict(body)

        done = await wait_until(finished, timeout=60)
        return (job, done) if done["changed"] else None

    job, done = await wait_until(rerated, timeout=90)
    assert (done["status"], done["processed"], done["changed"]) == ("completed", 2, 2), done
    assert {k: Decimal(v) for k, v in done["deltas"].items()} == {"EUR": Decimal("0.2")}
    adjustments = (await api.get(f"/v1/usage/rerating-jobs/{job['id']}/adjustments")).json()["items"]
    assert sorted((a["record_id"], Decimal(a["old_amount"]), Decimal(a["new_amount"])) for a in adjustments) == [
        ("rr-1", Decimal("0.6418"), Decimal("0.7418")), ("rr-2", Decimal("0.6"), Decimal("0.7")),
    ]

    async def adjustment_pending() -> bool:
        body = (await api.get("/v1/billable-usage", account_id=account_id,
                              period_start="2026-11-04", period_end="2026-12-04")).json()
        return bool(body.get("pending_adjustments"))

    await wait_until(adjustment_pending, timeout=30)
    november = await api.ok("POST", "/v1/bill-runs", {"period_start": "2026-11-04", "period_end": "2026-12-04",
                                                     "bill_cycle_day": 4})
    await wait_bill_run(api, november["id"])
    invoices = {i["period_start"]: i for i in (await api.get("/v1/invoices", account_id=account_id)).json()["items"]}
    assert invoices["2026-10-04"]["total"] == {"amount": "4.24", "currency": "EUR"}  # never rewritten
    nov = (await api.get(f"/v1/invoices/{invoices['2026-11-04']['id']}")).json()
    assert sorted((line["kind"], line["amount"]["amount"]) for line in nov["lines"]) == [
        ("adjustment", "0.20"), ("recurring", "3.00"),
    ]
    assert nov["total"] == {"amount": "3.20", "currency": "EUR"}
