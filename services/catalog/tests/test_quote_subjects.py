"""Quotes whose subject names a line (MSISDN or id) or a plan, against the tutorial2 tariff
plan (CGRateS sample data) and the catalog's projection of customer lines and subscriptions.

Expected costs (tutorial2, see test_tariffs_api.py): call 1001 -> 1002 85 s under RP_1001
(RT_60C: 0.1 + 85 x 0.01) = 0.95; under RP_STANDARD peak to prefix 10 (RT_120C: 0.2 + 1.2 +
25 x 0.02) = 1.90; RP_SPECIAL_BLC (RT_10C_CN, connect fee only) = 0.10; sms to 1002 under RP_SMS
0.1 per message; data under RP_DATA 1 per started 1024 units.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from rateline_shared.events.payloads import AccountCreated, LineCreated, SubscriptionActivated
from rateline_shared.testing import shared_data_dir, wait_until

TENANT = "quote-lines"
MONDAY = "2019-03-04T13:00:00Z"
CALL = {"category": "call", "destination": "1002", "start": MONDAY, "usage": 85}
SMS = {"category": "sms", "destination": "1002", "start": MONDAY, "usage": 1}
DATA = {"category": "data", "destination": "internet", "start": MONDAY, "usage": 2000}


def tutorial2() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted((shared_data_dir() / "cgrates" / "tutorial2").glob("*.csv")):
            z.writestr(p.name, p.read_text())
    return buf.getvalue()


def tariff(service: str, unit: str, category: str, subject: str) -> dict[str, Any]:
    return {"service": service, "unit": unit, "pricing": "tariff", "tariff": {"category": category, "subject": subject}}


TARIFF_PLAN = {
    "code": "TARIFFED",
    "name": "Tariffed",
    "currency": "EUR",
    "recurring_fee": "5.00",
    "rates": [
        tariff("voice", "second", "call", "*line"),
        tariff("sms", "message", "sms", "*any"),
        tariff("data", "KB", "data", "*any"),
    ],
}


@pytest.fixture(scope="module")
async def world(client, test_keys, play) -> dict[str, Any]:
    """A tariff import, a tariffed plan, a per-unit plan, and lines fed by customer events."""
    h = test_keys.headers(TENANT, ["catalog:*"])
    resp = await client.post(
        "/v1/tariff-imports",
        data={"format": "cgrates", "currency": "EUR"},
        files={"file": ("t.zip", tutorial2(), "application/zip")},
        headers=h,
    )
    assert resp.status_code == 201, resp.text
    plan = (await client.post("/v1/plans", json=TARIFF_PLAN, headers=h)).json()
    flat = (
        await client.post(
            "/v1/plans",
            json={"code": "FLAT", "name": "Flat", "currency": "EUR", "recurring_fee": "1",
                  "rates": [{"service": "voice", "unit": "minute", "price": "0.1"}]},
            headers=h,
        )
    ).json()
    t = datetime(2019, 3, 1, tzinfo=UTC)
    await play("customer", "customer.account.created", TENANT, AccountCreated(
        account_id="acc-nz", name="Kiwi", currency="EUR", timezone="Pacific/Auckland", bill_cycle_day=1,
        country="NZ", created_at=t,
    ))
    lines = [("line-1", "+1001", "acc-1"), ("line-2", "+1002", "acc-1"), ("line-3", "+1003", "acc-1"),
             ("line-4", "+1004", "acc-nz")]
    for line_id, msisdn, account_id in lines:
        await play("customer", "customer.line.created", TENANT, LineCreated(
            line_id=line_id, account_id=account_id, msisdn=msisdn, status="active", activated_at=t,
        ))
    subs = [("sub-1", "line-1", plan["id"], date(2019, 3, 1)), ("sub-4", "line-4", plan["id"], date(2019, 3, 4)),
            ("sub-3", "line-3", flat["id"], date(2019, 3, 1))]
    for sub_id, line_id, plan_id, start in subs:
        await play("customer", "customer.subscription.activated", TENANT, SubscriptionActivated(
            subscription_id=sub_id, account_id="acc-1", line_id=line_id, plan_id=plan_id,
            start_date=start, activated_at=t,
        ))
    # the projection is fed asynchronously: wait until line-3's subscription has arrived
    async def projected() -> bool:
        r = await client.post("/v1/rating/quote", json={**CALL, "subject": "line-3"}, headers=h)
        return r.status_code == 422 and r.json()["type"].endswith("/rate-not-tariff")

    await wait_until(projected)
    return {"h": h, "plan": plan, "flat": flat}


async def quote(client, world, **body: Any) -> Any:
    return await client.post("/v1/rating/quote", json=body, headers=world["h"])


async def test_by_msisdn_and_line_id(client, world) -> None:
    for subject in ("+1001", "line-1"):
        resp = await quote(client, world, **CALL, subject=subject)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        # *line -> the MSISDN's digits: profile call/1001, RP_1001
        assert (body["cost"], body["rating_plan"], body["subject"]) == ("0.9500", "RP_1001", "1001")
        assert (body["plan_id"], body["plan_version"], body["line_id"], body["subscription_id"]) == (
            world["plan"]["id"], 1, "line-1", "sub-1"
        )
    sms = (await quote(client, world, **SMS, subject="+1001")).json()
    assert (sms["cost"], sms["rating_plan"]) == ("0.1000", "RP_SMS")
    data = (await quote(client, world, **DATA, subject="line-1")).json()
    assert (data["cost"], data["rating_plan"], data["usage"]) == ("2.0000", "RP_DATA", "2048")


async def test_a_subscription_starts_at_local_midnight(client, world) -> None:
    # sub-4 starts 2019-03-04 in Pacific/Auckland (UTC+13): 2019-03-03T11:00Z
    resp = await quote(client, world, **{**CALL, "start": "2019-03-03T12:00:00Z"}, subject="+1004")
    assert resp.status_code == 200, resp.text
    assert (resp.json()["subscription_id"], resp.json()["subject"]) == ("sub-4", "*any")  # no profile 1004
    resp = await quote(client, world, **{**CALL, "start": "2019-03-03T10:59:59Z"}, subject="line-4")
    assert resp.status_code == 422 and resp.json()["type"].endswith("/no-subscription")


async def test_by_plan_id(client, world) -> None:
    plan_id = world["plan"]["id"]
    sms = (await quote(client, world, **{**SMS, "usage": 3}, subject=plan_id)).json()
    assert (sms["cost"], sms["rating_plan"], sms["plan_id"], sms["plan_version"], sms["line_id"]) == (
        "0.3000", "RP_SMS", plan_id, 1, None
    )
    data = (await quote(client, world, **DATA, subject=plan_id)).json()
    assert (data["cost"], data["rating_plan"]) == ("2.0000", "RP_DATA")
    resp = await quote(client, world, **CALL, subject=plan_id)
    assert resp.status_code == 422
    assert resp.json()["type"].endswith("/line-subject-needs-line")
    assert "*line" in resp.json()["detail"]


async def test_refusals(client, world) -> None:
    cases = [
        ({**CALL, "subject": world["flat"]["id"]}, "rate-not-tariff"),
        ({**CALL, "subject": "line-3"}, "rate-not-tariff"),
        ({**CALL, "category": "mms", "subject": "+1001"}, "no-rate-for-category"),
        ({**CALL, "subject": "+1002"}, "no-subscription"),  # a line without a subscription
        ({**CALL, "subject": "line-1", "start": "2019-02-28T23:59:59Z"}, "no-subscription"),  # before it started
    ]
    for body, slug in cases:
        resp = await quote(client, world, **body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["type"].endswith("/" + slug), (body, resp.text)


async def test_unknown_subjects_are_cgrates_subjects(client, world, test_keys) -> None:
    # not a line, line id or plan: rated as a CGRateS subject, as before
    plain = (await quote(client, world, **CALL, subject="1001")).json()
    assert (plain["rating_plan"], plain["cost"], plain["plan_id"], plain["line_id"]) == ("RP_1001", "0.9500", None, None)
    unknown = (await quote(client, world, **CALL, subject="+4930123456")).json()
    assert (unknown["rating_plan"], unknown["subject"], unknown["cost"]) == ("RP_STANDARD", "*any", "1.9000")
    # another tenant's lines and plans are unknown subjects there
    other = test_keys.headers("quote-other", ["catalog:*"])
    resp = await client.post(
        "/v1/tariff-imports",
        data={"format": "cgrates", "currency": "EUR"},
        files={"file": ("t.zip", tutorial2(), "application/zip")},
        headers=other,
    )
    assert resp.status_code == 201
    for subject in ("+1001", "line-1", world["plan"]["id"]):
        body = (await client.post("/v1/rating/quote", json={**CALL, "subject": subject}, headers=other)).json()
        assert (body["rating_plan"], body["line_id"], body["plan_id"]) == ("RP_STANDARD", None, None), subject


async def test_line_quotes_follow_versions_and_migrations(client, world) -> None:
    h, plan_id = world["h"], world["plan"]["id"]
    v2_from = datetime.now(UTC) + timedelta(hours=1)
    v2 = {
        **{k: TARIFF_PLAN[k] for k in ("recurring_fee",)},
        "effective_from": v2_from.isoformat(),
        "rates": [tariff("voice", "second", "call", "RPF_SPECIAL_BLC")],
    }
    assert (await client.post(f"/v1/plans/{plan_id}/versions", json=v2, headers=h)).status_code == 201
    after = (v2_from + timedelta(hours=1)).isoformat()
    # sub-1 started in 2019: it stays on version 1 after version 2 comes into force
    body = (await quote(client, world, **{**CALL, "start": after}, subject="+1001")).json()
    assert (body["rating_plan"], body["plan_version"]) == ("RP_1001", 1)
    # a migration moves it from its effective_from on
    mig = {"to_version": 2, "effective_from": v2_from.isoformat(), "subscription_ids": ["sub-1"]}
    assert (await client.post(f"/v1/plans/{plan_id}/migrations", json=mig, headers=h)).status_code == 201
    body = (await quote(client, world, **{**CALL, "start": after}, subject="+1001")).json()
    assert (body["rating_plan"], body["cost"], body["plan_version"]) == ("RP_SPECIAL_BLC", "0.1000", 2)
    before = (v2_from - timedelta(minutes=1)).isoformat()
    body = (await quote(client, world, **{**CALL, "start": before}, subject="line-1")).json()
    assert (body["rating_plan"], body["plan_version"]) == ("RP_1001", 1)
    # a plan-id quote uses the version in force now (still 1: version 2 starts in an hour)
    assert (await quote(client, world, **CALL, subject=plan_id)).json()["type"].endswith("/line-subject-needs-line")
