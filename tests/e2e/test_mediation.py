"""Mediation end to end: every intake path of the usage service, driven through the gateway (and,
for mediation devices, the NATS subject they publish to), with malformed rows, duplicates and the
rejected-record workflow. Amounts follow the e2e plan: voice 0.10 per started minute (60/60),
SMS 0.05 each.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import nats

from rateline_devstack.stack import Stack
from rateline_shared.testing import wait_until
from tests.e2e.conftest import Api
from tests.e2e.scenario import (
    all_pages,
    create_customer,
    plan_body,
    tariff_zip,
    voice,
    wait_billable,
    wait_usage_knows,
)

WHEN = datetime(2026, 10, 14, 9, 30, tzinfo=UTC)
LOCAL = WHEN.strftime("%Y-%m-%d %H:%M:%S")  # switch files carry local time without an offset


async def subscriber(api: Api, msisdn: str) -> dict[str, Any]:
    plan = await api.ok("POST", "/v1/plans", plan_body(f"MED-{uuid.uuid4().hex[:6]}"))
    customer = await create_customer(api, plan["id"], msisdn)
    await wait_usage_knows(api, msisdn)
    return customer


def asterisk(uniqueid: str, src: str, billsec: str, disposition: str = "ANSWERED") -> str:
    """A row of Asterisk's default Master.csv (cdr_csv): accountcode, src, dst, dcontext, clid,
    channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec, disposition,
    amaflags, uniqueid, userfield."""
    return (
        f'"acct","{src}","+4930123456","from-internal","","SIP/100-1","SIP/trunk-2","Dial","",'
        f'"{LOCAL}","{LOCAL}","{LOCAL}",95,{billsec},"{disposition}","DOCUMENTATION","{uniqueid}",""'
    )


def freeswitch(uuid_: str, number: str, billsec: str, answered: bool = True) -> str:
    """A row of FreeSWITCH's default cdr_csv template: caller_id_name, caller_id_number,
    destination_number, context, start_stamp, answer_stamp, end_stamp, duration, billsec,
    hangup_cause, uuid, bleg_uuid, accountcode."""
    answer = LOCAL if answered else ""
    return (
        f'"Anna","{number}","+4930123456","default","{LOCAL}","{answer}","{LOCAL}","64","{billsec}",'
        f'"NORMAL_CLEARING","{uuid_}","","acct"'
    )


async def import_file(api: Api, body: str, **query: str) -> dict[str, Any]:
    resp = await api.http.post("/v1/usage/imports", params=query, content=body.encode(),
                               headers={"Content-Type": "text/csv"})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_asterisk_file_with_malformed_rows_then_corrected(api: Api) -> None:
    msisdn = "+4917170000001"
    customer = await subscriber(api, msisdn)
    file = "\n".join([
        asterisk("1760000000.1", msisdn, "90"),  # 2 started minutes = 0.20
        asterisk("1760000000.2", msisdn, "0", "NO ANSWER"),  # not answered: 0
        asterisk("1760000000.3", msisdn, "ninety"),  # malformed billsec
        asterisk("1760000000.4", "+4915199999999", "30"),  # nobody has this number
        '"not","an","asterisk","row"',
    ]) + "\n"
    imp = await import_file(api, file, format="asterisk", source="pbx-e2e", timezone="UTC")
    assert (imp["received"], imp["rated"], imp["rejected"], imp["malformed"]) == (5, 2, 3, 2)
    assert [(r["row"], r["status"], r.get("reason")) for r in imp["results"]] == [
        (1, "rated", None), (2, "rated", None), (3, "rejected", "malformed"),
        (4, "rejected", "unknown-line"), (5, "rejected", "malformed"),
    ]
    rejected = await all_pages(api, "/v1/usage/records", import_id=imp["id"], status="rejected")
    assert sorted(r["reason"] for r in rejected) == ["malformed", "malformed", "unknown-line"]
    bad = next(r for r in rejected if r["record_id"] == "1760000000.3")
    assert ",ninety," in bad["raw"]

    # The operator corrects the malformed record and re-processes it: rated exactly once.
    fixed = await api.http.patch(f"/v1/usage/records/{bad['id']}", json={"duration_seconds": 61})
    assert fixed.status_code == 200, fixed.text
    again = await api.ok("POST", f"/v1/usage/records/{bad['id']}/reprocess")
    assert (again["status"], again["amount"]["amount"]) == ("rated", "0.2000")
    assert again["corrections"][0]["changes"] == {"duration_seconds": 61}

    # The same file sent again: every row is a duplicate, nothing rated twice.
    twice = await import_file(api, file, format="asterisk", source="pbx-e2e", timezone="UTC")
    assert (twice["duplicates"], twice["rated"], twice["malformed"]) == (5, 0, 0)
    billable = await wait_billable(api, customer["account"]["id"], count=3)
    assert billable["records"] == 3


async def test_freeswitch_and_mapped_files(api: Api) -> None:
    msisdn = "+4917170000002"
    await subscriber(api, msisdn)
    file = "\n".join([
        freeswitch("c0ffee00-0000-0000-0000-000000000001", msisdn, "60"),
        freeswitch("c0ffee00-0000-0000-0000-000000000002", msisdn, "5", answered=False),
        freeswitch("c0ffee00-0000-0000-0000-000000000003", msisdn, ""),  # malformed: no billsec
    ])
    imp = await import_file(api, file, format="freeswitch", source="fs-e2e", timezone="Europe/Berlin")
    assert (imp["received"], imp["rated"], imp["malformed"]) == (3, 2, 1)
    rated = await all_pages(api, "/v1/usage/records", import_id=imp["id"], status="rated")
    first = next(r for r in rated if r["record_id"].endswith("1"))
    # 09:30 local in Berlin (CEST, +02:00) is 07:30 UTC.
    assert datetime.fromisoformat(first["started_at"]) == WHEN - timedelta(hours=2)
    assert first["amount"]["amount"] == "0.1000"

    mapping = await api.ok("POST", "/v1/usage/column-mappings", {
        "name": f"sbc-{uuid.uuid4().hex[:6]}",
        "columns": {"record_id": "call_id", "msisdn": "caller", "started_at": "start", "duration_seconds": "secs"},
        "service": "voice", "time_format": "%d.%m.%Y %H:%M", "timezone": "UTC",
    })
    body = (
        "call_id,caller,start,secs\n"
        f"m-1,{msisdn},14.10.2026 09:30,121\n"  # 3 started minutes = 0.30
        f"m-2,{msisdn},2026-10-14 09:30,30\n"  # wrong date format: malformed, kept
    )
    imp = await import_file(api, body, format="mapping", source="sbc-e2e", mapping_id=mapping["id"])
    assert (imp["rated"], imp["malformed"]) == (1, 1)
    stored = {r["record_id"]: r for r in await all_pages(api, "/v1/usage/records", import_id=imp["id"])}
    assert stored["m-1"]["amount"]["amount"] == "0.3000"
    assert stored["m-2"]["reason"] == "malformed" and "2026-10-14 09:30" in stored["m-2"]["raw"]


async def test_a_record_sent_three_times_is_rated_once(api: Api) -> None:
    msisdn = "+4917170000003"
    customer = await subscriber(api, msisdn)
    record = voice("sw-e2e", "thrice-1", msisdn, 90, WHEN)
    outcomes = []
    for _ in range(3):
        outcomes.append((await api.ok("POST", "/v1/usage/records", {"records": [record]}))["results"][0]["status"])
    assert outcomes == ["rated", "duplicate", "duplicate"]
    csv = (
        "source,record_id,service,msisdn,started_at,duration_seconds\n"
        f"sw-e2e,thrice-1,voice,{msisdn},{WHEN.isoformat()},90\n"
    )
    resp = await api.http.post("/v1/usage/records", content=csv, headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200 and resp.json()["duplicates"] == 1
    stored = await all_pages(api, "/v1/usage/records", source="sw-e2e")
    assert [(r["record_id"], r["amount"]["amount"]) for r in stored] == [("thrice-1", "0.2000")]
    billable = await wait_billable(api, customer["account"]["id"], count=1)
    assert billable["records"] == 1


async def test_mediation_device_publishes_on_nats(api: Api, stack: Stack) -> None:
    """A mediation device publishes batches to ``mediation.records.<tenant>.<source>``; a
    malformed record is kept rejected with its raw JSON, a repeated message changes nothing."""
    msisdn = "+4917170000004"
    await subscriber(api, msisdn)
    good = {"record_id": "dev-1", "service": "sms", "msisdn": msisdn, "started_at": WHEN.isoformat(), "count": 2}
    broken = {"record_id": "dev-2", "service": "voice", "msisdn": msisdn, "started_at": WHEN.isoformat(),
              "duration_seconds": -5}
    payload = json.dumps({"records": [good, broken]}).encode()
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()
        subject = f"mediation.records.{api.tenant}.sgsn-e2e"
        await js.publish(subject, payload, headers={"Nats-Msg-Id": "e2e-msg-1"})
        await js.publish(subject, payload)  # the device retries without an id: still no duplicate

        async def both() -> list[dict[str, Any]] | None:
            found = await all_pages(api, "/v1/usage/records", source="sgsn-e2e")
            return found if len(found) == 2 else None

        stored = {r["record_id"]: r for r in await wait_until(both, timeout=30)}
    finally:
        await nc.close()
    assert (stored["dev-1"]["status"], stored["dev-1"]["amount"]["amount"]) == ("rated", "0.1000")
    assert (stored["dev-2"]["status"], stored["dev-2"]["reason"]) == ("rejected", "malformed")
    assert "-5" in stored["dev-2"]["raw"]


async def test_bad_records_and_files_get_precise_answers(api: Api) -> None:
    msisdn = "+4917170000005"
    await subscriber(api, msisdn)
    future = datetime.now(UTC) + timedelta(days=30)
    for record, field in (
        ({**voice("bad-e2e", "neg", msisdn, 60, WHEN), "duration_seconds": -1}, "duration_seconds"),
        (voice("bad-e2e", "future", msisdn, 60, future), "started_at"),
    ):
        resp = await api.post("/v1/usage/records", {"records": [record]})
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert any(e["field"].endswith(field) for e in resp.json()["errors"]), resp.json()
    # An unreadable number is not a request error: the record is kept, rejected with its reason.
    result = await api.ok("POST", "/v1/usage/records", {"records": [voice("bad-e2e", "nan", "call me", 60, WHEN)]})
    assert (result["results"][0]["status"], result["results"][0]["reason"]) == ("rejected", "invalid-msisdn")
    assert len(await all_pages(api, "/v1/usage/records", source="bad-e2e")) == 1

    # Tariff zips: a missing file, and a malformed line, are refused with file/line/reason.
    for blob, needle in (
        (tariff_zip(skip="Rates.csv"), "Rates.csv"),
        (tariff_zip(append=("Rates.csv", "RT_BROKEN,0,abc,60s,1s,0s\n")), "Rates.csv"),
    ):
        resp = await api.http.post("/v1/tariff-imports", data={"format": "cgrates", "currency": "EUR"},
                                   files={"file": ("plan.zip", blob, "application/zip")})
        assert resp.status_code == 422, resp.text
        assert needle in json.dumps(resp.json())
    # Nothing was half-imported: this stack has no tariff plan in force.
    quote = await api.post("/v1/rating/quote", {"category": "call", "subject": "1001", "destination": "1002",
                                                "start": "2014-08-04T13:00:00Z", "usage": 60})
    assert quote.status_code == 422 and quote.json()["type"].endswith("/no-tariff-plan"), quote.text
