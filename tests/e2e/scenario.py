"""Steps of the billing chain, driven through the gateway only; shared by the e2e tests."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from rateline_shared.testing import shared_data_dir, wait_until
from tests.e2e.conftest import Api

PERIOD_START, PERIOD_END = date(2026, 10, 1), date(2026, 11, 1)


def plan_body(code: str, currency: str = "EUR") -> dict[str, Any]:
    return {
        "code": code,
        "name": f"Mobile {code}",
        "currency": currency,
        "recurring_fee": "10.00",
        "billing_period": "monthly",
        "rates": [
            {"service": "voice", "unit": "minute", "price": "0.10", "first_increment": 60, "increment": 60},
            {"service": "sms", "unit": "message", "price": "0.05"},
        ],
    }


async def retry_until_created(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Some creates depend on another service's event (a plan reaching the customer service's
    projection); until it arrives they are refused with a 422. Retry until created."""

    async def attempt() -> dict[str, Any] | None:
        resp = await api.post(path, body)
        if resp.status_code == 201:
            return dict(resp.json())
        assert resp.status_code == 422, f"{path}: {resp.status_code} {resp.text}"
        return None

    return await wait_until(attempt, timeout=30)


async def create_customer(
    api: Api, plan_id: str, msisdn: str, token: str = "tok_sandbox_success", cycle_day: int = 1
) -> dict[str, Any]:
    account = await api.ok(
        "POST", "/v1/accounts",
        {"name": f"Subscriber {msisdn}", "currency": "EUR", "timezone": "Europe/Berlin", "bill_cycle_day": cycle_day},
    )
    line = await api.ok("POST", f"/v1/accounts/{account['id']}/lines", {"msisdn": msisdn, "activated_at": "2026-09-01T00:00:00Z"})
    sub = await retry_until_created(
        api, "/v1/subscriptions",
        {"account_id": account["id"], "line_id": line["id"], "plan_id": plan_id, "start_date": "2026-09-01"},
    )
    method = await retry_until_created(api, "/v1/payment-methods", {"account_id": account["id"], "token": token, "default": True})
    return {"account": account, "line": line, "subscription": sub, "payment_method": method}


async def wait_usage_knows(api: Api, msisdn: str) -> None:
    """Wait until the usage service's projection knows the line, its subscription and the
    plan's rates (``currency`` is set only once the plan's event has arrived)."""

    async def known() -> bool:
        resp = await api.get(f"/v1/usage/subscribers/{msisdn}")
        body = resp.json() if resp.status_code == 200 else {}
        return body.get("currency") is not None and body.get("account_currency") is not None

    await wait_until(known, timeout=30)


def voice(source: str, rid: str, msisdn: str, seconds: int, when: datetime) -> dict[str, Any]:
    return {"source": source, "record_id": rid, "service": "voice", "msisdn": msisdn,
            "destination": "+4930123456", "started_at": when.isoformat(), "duration_seconds": seconds}


def sms(source: str, rid: str, msisdn: str, when: datetime) -> dict[str, Any]:
    return {"source": source, "record_id": rid, "service": "sms", "msisdn": msisdn,
            "destination": "+4930123456", "started_at": when.isoformat(), "count": 1}


def expected_usage(records: list[dict[str, Any]]) -> Decimal:
    """Independent arithmetic: voice in whole started minutes (60/60) at 0.10, SMS at 0.05."""
    total = Decimal(0)
    for r in records:
        if r["service"] == "voice":
            minutes = -(-r["duration_seconds"] // 60)
            total += Decimal("0.10") * minutes
        else:
            total += Decimal("0.05")
    return total


async def wait_billable(api: Api, account_id: str, count: int = 0) -> dict[str, Any]:
    """Wait until invoicing's projection holds ``count`` records of the account, its
    subscriptions and their plans (each arrives by its own event stream)."""
    async def seen() -> dict[str, Any] | None:
        resp = await api.get("/v1/billable-usage", account_id=account_id,
                             period_start=str(PERIOD_START), period_end=str(PERIOD_END))
        if resp.status_code != 200:
            return None
        body = resp.json()
        plans_known = bool(body["subscriptions"]) and all(sub["plan"] is not None for sub in body["subscriptions"])
        return body if body["records"] >= count and plans_known else None

    return await wait_until(seen, timeout=60)


async def run_bill_run(api: Api, **extra: Any) -> dict[str, Any]:
    run = await api.ok("POST", "/v1/bill-runs", {"period_start": str(PERIOD_START), "period_end": str(PERIOD_END), **extra})
    return await wait_bill_run(api, run["id"])


async def wait_bill_run(api: Api, run_id: str, timeout: float = 60) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        resp = await api.get(f"/v1/bill-runs/{run_id}")
        if resp.status_code != 200:
            return None
        body = resp.json()
        return body if body["status"].startswith("completed") else None

    return await wait_until(done, timeout=timeout)


async def all_pages(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        resp = await api.get(path, **query)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def october(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 10, day, hour, 0, tzinfo=UTC)




def tariff_zip(
    folder: str = "oldtutorial", *, skip: str = "", replace: tuple[str, str, str] | None = None,
    append: tuple[str, str] | None = None,
) -> bytes:
    """A zip of one of the shared CGRateS tariff-plan folders, as an operator uploads it;
    optionally without one file, with one text replaced (file, old, new) or appended (file, text)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in sorted((shared_data_dir() / "cgrates" / folder).glob("*.csv")):
            if path.name == skip:
                continue
            text = path.read_text()
            if replace and path.name == replace[0]:
                assert replace[1] in text, replace
                text = text.replace(replace[1], replace[2])
            if append and path.name == append[0]:
                text += append[1]
            z.writestr(f"{folder}/{path.name}", text)
    return buf.getvalue()
