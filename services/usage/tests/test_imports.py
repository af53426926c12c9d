"""CSV intake, file imports, column mappings and the rejected-record workflow, through the API.

Against real PostgreSQL and NATS; the customer and catalog services are played by publishing
their events, exactly as their outbox relays would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import text

from rateline_shared.events import new_event
from rateline_shared.events.payloads import (
    AccountCreated,
    LineCreated,
    PlanPublished,
    SubscriptionActivated,
    UsageRate,
)
from rateline_shared.testing import running_service, service_settings, wait_until
from rateline_usage.app import MIGRATIONS, create_app
from rateline_usage.settings import UsageSettings

NOW = datetime.now(UTC).replace(microsecond=0)
ACTIVATED = NOW - timedelta(days=30)
CALL_AT = NOW - timedelta(days=2)
LOCAL = CALL_AT.strftime("%Y-%m-%d %H:%M:%S")  # switch files: local time without offset


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(UsageSettings, pg_server, nats_server, test_keys, "usage_imports")
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


def h(test_keys, tenant: str, scopes: list[str] | None = None, **extra: str) -> dict[str, str]:
    return test_keys.headers(tenant, scopes or ["usage:*"]) | extra


async def publish(client: httpx.AsyncClient, service: str, type_: str, tenant: str, data: BaseModel) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    event = new_event(service=service, type=type_, tenant=tenant, data=data)
    await runtime.js.publish(event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})


async def subscriber(client, test_keys, tenant: str, msisdn: str) -> None:
    """A fully known subscriber: plan, account, line and subscription projected."""
    account, line, sub, plan = (str(uuid.uuid4()) for _ in range(4))
    await publish(client, "catalog", "catalog.plan.published", tenant, PlanPublished(
        plan_id=plan, code=f"P-{plan[:8]}", name="Mobile S", currency="EUR", recurring_fee=Decimal("10.00"),
        billing_period="monthly", published_at=NOW, rates=[
            UsageRate(service="voice", unit="minute", price=Decimal("0.10"), first_increment=60, increment=60),
            UsageRate(service="sms", unit="message", price=Decimal("0.05")),
        ],
    ))
    await publish(client, "customer", "customer.account.created", tenant, AccountCreated(
        account_id=account, name="Anna", currency="EUR", timezone="UTC", bill_cycle_day=1, country="DE",
        created_at=ACTIVATED,
    ))
    await publish(client, "customer", "customer.line.created", tenant, LineCreated(
        line_id=line, account_id=account, msisdn=msisdn, status="active", activated_at=ACTIVATED,
    ))
    await publish(client, "customer", "customer.subscription.activated", tenant, SubscriptionActivated(
        subscription_id=sub, account_id=account, line_id=line, plan_id=plan, start_date=ACTIVATED.date(),
        activated_at=ACTIVATED,
    ))

    async def ready() -> bool:
        r = await client.get(f"/v1/usage/subscribers/{msisdn}", headers=h(test_keys, tenant))
        return r.status_code == 200 and bool(r.json()["plan_code"]) and bool(r.json()["account_currency"])

    await wait_until(ready)


async def records(client, test_keys, tenant: str, **query: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/usage/records", params={"limit": "500", **query}, headers=h(test_keys, tenant))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def asterisk(uniqueid: str, src: str, billsec: str = "90", disposition: str = "ANSWERED") -> str:
    return (
        f'"acct","{src}","+4930123456","from-internal","","SIP/100-1","SIP/trunk-2","Dial","",'
        f'"{LOCAL}","{LOCAL}","{LOCAL}",95,{billsec},"{disposition}","DOCUMENTATION","{uniqueid}",""'
    )


def freeswitch(uuid_: str, number: str, billsec: str = "60", answered: bool = True) -> str:
    answer = LOCAL if answered else ""
    return (
        f'"Anna","{number}","+4930123456","default","{LOCAL}","{answer}","{LOCAL}","64","{billsec}",'
        f'"NORMAL_CLEARING","{uuid_}","","acct"'
    )


async def post_import(client, test_keys, tenant: str, body: str, **query: str) -> httpx.Response:
    return await client.post(
        "/v1/usage/imports", params=query, content=body.encode(),
        headers=h(test_keys, tenant, **{"content-type": "text/csv"}),
    )


# --- CSV on POST /v1/usage/records --------------------------------------------------------
async def test_csv_batch_goes_through_the_same_intake(client, test_keys) -> None:
    tenant, msisdn = "csv", "+4917122222222"
    await subscriber(client, test_keys, tenant, msisdn)
    body = (
        "source,record_id,service,msisdn,destination,started_at,duration_seconds,count\n"
        f"sw1,c-1,voice,{msisdn},+4930123456,{CALL_AT.isoformat()},90,\n"
        f"sw1,s-1,sms,0171 22222222,,{CALL_AT.isoformat()},,3\n"
        f"sw1,c-2,voice,+4915199999999,,{CALL_AT.isoformat()},30,\n"
        f"sw1,c-1,voice,{msisdn},,{CALL_AT.isoformat()},90,\n"
    )
    r = await client.post(
        "/v1/usage/records", content=body, headers=h(test_keys, tenant, **{"content-type": "text/csv; charset=utf-8"})
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["received"], got["rated"], got["rejected"], got["duplicates"]) == (4, 2, 1, 1)
    assert [(x["row"], x["status"]) for x in got["results"]] == [
        (1, "rated"), (2, "rated"), (3, "rejected"), (4, "duplicate"),
    ]
    stored = {x["record_id"]: x for x in await records(client, test_keys, tenant)}
    assert stored["c-1"]["amount"] == {"amount": "0.2000", "currency": "EUR"}
    assert stored["s-1"]["amount"]["amount"] == "0.1500" and stored["s-1"]["msisdn"] == msisdn
    assert stored["c-2"]["reason"] == "unknown-line"
    # The JSON batch is unchanged and de-duplicates against the CSV one.
    r = await client.post("/v1/usage/records", headers=h(test_keys, tenant), json={"records": [
        {"source": "sw1", "record_id": "c-1", "service": "voice", "msisdn": msisdn,
         "started_at": CALL_AT.isoformat(), "duration_seconds": 90},
    ]})
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "duplicate"
    assert "row" not in r.json()["results"][0]


async def test_malformed_csv_rows_refuse_the_batch(client, test_keys) -> None:
    tenant = "csv-bad"
    ct = {"content-type": "text/csv"}
    body = (
        "source,record_id,service,msisdn,started_at,duration_seconds\n"
        f"sw1,ok-1,voice,+4917100000000,{CALL_AT.isoformat()},60\n"
        f"sw1,bad-1,voice,+4917100000000,{CALL_AT.isoformat()},1.5\n"
        f"sw1,bad-2,voice,,{CALL_AT.isoformat()},60\n"
        "sw1,bad-3,voice,+4917100000000,05/10/2026,60\n"
        f"sw1,bad-4,sms,+4917100000000,{CALL_AT.isoformat()},60\n"
    )
    r = await client.post("/v1/usage/records", content=body, headers=h(test_keys, tenant, **ct))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["invalid_records"] == 4
    assert [(e["row"], e["field"], e["code"]) for e in problem["errors"]] == [
        (2, "rows.2.duration_seconds", "int_parsing"),
        (3, "rows.3.msisdn", "missing"),
        (4, "rows.4.started_at", "datetime_parsing"),
        (5, "rows.5.duration_seconds", "not-allowed"),
    ]
    assert problem["errors"][0]["record_id"] == "bad-1"
    assert await records(client, test_keys, tenant) == []  # nothing written, not even ok-1

    r = await client.post("/v1/usage/records", content="record_id,caller\nx,y\n", headers=h(test_keys, tenant, **ct))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "header.caller"
    r = await client.post("/v1/usage/records", content=b"\xff\xfe", headers=h(test_keys, tenant, **ct))
    assert r.status_code == 400
    r = await client.post("/v1/usage/records", content="record_id\n", headers=h(test_keys, tenant, **ct))
    assert r.status_code == 422
    assert await records(client, test_keys, tenant) == []


# --- file imports -------------------------------------------------------------------------
async def test_asterisk_import_keeps_malformed_rows(client, test_keys) -> None:
    tenant, msisdn = "ast", "+4917133333333"
    await subscriber(client, test_keys, tenant, msisdn)
    file = "\n".join([
        asterisk("1700000000.1", msisdn, "90"),
        asterisk("1700000000.2", msisdn, "7", "BUSY"),
        asterisk("1700000000.3", msisdn, "ninety"),
        asterisk("1700000000.4", "+4915199999999", "30"),
        '"garbage","row"',
    ]) + "\n"
    r = await post_import(client, test_keys, tenant, file, format="asterisk", source="pbx-1", timezone="UTC")
    assert r.status_code == 201, r.text
    imp = r.json()
    assert (imp["received"], imp["rated"], imp["rejected"], imp["malformed"], imp["duplicates"]) == (5, 2, 3, 2, 0)
    assert [(x["row"], x["status"], x.get("reason")) for x in imp["results"]] == [
        (1, "rated", None), (2, "rated", None), (3, "rejected", "malformed"),
        (4, "rejected", "unknown-line"), (5, "rejected", "malformed"),
    ]
    got = await client.get(f"/v1/usage/imports/{imp['id']}", headers=h(test_keys, tenant))
    assert got.status_code == 200
    assert {k: got.json()[k] for k in ("format", "source", "received", "rated", "malformed")} == {
        "format": "asterisk", "source": "pbx-1", "received": 5, "rated": 2, "malformed": 2,
    }
    stored = {x["record_id"]: x for x in await records(client, test_keys, tenant, import_id=imp["id"])}
    assert len(stored) == 5
    answered, busy = stored["1700000000.1"], stored["1700000000.2"]
    assert (answered["quantity"], answered["amount"]["amount"], answered["msisdn"]) == ("90", "0.2000", msisdn)
    assert busy["quantity"] == "0" and busy["amount"]["amount"] == "0.0000"
    assert answered["started_at"].startswith(LOCAL.replace(" ", "T"))
    bad = stored["1700000000.3"]
    assert bad["status"] == "rejected" and bad["reason"] == "malformed"
    assert "duration_seconds" in bad["reason_message"] and ",ninety," in bad["raw"]
    assert (bad["service"], bad["msisdn"], bad["quantity"]) == ("voice", msisdn, None)
    garbage = next(x for k, x in stored.items() if k.startswith("malformed:"))
    assert garbage["raw"] == "garbage,row" and garbage["started_at"] is None and garbage["quantity"] is None
    malformed = await records(client, test_keys, tenant, status="rejected", reason="malformed")
    assert {x["id"] for x in malformed} == {bad["id"], garbage["id"]}

    # The same file again: every row, malformed ones included, is a duplicate.
    again = await post_import(client, test_keys, tenant, file, format="asterisk", source="pbx-1")
    assert again.status_code == 201
    assert (again.json()["duplicates"], again.json()["malformed"]) == (5, 0)
    assert len(await records(client, test_keys, tenant)) == 5


async def test_freeswitch_import(client, test_keys) -> None:
    tenant, msisdn = "fs", "+4917144444444"
    await subscriber(client, test_keys, tenant, msisdn)
    file = "\n".join([
        freeswitch("a5c9f6c0-0000-0000-0000-000000000001", msisdn, "60") + ',"PCMA","PCMA"',
        freeswitch("a5c9f6c0-0000-0000-0000-000000000002", msisdn, "5", answered=False),
        freeswitch("a5c9f6c0-0000-0000-0000-000000000003", msisdn, ""),
    ])
    r = await post_import(client, test_keys, tenant, file, format="freeswitch", source="fs-1",
                          timezone="Europe/Berlin")
    assert r.status_code == 201, r.text
    imp = r.json()
    assert (imp["rated"], imp["malformed"], imp["timezone"]) == (2, 1, "Europe/Berlin")
    stored = {x["record_id"][-1]: x for x in await records(client, test_keys, tenant)}
    assert stored["1"]["quantity"] == "60" and stored["2"]["quantity"] == "0"
    berlin = datetime.strptime(LOCAL, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Europe/Berlin"))
    assert datetime.fromisoformat(stored["1"]["started_at"]) == berlin
    assert stored["3"]["reason"] == "malformed"


async def test_import_request_problems(client, test_keys) -> None:
    tenant = "imp-bad"
    file = asterisk("1", "+4917100000000")
    cases = [
        ({"format": "asterisk", "source": "p", "timezone": "Mars/Base"}, 422),
        ({"format": "mapping", "source": "p"}, 422),
        ({"format": "mapping", "source": "p", "mapping_id": str(uuid.uuid4())}, 422),
        ({"format": "asterisk", "source": "p", "mapping_id": "x"}, 422),
        ({"format": "csv", "source": "p"}, 422),
        ({"format": "asterisk"}, 422),
    ]
    for query, status in cases:
        r = await post_import(client, test_keys, tenant, file, **query)
        assert r.status_code == status, (query, r.text)
    r = await post_import(client, test_keys, tenant, "\n\n", format="asterisk", source="p")
    assert r.status_code == 422
    r = await client.post(
        "/v1/usage/imports", params={"format": "asterisk", "source": "p"}, content=file,
        headers=h(test_keys, tenant, ["usage:read"], **{"content-type": "text/csv"}),
    )
    assert r.status_code == 403
    assert await records(client, test_keys, tenant) == []
    r = await client.get(f"/v1/usage/imports/{uuid.uuid4()}", headers=h(test_keys, tenant))
    assert r.status_code == 404


async def test_column_mappings_and_mapped_import(client, test_keys) -> None:
    tenant, msisdn = "map", "+4917155555555"
    await subscriber(client, test_keys, tenant, msisdn)
    mapping = {
        "name": "sbc-export",
        "columns": {"record_id": "call_id", "msisdn": "caller", "started_at": "start", "duration_seconds": "secs"},
        "service": "voice", "time_format": "%d.%m.%Y %H:%M:%S", "timezone": "UTC",
    }
    r = await client.post("/v1/usage/column-mappings", json=mapping, headers=h(test_keys, tenant))
    assert r.status_code == 201, r.text
    mapping_id = r.json()["id"]
    r = await client.post("/v1/usage/column-mappings", json=mapping, headers=h(test_keys, tenant))
    assert r.status_code == 409
    for broken in (
        {**mapping, "name": "b1", "columns": {"record_id": "a", "msisdn": "b"}},
        {**mapping, "name": "b2", "columns": {**mapping["columns"], "caller_name": "x"}},
        {**mapping, "name": "b3", "header": False},
        {**mapping, "name": "b4", "timezone": "Nowhere/City"},
        {**mapping, "name": "b5", "time_format": "dd.mm.yyyy"},
        {**mapping, "name": "b6", "service": None},
    ):
        r = await client.post("/v1/usage/column-mappings", json=broken, headers=h(test_keys, tenant))
        assert r.status_code == 422, broken
    listed = await client.get("/v1/usage/column-mappings", headers=h(test_keys, tenant))
    assert [m["name"] for m in listed.json()["items"]] == ["sbc-export"]
    other = await client.get(f"/v1/usage/column-mappings/{mapping_id}", headers=h(test_keys, "someone-else"))
    assert other.status_code == 404

    when = CALL_AT.strftime("%d.%m.%Y %H:%M:%S")
    file = f"call_id,caller,start,secs\nm-1,{msisdn},{when},61\nm-2,{msisdn},{LOCAL},30\n"
    r = await post_import(client, test_keys, tenant, file, format="mapping", source="sbc", mapping_id=mapping_id)
    assert r.status_code == 201, r.text
    assert (r.json()["rated"], r.json()["malformed"], r.json()["mapping_id"]) == (1, 1, mapping_id)
    r = await post_import(client, test_keys, tenant, "id,x\n1,2\n", format="mapping", source="sbc",
                          mapping_id=mapping_id)
    assert r.status_code == 422  # the header lacks the mapped columns: nothing readable


# --- rejected-record workflow -------------------------------------------------------------
async def test_correct_and_reprocess_a_malformed_record(client, test_keys) -> None:
    tenant, msisdn = "fix", "+4917166666666"
    await subscriber(client, test_keys, tenant, msisdn)
    file = asterisk("1700000001.1", msisdn, "") + "\n" + asterisk("1700000001.2", msisdn, "60") + "\n"
    imp = (await post_import(client, test_keys, tenant, file, format="asterisk", source="pbx")).json()
    bad_id, good_id = imp["results"][0]["id"], imp["results"][1]["id"]
    url = f"/v1/usage/records/{bad_id}"

    # Still malformed: re-processing keeps it rejected, with what is missing.
    r = await client.post(f"{url}/reprocess", headers=h(test_keys, tenant))
    assert r.status_code == 200 and r.json()["reason"] == "malformed"
    assert "quantity" in r.json()["reason_message"]

    for body in ({"count": 2}, {"duration_seconds": -1}, {"duration_seconds": "60"}, {},
                 {"started_at": (NOW + timedelta(days=3)).isoformat()}, {"amount": 1},
                 {"started_at": "2026-10-05T10:00:00"}):
        r = await client.patch(url, json=body, headers=h(test_keys, tenant))
        assert r.status_code == 422, body
    r = await client.patch(url, json={"duration_seconds": 45, "msisdn": "0171 66666666"}, headers=h(test_keys, tenant))
    assert r.status_code == 200, r.text
    corrected = r.json()
    assert (corrected["status"], corrected["quantity"], corrected["msisdn"]) == ("rejected", "45", msisdn)
    [audit] = corrected["corrections"]
    assert audit["original"]["quantity"] is None and audit["original"]["msisdn"] == msisdn
    assert audit["changes"] == {"duration_seconds": 45, "msisdn": "0171 66666666"} and audit["by"]

    r = await client.post(f"{url}/reprocess", headers=h(test_keys, tenant))
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["amount"]["amount"], r.json()["reason"]) == ("rated", "0.1000", None)
    assert r.json()["corrections"] == corrected["corrections"] and r.json()["raw"] == corrected["raw"]

    # Rated records cannot be corrected or re-processed; unknown ones are 404.
    for rid in (bad_id, good_id):
        assert (await client.patch(f"/v1/usage/records/{rid}", json={"duration_seconds": 1},
                                   headers=h(test_keys, tenant))).status_code == 409
        assert (await client.post(f"/v1/usage/records/{rid}/reprocess",
                                  headers=h(test_keys, tenant))).status_code == 409
    assert (await client.patch(f"/v1/usage/records/{uuid.uuid4()}", json={"count": 1},
                               headers=h(test_keys, tenant))).status_code == 404
    assert (await client.patch(url, json={"count": 1}, headers=h(test_keys, "intruder"))).status_code == 404
    r = await client.patch(url, json={"count": 1}, headers=h(test_keys, tenant, ["usage:read"]))
    assert r.status_code == 403


async def test_correcting_a_rejected_number(client, test_keys) -> None:
    tenant, msisdn = "fix-number", "+4917177777777"
    await subscriber(client, test_keys, tenant, msisdn)
    r = await client.post("/v1/usage/records", headers=h(test_keys, tenant), json={"records": [
        {"source": "sw", "record_id": "wrong", "service": "sms", "msisdn": "+4915100000000",
         "started_at": CALL_AT.isoformat()},
    ]})
    rid = r.json()["results"][0]["id"]
    r = await client.patch(f"/v1/usage/records/{rid}", json={"msisdn": msisdn, "count": 2},
                           headers=h(test_keys, tenant))
    assert r.status_code == 200 and r.json()["quantity"] == "2"
    assert r.json()["corrections"][0]["original"]["msisdn"] == "+4915100000000"
    r = await client.patch(f"/v1/usage/records/{rid}", json={"duration_seconds": 5}, headers=h(test_keys, tenant))
    assert r.status_code == 422  # an sms has no duration
    r = await client.post(f"/v1/usage/records/{rid}/reprocess", headers=h(test_keys, tenant))
    assert r.json()["status"] == "rated" and r.json()["amount"]["amount"] == "0.1000"
    assert len(r.json()["corrections"]) == 1


async def test_bulk_reprocess_by_reason_source_and_since(client, test_keys) -> None:
    tenant, msisdn = "bulk", "+4917188888888"

    def rec(source: str, record_id: str) -> dict[str, Any]:
        return {"source": source, "record_id": record_id, "service": "sms", "msisdn": msisdn,
                "started_at": CALL_AT.isoformat()}

    r = await client.post("/v1/usage/records", headers=h(test_keys, tenant), json={"records": [
        rec("a", "1"), rec("a", "2"), rec("b", "1"),
        {**rec("a", "3"), "msisdn": "not a number"},
    ]})
    assert r.json()["rejected"] == 4
    await subscriber(client, test_keys, tenant, msisdn)
    url = "/v1/usage/records/reprocess"
    r = await client.post(url, json={"reason": "unknown-line", "source": "a"}, headers=h(test_keys, tenant))
    assert r.status_code == 200, r.text
    assert r.json() == {"considered": 2, "rated": 2, "rejected": 0, "skipped": 0}
    r = await client.post(url, json={"since": (NOW + timedelta(hours=1)).isoformat()}, headers=h(test_keys, tenant))
    assert r.json()["considered"] == 0
    left = await records(client, test_keys, tenant, status="rejected")
    assert sorted((x["source"], x["reason"]) for x in left) == [("a", "invalid-msisdn"), ("b", "unknown-line")]
    for bad in ({"record_ids": [left[0]["id"]], "reason": "x"}, {}, {"all_rejected": False}):
        assert (await client.post(url, json=bad, headers=h(test_keys, tenant))).status_code == 422
    r = await client.post(url, json={"all_rejected": True, "reason": "unknown-line"}, headers=h(test_keys, tenant))
    assert r.json()["rated"] == 1
    assert len(await records(client, test_keys, tenant, status="rejected", reason="invalid-msisdn")) == 1


# --- NATS: mediation.records.<tenant>.<source> -------------------------------------------
async def test_mediation_stream_feeds_the_same_intake(client, test_keys) -> None:
    tenant, msisdn = "nats", "+4917199999999"
    await subscriber(client, test_keys, tenant, msisdn)
    js = client.app.state.runtime.js  # type: ignore[attr-defined]

    async def consumer_ready() -> bool:
        try:
            await js.consumer_info("MEDIATION", "usage-mediation")
        except Exception:
            return False
        return True

    await wait_until(consumer_ready)
    batch = {"records": [
        {"record_id": "n-1", "service": "voice", "msisdn": msisdn, "started_at": CALL_AT.isoformat(),
         "duration_seconds": 30},
        {"record_id": "n-2", "service": "voice", "msisdn": msisdn, "started_at": CALL_AT.isoformat(),
         "duration_seconds": "30"},
    ]}
    await js.publish(f"mediation.records.{tenant}.msc-1", json.dumps(batch).encode())
    await js.publish(f"mediation.records.{tenant}.msc-1", json.dumps(batch).encode())  # redelivered
    await js.publish(f"mediation.records.{tenant}.msc-2", b"this is no batch")
    await js.publish("mediation.records.no-source", b"{}")

    async def stored() -> list[dict[str, Any]] | None:
        items = await records(client, test_keys, tenant)
        return items if len(items) == 3 else None

    got = {(x["source"], x["record_id"][:9]): x for x in await wait_until(stored)}
    assert got[("msc-1", "n-1")]["status"] == "rated" and got[("msc-1", "n-1")]["amount"]["amount"] == "0.1000"
    bad = got[("msc-1", "n-2")]
    assert (bad["reason"], bad["quantity"]) == ("malformed", None) and '"30"' in bad["raw"]
    junk = got[("msc-2", "malformed")]
    assert junk["raw"] == "this is no batch" and junk["reason"] == "malformed"

    async def dead_lettered() -> str | None:
        # No tenant, so not listed per tenant by the admin API; kept in the table (and stream).
        async with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
            return (await conn.execute(text(
                "SELECT consumer FROM dead_letters WHERE subject = 'mediation.records.no-source'"
            ))).scalar_one_or_none()

    assert await wait_until(dead_lettered) == "usage-mediation"
    assert await records(client, test_keys, "no-source") == []
