"""The demo operator: a plan, three customers, a month of usage, one bill run, collected
payments, all created through the public API of the gateway (nothing behind its back).

Safe to run again after a crash half-way: everything is looked up before it is created (the
plan by code, accounts by ``external_ref``, lines by MSISDN, subscriptions by line, payment
methods by account), usage records carry fixed ids that the usage service de-duplicates, and
an existing bill run for the period is reused.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

T = TypeVar("T")

PLAN_CODE = "DEMO-MOBILE"
CURRENCY = "EUR"
TIMEZONE = "Europe/Berlin"
SOURCE = "demo-switch"
SEED = 20_240_601
RECORDS = 300


@dataclass(frozen=True)
class DemoCustomer:
    ref: str
    name: str
    msisdn: str
    card_token: str


CUSTOMERS = (
    DemoCustomer("demo-1", "Anna Schmidt", "+4915112345671", "tok_sandbox_success"),
    DemoCustomer("demo-2", "Jonas Becker", "+4915112345672", "tok_sandbox_success"),
    DemoCustomer("demo-3", "Lea Wagner", "+4915112345673", "tok_sandbox_declined"),
)

PLAN = {
    "code": PLAN_CODE,
    "name": "Demo Mobile",
    "currency": CURRENCY,
    "recurring_fee": "9.99",
    "billing_period": "monthly",
    "rates": [
        {"service": "voice", "unit": "minute", "price": "0.09", "first_increment": 60,
         "increment": 60},
        {"service": "sms", "unit": "message", "price": "0.05"},
    ],
}


class DemoError(RuntimeError):
    """The API answered something the demo did not expect, or a wait timed out."""


def previous_month(today: dt.date) -> tuple[dt.date, dt.date]:
    """First day of the previous month and the first day of this month (exclusive end)."""
    end = today.replace(day=1)
    start = (end - dt.timedelta(days=1)).replace(day=1)
    return start, end


def demo_records(
    msisdns: tuple[str, ...], start: dt.date, end: dt.date, count: int = RECORDS, seed: int = SEED
) -> list[dict[str, Any]]:
    """``count`` usage records spread over [start, end) local time, the same on every call.

    About four calls in five are voice (5 s to 20 min, most of them short), the rest SMS.
    Every record stays inside local business hours of a day of the period, so none straddles
    the period's edges whatever the time zone.
    """
    rng = random.Random(seed)
    zone = ZoneInfo(TIMEZONE)
    days = (end - start).days
    records: list[dict[str, Any]] = []
    for n in range(count):
        day = start + dt.timedelta(days=rng.randrange(days))
        local = dt.datetime.combine(day, dt.time(7), zone) + dt.timedelta(
            seconds=rng.randrange(14 * 3600)
        )
        record: dict[str, Any] = {
            "source": SOURCE,
            "record_id": f"demo-{start:%Y%m}-{n + 1:04d}",
            "msisdn": msisdns[rng.randrange(len(msisdns))],
            "destination": f"+49{rng.choice(['30', '40', '89', '151', '160', '176'])}"
            f"{rng.randrange(10**6, 10**7)}",
            "started_at": local.astimezone(dt.UTC).isoformat(),
        }
        if rng.random() < 0.8:
            record["service"] = "voice"
            record["duration_seconds"] = min(1200, 5 + int(rng.expovariate(1 / 150)))
        else:
            record["service"] = "sms"
        records.append(record)
    records.sort(key=lambda r: r["started_at"])
    return records


class Api:
    """The gateway with a bearer token; every unexpected answer is a :class:`DemoError`."""

    def __init__(self, gateway_url: str, client_id: str, client_secret: str) -> None:
        self.http = httpx.Client(base_url=gateway_url, timeout=30.0)
        resp = self.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id,
                  "client_secret": client_secret},
        )
        self.check(resp, "POST /oauth/token")
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def check(resp: httpx.Response, what: str, ok: tuple[int, ...] = (200, 201, 202)) -> Any:
        if resp.status_code not in ok:
            raise DemoError(f"{what}: {resp.status_code} {resp.text[:600]}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.check(self.http.get(path, params=params), f"GET {path}")

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.check(self.http.post(path, json=body), f"POST {path}")

    def first(self, path: str, **params: Any) -> dict[str, Any] | None:
        items = self.get(path, **params)["items"]
        return items[0] if items else None

    def all(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self.get(path, **params, limit=500, **({"cursor": cursor} if cursor else {}))
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def post_when_ready(self, path: str, body: dict[str, Any], timeout: float) -> Any:
        """POST, retrying while the service's projection has not caught up yet (422 naming
        an id it has not heard of through events)."""
        last: httpx.Response | None = None

        def attempt() -> Any:
            nonlocal last
            last = self.http.post(path, json=body)
            return self.check(last, f"POST {path}") if last.status_code != 422 else None

        try:
            return wait_for(attempt, f"POST {path} to be accepted", timeout)
        except DemoError as exc:
            detail = last.text[:600] if last is not None else ""
            raise DemoError(f"{exc}; last answer: {detail}") from None


def wait_for(probe: Callable[[], T | None], what: str, timeout: float) -> T:
    """Poll ``probe`` until it returns something truthy (events travel asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def load_demo(
    gateway_url: str,
    client_id: str,
    client_secret: str,
    *,
    today: dt.date | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Create the demo operator's data and bill the previous month; returns a summary."""
    api = Api(gateway_url, client_id, client_secret)
    try:
        return _load(api, today or dt.date.today(), timeout)
    finally:
        api.close()


def _subscriber_complete(api: Api, msisdn: str) -> bool:
    resp = api.http.get(f"/v1/usage/subscribers/{quote(msisdn)}")
    if resp.status_code == 404:
        return False
    known = api.check(resp, "GET /v1/usage/subscribers")
    return bool(known["subscription_id"] and known["plan_code"] and known["account_currency"])


def _billable(api: Api, account_id: str, period: dict[str, str], records: int) -> bool:
    resp = api.http.get("/v1/billable-usage", params={"account_id": account_id, **period})
    if resp.status_code == 404:  # the account has not reached invoicing yet
        return False
    usage = api.check(resp, "GET /v1/billable-usage")
    plans_known = all(s["plan"] is not None for s in usage["subscriptions"])
    return bool(usage["records"] >= records and usage["subscriptions"] and plans_known)


def _finished_run(api: Api, run_id: str) -> dict[str, Any] | None:
    run: dict[str, Any] = api.get(f"/v1/bill-runs/{run_id}")
    return run if run["status"].startswith("completed") else None


def _settled_payment(api: Api, invoice_id: str) -> dict[str, Any] | None:
    """The first payment attempt of the invoice that has an outcome (succeeded or failed)."""
    return next(
        (p for p in api.all("/v1/payments", invoice_id=invoice_id)
         if p["status"] in ("succeeded", "failed")),
        None,
    )


def _load(api: Api, today: dt.date, timeout: float) -> dict[str, Any]:
    start, end = previous_month(today)
    plan = api.first("/v1/plans", code=PLAN_CODE) or api.post("/v1/plans", PLAN)
    activated = dt.datetime.combine(start, dt.time(), ZoneInfo(TIMEZONE)).isoformat()

    accounts: dict[str, dict[str, Any]] = {}
    for c in CUSTOMERS:
        account = api.first("/v1/accounts", external_ref=c.ref) or api.post(
            "/v1/accounts",
            {"name": c.name, "currency": CURRENCY, "timezone": TIMEZONE, "bill_cycle_day": 1,
             "country": "DE", "external_ref": c.ref},
        )
        line = api.first("/v1/lines", msisdn=c.msisdn) or api.post(
            f"/v1/accounts/{account['id']}/lines", {"msisdn": c.msisdn, "activated_at": activated}
        )
        if api.first("/v1/subscriptions", line_id=line["id"]) is None:
            api.post_when_ready(  # the customer service learns the plan from catalog's event
                "/v1/subscriptions",
                {"account_id": account["id"], "plan_id": plan["id"], "line_id": line["id"],
                 "start_date": start.isoformat()},
                timeout,
            )
        if api.first("/v1/payment-methods", account_id=account["id"]) is None:
            api.post_when_ready(  # the payment service learns the account from an event
                "/v1/payment-methods",
                {"account_id": account["id"], "token": c.card_token, "default": True},
                timeout,
            )
        accounts[c.msisdn] = account

    for c in CUSTOMERS:  # usage rates a number once it knows the line, its plan and account
        wait_for(
            partial(_subscriber_complete, api, c.msisdn),
            f"the usage service to know {c.msisdn} with its plan",
            timeout,
        )

    records = demo_records(tuple(c.msisdn for c in CUSTOMERS), start, end)
    for i in range(0, len(records), 100):
        api.post("/v1/usage/records", {"records": records[i : i + 100]})
    # A rerun after a crash finds its records again as duplicates; any that were rejected
    # back then (e.g. sent before the line was known) are rated now.
    if api.first("/v1/usage/records", source=SOURCE, status="rejected") is not None:
        api.post("/v1/usage/records/reprocess", {"all_rejected": True})

    expected = {c.msisdn: 0 for c in CUSTOMERS}
    for r in records:
        expected[r["msisdn"]] += 1
    period = {"period_start": start.isoformat(), "period_end": end.isoformat()}
    for msisdn, count in expected.items():
        account_id = accounts[msisdn]["id"]
        wait_for(
            partial(_billable, api, account_id, period, count),
            f"invoicing to hold {count} records and the plan of {msisdn}",
            timeout,
        )

    run = next(
        (r for r in api.all("/v1/bill-runs") if r["period_start"] == period["period_start"]
         and r["period_end"] == period["period_end"]),
        None,
    ) or api.post("/v1/bill-runs", {**period, "auto_finalize": True})
    run = wait_for(partial(_finished_run, api, run["id"]), "the bill run to complete", timeout)

    invoices = []
    for c in CUSTOMERS:
        account = accounts[c.msisdn]
        invoice = next(
            (i for i in api.all("/v1/invoices", account_id=account["id"])
             if i["period_start"] == period["period_start"]),
            None,
        )
        if invoice is None:
            raise DemoError(f"no invoice for {c.ref} after bill run {run['id']}: {run['errors']}")
        payment = wait_for(
            partial(_settled_payment, api, invoice["id"]),
            f"the payment of invoice {invoice['number']}",
            timeout,
        )
        invoices.append(
            {
                "customer": c.name,
                "account_id": account["id"],
                "msisdn": c.msisdn,
                "number": invoice["number"],
                "total": invoice["total"]["amount"],
                "currency": invoice["total"]["currency"],
                "records": expected[c.msisdn],
                "payment_status": payment["status"],
                "failure_code": payment.get("failure_code"),
            }
        )
    return {
        "plan": {"id": plan["id"], "code": PLAN_CODE},
        "period": period,
        "records": len(records),
        "bill_run": {"id": run["id"], "status": run["status"]},
        "invoices": invoices,
        "billed_total": str(sum(Decimal(i["total"]) for i in invoices)),
    }
