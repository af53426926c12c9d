"""Products, plan versions and plan migrations through the HTTP API, with their events,
against real PostgreSQL and NATS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from rateline_shared.events.payloads import PlanMigrationScheduled, PlanPublished, PlanVersionPublished

PLAN: dict[str, Any] = {
    "code": "MOBILE-M",
    "name": "Mobile M",
    "currency": "EUR",
    "recurring_fee": "10.00",
    "rates": [{"service": "voice", "unit": "minute", "price": "0.10", "first_increment": 60, "increment": 60}],
}
SMS = {"service": "sms", "unit": "message", "price": "0.10"}
OPEN = {"unit_price": "0.05"}


def iso(when: datetime) -> str:
    return when.isoformat()


def now() -> datetime:
    return datetime.now(UTC)


def components(**changes: Any) -> dict[str, Any]:
    """Every kind of component, valid."""
    return {
        "recurring_fee": "12.00",
        "billing_period": "quarterly",
        "billing_timing": "arrears",
        "one_time_charges": [{"code": "ACT", "description": "Activation", "amount": "25.00"}],
        "rates": [
            {
                "service": "voice",
                "unit": "second",
                "pricing": "tariff",
                "tariff": {"category": "call", "subject": "*line"},
                "first_increment": 30,
            },
            {
                "service": "sms",
                "unit": "message",
                "pricing": "graduated",
                "tiers": [{"up_to": "100", "unit_price": "0.10"}, {"unit_price": "0.05", "flat_fee": "1.00"}],
                "minimum_charge": "2.00",
            },
            {"service": "mms", "unit": "message", "pricing": "volume", "tiers": [{"up_to": "10", "unit_price": "0.30"}, OPEN]},
            {"service": "data", "unit": "GB", "pricing": "package", "price": "5.00", "package_size": "1", "increment": 1024},
        ],
        "allowances": [
            {
                "code": "VOICE-100",
                "service": "voice",
                "quantity": "100",
                "unit": "minute",
                "destinations": ["49"],
                "pooled": True,
                "rollover_cap": "50",
                "thresholds": [50, 80, 100],
            }
        ],
        "spend_cap": {"amount": "100.00", "thresholds": [80, 100]},
        **changes,
    }


def problem_codes(resp: httpx.Response) -> list[tuple[str, str]]:
    assert resp.headers["content-type"] == "application/problem+json", resp.text
    return [(e["field"], e["code"]) for e in resp.json().get("errors", [])]


# --- products --------------------------------------------------------------------------------
async def test_products(client, test_keys) -> None:
    h = test_keys.headers("prod", ["catalog:*"])
    resp = await client.post("/v1/products", json={"code": "MOBILE", "name": "Mobile", "description": "SIM only"}, headers=h)
    assert resp.status_code == 201, resp.text
    product = resp.json()
    assert {k: product[k] for k in ("code", "name", "description")} == {"code": "MOBILE", "name": "Mobile", "description": "SIM only"}
    assert (await client.get(f"/v1/products/{product['id']}", headers=h)).json() == product
    again = await client.post("/v1/products", json={"code": "MOBILE", "name": "Other"}, headers=h)
    assert again.status_code == 409 and problem_codes(again) == [("code", "taken")]
    bad = await client.post("/v1/products", json={"code": "no spaces", "name": " "}, headers=h)
    assert bad.status_code == 422 and problem_codes(bad) == [("code", "invalid-code"), ("name", "blank")]
    assert (await client.post("/v1/products", json={"code": "X", "name": "X", "id": "mine"}, headers=h)).status_code == 422
    for i in range(3):
        assert (await client.post("/v1/products", json={"code": f"P{i}", "name": f"P{i}"}, headers=h)).status_code == 201
    seen, cursor = [], None
    while True:
        page = (await client.get("/v1/products", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=h)).json()
        seen += [p["code"] for p in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == ["MOBILE", "P0", "P1", "P2"]
    assert [p["code"] for p in (await client.get("/v1/products", params={"code": "P1"}, headers=h)).json()["items"]] == ["P1"]

    # plans reference products of their own tenant only
    plan = await client.post("/v1/plans", json={**PLAN, "product_id": product["id"]}, headers=h)
    assert plan.status_code == 201 and plan.json()["product_id"] == product["id"]
    listed = (await client.get("/v1/plans", params={"product_id": product["id"]}, headers=h)).json()["items"]
    assert [p["id"] for p in listed] == [plan.json()["id"]]
    other = test_keys.headers("prod-2", ["catalog:*"])
    resp = await client.post("/v1/plans", json={**PLAN, "product_id": product["id"]}, headers=other)
    assert resp.status_code == 422 and problem_codes(resp) == [("product_id", "unknown-product")]
    assert (await client.get(f"/v1/products/{product['id']}", headers=other)).status_code == 404
    assert (await client.get("/v1/products", headers=other)).json()["items"] == []

    ro = test_keys.headers("prod", ["catalog:read"])
    assert (await client.post("/v1/products", json={"code": "RO", "name": "RO"}, headers=ro)).status_code == 403
    assert (await client.get("/v1/products", headers=ro)).status_code == 200
    assert (await client.get("/v1/products", headers=test_keys.headers("prod", ["usage:read"]))).status_code == 403
    assert (await client.get("/v1/products")).status_code == 401


# --- versions --------------------------------------------------------------------------------
async def test_versions_with_effective_dates(client, test_keys) -> None:
    h = test_keys.headers("ver", ["catalog:*"])
    t0 = now()
    created = await client.post("/v1/plans", json={**PLAN, "effective_from": iso(t0 - timedelta(seconds=50))}, headers=h)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["current_version"]["version"] == 1
    # within the 60 s clock skew and after version 1: in force at once
    v2 = await client.post(
        f"/v1/plans/{plan['id']}/versions", json=components(effective_from=iso(t0 - timedelta(seconds=20))), headers=h
    )
    assert v2.status_code == 201, v2.text
    body = v2.json()
    assert (body["version"], body["plan_id"], body["currency"]) == (2, plan["id"], "EUR")
    assert body["recurring_fee"] == {"amount": "12.00", "currency": "EUR"}
    assert body["rates"][1]["tiers"] == [
        {"up_to": "100", "unit_price": "0.10", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.05", "flat_fee": "1.00"},
    ]
    assert body["rates"][0]["tariff"] == {"category": "call", "subject": "*line"}
    assert body["rates"][0]["price"] == "0"
    assert body["allowances"][0]["rollover_cap"] == "50" and body["allowances"][0]["pooled"] is True
    assert body["spend_cap"] == {"amount": "100.00", "thresholds": [80, 100]}
    assert body["one_time_charges"] == [{"code": "ACT", "description": "Activation", "amount": "25.00"}]
    # a later version does not change what is in force now
    later = t0 + timedelta(days=30)
    v3 = await client.post(f"/v1/plans/{plan['id']}/versions", json={**PLAN_COMPONENTS, "effective_from": iso(later), "currency": "EUR"}, headers=h)
    assert v3.status_code == 201, v3.text

    got = (await client.get(f"/v1/plans/{plan['id']}", headers=h)).json()
    assert got["current_version"] == body
    assert (got["recurring_fee"], got["billing_period"], got["rates"]) == (body["recurring_fee"], "quarterly", body["rates"])
    listed = (await client.get("/v1/plans", params={"code": PLAN["code"]}, headers=h)).json()["items"]
    assert listed == [got]

    numbers, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/plans/{plan['id']}/versions", params=params, headers=h)).json()
        numbers += [(v["version"], v["effective_from"]) for v in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert [n for n, _ in numbers] == [1, 2, 3]
    assert datetime.fromisoformat(numbers[2][1]) == later
    assert (await client.get(f"/v1/plans/{plan['id']}/versions/2", headers=h)).json() == body
    assert (await client.get(f"/v1/plans/{plan['id']}/versions/9", headers=h)).status_code == 404
    assert (await client.get(f"/v1/plans/{plan['id']}/versions", params={"cursor": "!!"}, headers=h)).status_code == 400
    assert (await client.get("/v1/plans/nope/versions", headers=h)).status_code == 404
    assert (await client.post("/v1/plans/nope/versions", json=components(effective_from=iso(later)), headers=h)).status_code == 404

    other = test_keys.headers("ver-2", ["catalog:*"])
    assert (await client.get(f"/v1/plans/{plan['id']}/versions", headers=other)).status_code == 404
    assert (
        await client.post(f"/v1/plans/{plan['id']}/versions", json=components(effective_from=iso(later + timedelta(1))), headers=other)
    ).status_code == 404
    ro = test_keys.headers("ver", ["catalog:read"])
    assert (
        await client.post(f"/v1/plans/{plan['id']}/versions", json=components(effective_from=iso(later + timedelta(1))), headers=ro)
    ).status_code == 403

    # versions are written once: the database refuses an update
    async with client.app.state.runtime.engine.connect() as conn:
        with pytest.raises(Exception, match="never updated"):
            await conn.execute(text("UPDATE plan_versions SET recurring_fee = 0 WHERE plan_id = :p"), {"p": plan["id"]})


PLAN_COMPONENTS = {k: v for k, v in PLAN.items() if k in ("recurring_fee", "rates")}


def rate(**changes: Any) -> dict[str, Any]:
    return {**SMS, **changes}


def graduated(*tiers: dict[str, Any]) -> dict[str, Any]:
    return {"service": "sms", "unit": "message", "pricing": "graduated", "tiers": list(tiers)}


def allowance(**changes: Any) -> dict[str, Any]:
    return {"code": "A", "service": "sms", "quantity": "10", "unit": "message", **changes}


BOUNDED = {"up_to": "10", "unit_price": "0.1"}
INVALID_VERSIONS = [
    ({"recurring_fee": "-1"}, "recurring_fee", "negative-amount"),
    ({"recurring_fee": "0.0000001"}, "recurring_fee", "too-many-decimals"),
    ({"recurring_fee": "100000000000000"}, "recurring_fee", "amount-too-large"),
    ({"billing_period": "weekly"}, "billing_period", "unknown-period"),
    ({"billing_timing": "later"}, "billing_timing", "unknown-timing"),
    ({"currency": "USD"}, "currency", "currency-changed"),
    ({"one_time_charges": [{"code": "bad code", "description": "x", "amount": "1"}]}, "one_time_charges.0.code", "invalid-code"),
    ({"one_time_charges": [{"code": "A", "description": "x", "amount": "1"}] * 2}, "one_time_charges.1.code", "duplicate-code"),
    ({"one_time_charges": [{"code": "A", "description": " ", "amount": "1"}]}, "one_time_charges.0.description", "blank"),
    (
        {"one_time_charges": [{"code": f"C{i}", "description": "x", "amount": "1"} for i in range(21)]},
        "one_time_charges",
        "too-many-charges",
    ),
    ({"rates": [rate(service="fax", unit="page")]}, "rates.0.service", "unknown-service"),
    ({"rates": [rate(unit="minute")]}, "rates.0.unit", "wrong-unit"),
    ({"rates": [rate(), rate()]}, "rates.1.service", "duplicate-service"),
    ({"rates": [rate(pricing="flat")]}, "rates.0.pricing", "unknown-pricing"),
    ({"rates": [rate(increment=60)]}, "rates.0.increment", "invalid-increment"),
    ({"rates": [rate(price=None)]}, "rates.0.price", "missing-price"),
    ({"rates": [rate(pricing="tariff", tariff={"category": "sms", "subject": "*any"})]}, "rates.0.price", "unused-price"),
    ({"rates": [rate(tiers=[OPEN])]}, "rates.0.tiers", "unused-tiers"),
    ({"rates": [rate(package_size="10")]}, "rates.0.package_size", "unused-package-size"),
    ({"rates": [rate(minimum_charge="1")]}, "rates.0.minimum_charge", "unused-minimum-charge"),
    ({"rates": [rate(tariff={"category": "sms", "subject": "*any"})]}, "rates.0.tariff", "unused-tariff"),
    ({"rates": [graduated()]}, "rates.0.tiers", "missing-tiers"),
    (
        {"rates": [graduated(*[{"up_to": str(i + 1), "unit_price": "1"} for i in range(20)], OPEN)]},
        "rates.0.tiers",
        "too-many-tiers",
    ),
    ({"rates": [graduated(OPEN, OPEN)]}, "rates.0.tiers.0.up_to", "open-tier-not-last"),
    ({"rates": [graduated(BOUNDED)]}, "rates.0.tiers.0.up_to", "last-tier-bounded"),
    ({"rates": [graduated(BOUNDED, {"up_to": "5", "unit_price": "1"}, OPEN)]}, "rates.0.tiers.1.up_to", "tiers-not-increasing"),
    ({"rates": [graduated({"up_to": "0", "unit_price": "1"}, OPEN)]}, "rates.0.tiers.0.up_to", "not-positive"),
    ({"rates": [rate(pricing="package")]}, "rates.0.package_size", "missing-package-size"),
    ({"rates": [rate(pricing="tariff", price=None)]}, "rates.0.tariff", "missing-tariff"),
    (
        {"rates": [rate(pricing="tariff", price=None, tariff={"category": "sms", "subject": "a b"})]},
        "rates.0.tariff.subject",
        "invalid-tariff-ref",
    ),
    ({"rates": [rate()], "allowances": [allowance(service="data", unit="GB")]}, "allowances.0.service", "no-rate-for-service"),
    ({"rates": [rate()], "allowances": [allowance(unit="GB")]}, "allowances.0.unit", "wrong-unit"),
    ({"rates": [rate()], "allowances": [allowance(quantity="0")]}, "allowances.0.quantity", "not-positive"),
    ({"rates": [rate()], "allowances": [allowance(destinations=["+49"])]}, "allowances.0.destinations.0", "invalid-destination"),
    ({"rates": [rate()], "allowances": [allowance(destinations=["49", "49"])]}, "allowances.0.destinations.1", "duplicate-destination"),
    (
        {"rates": [rate()], "allowances": [allowance(destinations=[str(100 + i) for i in range(201)])]},
        "allowances.0.destinations",
        "too-many-destinations",
    ),
    ({"rates": [rate()], "allowances": [allowance(), allowance()]}, "allowances.1.code", "duplicate-code"),
    ({"rates": [rate()], "allowances": [allowance(code=f"A{i}") for i in range(21)]}, "allowances", "too-many-allowances"),
    ({"rates": [rate()], "allowances": [allowance(thresholds=[0, 100])]}, "allowances.0.thresholds.0", "invalid-threshold"),
    ({"rates": [rate()], "allowances": [allowance(thresholds=[90, 80])]}, "allowances.0.thresholds", "thresholds-not-ascending"),
    ({"rates": [rate()], "allowances": [allowance(rollover_cap="-1")]}, "allowances.0.rollover_cap", "negative-amount"),
    ({"spend_cap": {"amount": "0"}}, "spend_cap.amount", "not-positive"),
    ({"spend_cap": {"amount": "10", "thresholds": [100, 100]}}, "spend_cap.thresholds", "thresholds-not-ascending"),
]


@pytest.fixture(scope="module")
async def versioned(client, test_keys) -> tuple[dict[str, str], str, datetime]:
    """A plan whose version 1 starts in a day (so a version before that is out of order)."""
    h = test_keys.headers("ver-bad", ["catalog:*"])
    start = now() + timedelta(days=1)
    resp = await client.post("/v1/plans", json={**PLAN, "effective_from": iso(start)}, headers=h)
    assert resp.status_code == 201, resp.text
    return h, resp.json()["id"], start


@pytest.mark.parametrize(("change", "field", "code"), INVALID_VERSIONS)
async def test_invalid_versions_are_refused(client, versioned, change, field, code) -> None:
    h, plan_id, start = versioned
    body = {k: v for k, v in components(effective_from=iso(start + timedelta(days=1)), **change).items() if v is not None}
    body["rates"] = [{k: v for k, v in r.items() if v is not None} for r in body["rates"]]
    resp = await client.post(f"/v1/plans/{plan_id}/versions", json=body, headers=h)
    assert resp.status_code == 422, resp.text
    assert resp.json()["type"].endswith("/unprocessable")
    assert (field, code) in problem_codes(resp)


@pytest.mark.parametrize(
    ("when", "code"),
    [
        (lambda start: now() - timedelta(minutes=5), ["in-the-past", "not-after-previous"]),
        (lambda start: start - timedelta(hours=1), ["not-after-previous"]),
        (lambda start: start, ["not-after-previous"]),
        (lambda start: (start + timedelta(days=1)).replace(tzinfo=None), ["naive-datetime"]),
    ],
)
async def test_version_dates_are_checked(client, versioned, when, code) -> None:
    h, plan_id, start = versioned
    resp = await client.post(f"/v1/plans/{plan_id}/versions", json=components(effective_from=iso(when(start))), headers=h)
    assert resp.status_code == 422, resp.text
    assert problem_codes(resp) == [("effective_from", c) for c in code]


async def test_refused_versions_wrote_nothing(client, versioned) -> None:
    h, plan_id, _ = versioned
    # (runs after the refusals above: pytest keeps file order)
    versions = (await client.get(f"/v1/plans/{plan_id}/versions", headers=h)).json()["items"]
    assert [v["version"] for v in versions] == [1]
    bad = await client.post(f"/v1/plans/{plan_id}/versions", json=components(effective_from=iso(now() + timedelta(days=9)), price=1), headers=h)
    assert bad.status_code == 422 and bad.json()["type"].endswith("/validation-error")


# --- migrations and events -------------------------------------------------------------------
async def test_migrations(client, test_keys) -> None:
    h = test_keys.headers("mig", ["catalog:*"])
    plan = (await client.post("/v1/plans", json=PLAN, headers=h)).json()
    v2_from = now() + timedelta(days=10)
    v2 = await client.post(f"/v1/plans/{plan['id']}/versions", json=components(effective_from=iso(v2_from)), headers=h)
    assert v2.status_code == 201
    url = f"/v1/plans/{plan['id']}/migrations"
    everyone = await client.post(url, json={"to_version": 2, "effective_from": iso(v2_from + timedelta(days=1))}, headers=h)
    assert everyone.status_code == 201, everyone.text
    some = await client.post(url, json={"to_version": 1, "effective_from": iso(now()), "subscription_ids": ["s1", "s2"]}, headers=h)
    assert some.status_code == 201, some.text
    assert (everyone.json()["subscription_ids"], some.json()["subscription_ids"]) == (None, ["s1", "s2"])
    assert everyone.json()["plan_id"] == plan["id"] and everyone.json()["to_version"] == 2
    listed = (await client.get(url, headers=h)).json()
    assert listed["items"] == [everyone.json(), some.json()]
    page = (await client.get(url, params={"limit": 1}, headers=h)).json()
    assert page["items"] == [everyone.json()] and page["next_cursor"]

    cases = [
        ({"to_version": 3, "effective_from": iso(v2_from)}, ("to_version", "unknown-version")),
        ({"to_version": 1, "effective_from": iso(now() - timedelta(hours=1))}, ("effective_from", "in-the-past")),
        ({"to_version": 2, "effective_from": iso(now() + timedelta(days=1))}, ("effective_from", "before-version-effective")),
        ({"to_version": 1, "effective_from": iso(now()), "subscription_ids": []}, ("subscription_ids", "empty")),
        ({"to_version": 1, "effective_from": iso(now()), "subscription_ids": ["a", "a"]}, ("subscription_ids.1", "duplicate-subscription")),
        ({"to_version": 1, "effective_from": iso(now()), "subscription_ids": [" "]}, ("subscription_ids.0", "invalid-id")),
        (
            {"to_version": 1, "effective_from": iso(now()), "subscription_ids": [f"s{i}" for i in range(10_001)]},
            ("subscription_ids", "too-many-subscriptions"),
        ),
        ({"to_version": 1, "effective_from": "2030-01-01T00:00:00"}, ("effective_from", "naive-datetime")),
    ]
    for body, expected in cases:
        resp = await client.post(url, json=body, headers=h)
        assert resp.status_code == 422, (body, resp.text)
        assert expected in problem_codes(resp)
    assert len((await client.get(url, headers=h)).json()["items"]) == 2
    assert (await client.post(url, json={"to_version": "2", "effective_from": iso(v2_from)}, headers=h)).status_code == 422
    assert (await client.post("/v1/plans/nope/migrations", json={"to_version": 1, "effective_from": iso(now())}, headers=h)).status_code == 404
    assert (await client.get("/v1/plans/nope/migrations", headers=h)).status_code == 404
    ro = test_keys.headers("mig", ["catalog:read"])
    assert (await client.post(url, json={"to_version": 1, "effective_from": iso(now())}, headers=ro)).status_code == 403
    assert (await client.get(url, headers=test_keys.headers("mig-2", ["catalog:*"]))).status_code == 404


async def test_events_on_the_bus(client, test_keys, events) -> None:
    h = test_keys.headers("evt", ["catalog:*"])
    product = (await client.post("/v1/products", json={"code": "MOBILE", "name": "Mobile"}, headers=h)).json()
    plan = (await client.post("/v1/plans", json={**PLAN, "product_id": product["id"]}, headers=h)).json()
    mine = lambda e: e.tenant == "evt" and e.subject == plan["id"]  # noqa: E731

    (published,) = await events("catalog.plan.published", mine)
    assert PlanPublished.model_validate(published.data).plan_id == plan["id"]
    (first,) = await events("catalog.plan_version.published", mine)
    v1 = PlanVersionPublished.model_validate(first.data)
    assert (v1.version, v1.product_id, v1.code, v1.currency) == (1, product["id"], "MOBILE-M", "EUR")
    assert v1.effective_from == datetime.fromisoformat(plan["current_version"]["effective_from"])
    assert first.dataschema == "urn:rateline:event:catalog.plan_version.published:v1"

    v2_from = now() + timedelta(days=3)
    v2 = (await client.post(f"/v1/plans/{plan['id']}/versions", json=components(effective_from=iso(v2_from)), headers=h)).json()
    versions = await events("catalog.plan_version.published", mine, count=2)
    raw = versions[1].data
    payload = PlanVersionPublished.model_validate(raw)
    assert (payload.version, payload.effective_from, payload.billing_timing) == (2, v2_from, "arrears")
    for key in ("one_time_charges", "rates", "allowances", "spend_cap"):
        assert raw[key] == v2[key], key
    assert raw["recurring_fee"] == "12.00" and raw["rates"][3]["package_size"] == "1"
    assert len(json.dumps(raw)) < 8_000  # a full version stays a small event

    mig = (await client.post(f"/v1/plans/{plan['id']}/migrations", json={"to_version": 2, "effective_from": iso(v2_from), "subscription_ids": ["s-1"]}, headers=h)).json()
    (scheduled,) = await events("catalog.plan_migration.scheduled", mine)
    m = PlanMigrationScheduled.model_validate(scheduled.data)
    assert (m.migration_id, m.to_version, m.effective_from, m.subscription_ids) == (mig["id"], 2, v2_from, ["s-1"])
