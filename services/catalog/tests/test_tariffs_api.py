"""Tariff import and quotes through the HTTP API, against real PostgreSQL and NATS.

Expected costs: see the derivations in test_tariffs_engine.py (CGRateS docs: increment cost
``Rate * RateIncrement / RateUnit`` half up to 5 decimals, rate steps from
GroupIntervalStart, connect fee once, total rounded ``*up`` to 4 decimals).
2014-08-04 and 2019-03-04 are Mondays.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import zipfile
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import nats
import pytest

from rateline_catalog.api import tariffs as tariffs_api
from rateline_catalog.app import MIGRATIONS, create_app
from rateline_catalog.settings import CatalogSettings
from rateline_shared.events.envelope import CloudEvent
from rateline_shared.events.payloads import TariffImported
from rateline_shared.testing import running_service, service_settings, shared_data_dir, wait_until

DATA = shared_data_dir() / "cgrates"


def zipped(name: str, replace: tuple[str, str, str] | None = None, drop: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted((DATA / name).glob("*.csv")):
            if p.name == drop:
                continue
            text = p.read_text()
            if replace and replace[0] == p.name:
                assert replace[1] in text
                text = text.replace(replace[1], replace[2], 1)
            z.writestr(f"{name}/{p.name}", text)
    return buf.getvalue()


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(CatalogSettings, pg_server, nats_server, test_keys, "catalog")
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes, fmt: str = "cgrates"
) -> httpx.Response:
    return await client.post(
        "/v1/tariff-imports",
        data={"format": fmt, "currency": "EUR"},
        files={"file": ("plan.zip", data, "application/zip")},
        headers=headers,
    )


@pytest.fixture(scope="module")
async def old(client, test_keys) -> dict[str, str]:
    headers = test_keys.headers("tariff-old", ["catalog:*"])
    resp = await upload(client, headers, zipped("oldtutorial"))
    assert resp.status_code == 201, resp.text
    return headers


@pytest.fixture(scope="module")
async def new(client, test_keys) -> dict[str, str]:
    headers = test_keys.headers("tariff-new", ["catalog:*"])
    resp = await upload(client, headers, zipped("tutorial2"))
    assert resp.status_code == 201, resp.text
    return headers


async def quote(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/v1/rating/quote", json=body, headers=headers)


async def cost(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    resp = await quote(client, headers, **body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["cost"])


async def test_import_summary_and_event(client, test_keys, nats_server) -> None:
    headers = test_keys.headers("tariff-evt", ["catalog:write"])
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            "catalog.tariff.imported", durable="t-tariff-observer", stream="CATALOG"
        )
        resp = await upload(client, headers, zipped("tutorial2"))
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["counts"] == {
            "destinations": 6,
            "timings": 6,
            "rates": 9,
            "destination_rates": 12,
            "rating_plans": 7,
            "rating_profiles": 6,
        }
        assert body["format"] == "cgrates" and body["currency"] == "EUR"

        async def fetch_mine() -> Any:
            try:
                msgs = await sub.fetch(10, timeout=0.5)
            except nats.errors.TimeoutError:
                return None
            for m in msgs:
                await m.ack()
            return next((m for m in msgs if CloudEvent.model_validate_json(m.data).subject == body["id"]), None)

        msg = await wait_until(fetch_mine)
    finally:
        await nc.close()
    event = CloudEvent.model_validate_json(msg.data)
    assert event.type == "catalog.tariff.imported" and event.tenant == "tariff-evt"
    payload = TariffImported.model_validate(event.data)
    assert payload.import_id == body["id"] and payload.counts == body["counts"]
    # the files travel with the event, so the usage service compiles the same plan
    files = json.loads(gzip.decompress(base64.b64decode(payload.files_gzip_b64)))
    assert files == {p.name: p.read_text() for p in (DATA / "tutorial2").glob("*.csv")}
    assert len(msg.data) < 16_000  # the six tutorial files compress to a small event


async def test_a_plan_too_large_for_its_event_is_refused(client, test_keys, monkeypatch) -> None:
    headers = test_keys.headers("tariff-huge", ["catalog:*"])
    monkeypatch.setattr(tariffs_api, "MAX_EVENT_FILES_B64", 1000)
    resp = await upload(client, headers, zipped("tutorial2"))
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    monkeypatch.undo()
    resp = await quote(client, headers, category="call", subject="1001", destination="1002",
                       start="2019-03-04T13:00:00Z", usage=60)
    assert resp.json()["type"].endswith("/no-tariff-plan")


async def test_peak_offpeak_weekend_and_steps(client, old) -> None:
    call = {"category": "call", "subject": "1001", "destination": "1002", "usage": 85}
    # PEAK: 0.4 + 0.2 + 25 x 0.00167 = 0.64175 -> 0.6418
    resp = await quote(client, old, **call, start="2014-08-04T13:00:00Z")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["cost"] == "0.6418"
    assert body["currency"] == "EUR"
    assert body["rating_plan"] == "RP_RETAIL2"
    assert body["connect_fee"] == "0.4"
    assert body["usage"] == "85"
    assert [
        (i["start"], i["duration"], i["rate"], i["increments"], i["increment_cost"], i["cost"])
        for i in body["intervals"]
    ] == [
        ("2014-08-04T13:00:00Z", "60", "0.2", 1, "0.20000", "0.20000"),
        ("2014-08-04T13:01:00Z", "25", "0.1", 25, "0.00167", "0.04175"),
    ]
    # OFFPEAK_EVENING and OFFPEAK_WEEKEND: 0.2 + 0.1 + 25 x 0.00083 = 0.32075 -> 0.3208
    assert await cost(client, old, **call, start="2014-08-04T20:00:00Z") == "0.3208"
    assert await cost(client, old, **call, start="2014-08-09T13:00:00+00:00") == "0.3208"
    # across 08:00: 60 s off-peak (0.1) then 30 s peak step 2 (30 x 0.00167): 0.3501
    assert (
        await cost(client, old, **{**call, "usage": "1m30s"}, start="2014-08-04T07:59:30Z")
        == "0.3501"
    )
    # 10 s increments of RT_40CNT's second step: 0.8 + 0.4 + 3 x 0.03333 -> 1.3000
    assert (
        await cost(client, old, **{**call, "subject": "1002", "destination": "1003"},
                   start="2014-08-04T13:00:00Z")
        == "1.3000"
    )


async def test_max_cost(client, old) -> None:
    base = {"category": "call", "destination": "1007", "start": "2014-08-04T13:00:00Z", "usage": 100}
    free = (await quote(client, old, **base, subject="1001")).json()  # *free, cap 0.62
    assert (free["cost"], free["usage"], free["max_cost_reached"], free["disconnected"]) == (
        "0.6200", "100", True, False
    )
    cut = (await quote(client, old, **base, subject="1002")).json()  # *disconnect after 62 s
    assert (cut["cost"], cut["usage"], cut["disconnected"]) == ("0.6200", "62", True)


async def test_sms_data_generic_and_fallback(client, old, new) -> None:
    day = "2019-03-04T13:00:00Z"
    # RP_SMS: 0.1 per message to DST_1002, 0.2 to DST_10
    assert await cost(client, new, category="sms", subject="1001", destination="1002", start=day, usage=1) == "0.1000"
    assert await cost(client, new, category="sms", subject="1001", destination="1003", start=day, usage=3) == "0.6000"
    # RT_1024_1: 2000 units -> 2 increments of 1024 at 1 -> 2
    assert await cost(client, new, category="data", subject="u", destination="x", start=day, usage=2000) == "2.0000"
    # RT_GENERIC_1: 1 per unit
    assert (
        await cost(client, old, category="generic", subject="u", destination="x",
                   start="2014-08-04T13:00:00Z", usage=10)
        == "10.0000"
    )
    # 1001 -> 1003: RP_1001 has no rate, fallback *any -> RP_STANDARD peak RT_120C:
    # 0.2 + 1.2 + 25 x 0.02 = 1.9000
    resp = await quote(client, new, category="call", subject="1001", destination="1003", start=day, usage=85)
    body = resp.json()
    assert (body["cost"], body["subject"], body["rating_plan"]) == ("1.9000", "*any", "RP_STANDARD")
    # NEW_YEAR (weight 20) beats DR_2030_120C for prefix 20: 0.1 + 85 x 0.01 = 0.95
    assert (
        await cost(client, new, category="call", subject="9", destination="2001",
                   start="2020-01-01T10:00:00Z", usage=85)
        == "0.9500"
    )


async def test_unknown_destination_and_profile(client, new, test_keys) -> None:
    resp = await quote(client, new, category="call", subject="1002", destination="999",
                       start="2019-03-04T13:00:00Z", usage=60)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/unauthorized-destination")
    resp = await quote(client, new, category="fax", subject="1", destination="1002",
                       start="2019-03-04T13:00:00Z", usage=60)
    assert resp.status_code == 422 and resp.json()["type"].endswith("/rating-profile-not-found")
    nothing = test_keys.headers("tariff-none", ["catalog:read"])
    resp = await quote(client, nothing, category="call", subject="1", destination="1002",
                       start="2019-03-04T13:00:00Z", usage=60)
    assert resp.status_code == 422 and resp.json()["type"].endswith("/no-tariff-plan")
    resp = await quote(client, new, category="call", subject="1", destination="1002",
                       start="2019-03-04T13:00:00", usage=60)
    assert resp.status_code == 422  # no offset


async def test_bad_files_refused_whole(client, test_keys) -> None:
    headers = test_keys.headers("tariff-bad", ["catalog:*"])
    broken = zipped("oldtutorial", ("Rates.csv", "RT_40CNT,0.8,0.4,60s,30s,0s", "RT_40CNT,0.8,x,60s,30s,0s"))
    resp = await upload(client, headers, broken)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/invalid-tariff-plan")
    assert {"file": "Rates.csv", "line": 8, "reason": "'x' is not a decimal number"} in body["errors"]
    resp = await upload(client, headers, zipped("oldtutorial", drop="Timings.csv"))
    assert resp.status_code == 422
    assert body["errors"] and resp.json()["errors"] == [
        {"file": "Timings.csv", "line": 0, "reason": "the file is missing"}
    ]
    assert (await upload(client, headers, b"not a zip")).status_code == 422
    assert (await upload(client, headers, zipped("oldtutorial"), fmt="csv")).status_code == 422
    # nothing was imported for this tenant
    resp = await quote(client, headers, category="call", subject="1001", destination="1002",
                       start="2014-08-04T13:00:00Z", usage=60)
    assert resp.json()["type"].endswith("/no-tariff-plan")


async def test_scopes(client, test_keys) -> None:
    ro = test_keys.headers("tariff-ro", ["catalog:read"])
    assert (await upload(client, ro, zipped("tutorial2"))).status_code == 403
    other = test_keys.headers("tariff-ro", ["usage:read"])
    resp = await quote(client, other, category="call", subject="1", destination="1",
                       start="2019-03-04T13:00:00Z", usage=1)
    assert resp.status_code == 403


async def test_latest_import_is_in_force(client, test_keys) -> None:
    headers = test_keys.headers("tariff-swap", ["catalog:*"])
    call = {"category": "call", "subject": "1001", "destination": "1002",
            "start": "2019-03-04T13:00:00Z", "usage": 85}
    assert (await upload(client, headers, zipped("oldtutorial"))).status_code == 201
    assert (await quote(client, headers, **call)).json()["rating_plan"] == "RP_RETAIL2"
    assert (await upload(client, headers, zipped("tutorial2"))).status_code == 201
    # tutorial2: RP_1001, RT_60C: 0.1 + 85 x 0.01 = 0.95
    body = (await quote(client, headers, **call)).json()
    assert (body["rating_plan"], body["cost"]) == ("RP_1001", "0.9500")
    # another tenant never sees it
    other = test_keys.headers("tariff-swap-2", ["catalog:read"])
    assert (await quote(client, other, **call)).json()["type"].endswith("/no-tariff-plan")


async def test_bad_usage(client, new) -> None:
    base = {"category": "call", "subject": "1001", "destination": "1002", "start": "2019-03-04T13:00:00Z"}
    resp = await quote(client, new, **base, usage="ten minutes")
    assert resp.status_code == 422 and resp.json()["errors"][0]["code"] == "invalid-usage"
    resp = await quote(client, new, **base, usage=32 * 86_400)
    assert resp.status_code == 422 and resp.json()["errors"][0]["code"] == "usage-too-large"
    assert (await quote(client, new, **base, usage=-1)).status_code == 422
    assert (await quote(client, new, **base, usage="9" * 5000)).status_code == 422
    # a duration string is the same as seconds: 0.1 + 85 x 0.01
    assert await cost(client, new, **base, usage="1m25s") == "0.9500"


async def test_time_bands_in_the_tariff_zone_and_import_listing(client, test_keys) -> None:
    """oldtutorial's PEAK band starts at 08:00. Monday 2014-08-04 06:30Z is 08:30 in Berlin
    (CEST): peak RT_20CNT, 0.4 connect + 60 s at 0.2/min = 0.6; read in UTC it is 06:30, still
    OFFPEAK_MORNING RT_10CNT: 0.2 + 0.1 = 0.3."""
    utc, berlin = test_keys.headers("tz-utc", ["catalog:*"]), test_keys.headers("tz-berlin", ["catalog:*"])
    call = {"category": "call", "subject": "1001", "destination": "1002", "start": "2014-08-04T06:30:00Z", "usage": 60}
    assert (await upload(client, utc, zipped("oldtutorial"))).status_code == 201
    resp = await client.post(
        "/v1/tariff-imports", data={"format": "cgrates", "currency": "EUR", "timezone": "Europe/Berlin"},
        files={"file": ("plan.zip", zipped("oldtutorial"), "application/zip")}, headers=berlin,
    )
    assert resp.status_code == 201, resp.text
    assert (resp.json()["timezone"], resp.json()["in_force"]) == ("Europe/Berlin", True)
    assert Decimal((await quote(client, utc, **call)).json()["cost"]) == Decimal("0.3")
    assert Decimal((await quote(client, berlin, **call)).json()["cost"]) == Decimal("0.6")

    bad = await client.post(
        "/v1/tariff-imports", data={"format": "cgrates", "timezone": "Mars/Olympus"},
        files={"file": ("plan.zip", zipped("oldtutorial"), "application/zip")}, headers=berlin,
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "timezone"

    second = await upload(client, berlin, zipped("tutorial2"))
    listed = (await client.get("/v1/tariff-imports", headers=berlin)).json()
    assert [(i["id"], i["in_force"]) for i in listed["items"]] == [(resp.json()["id"], False), (second.json()["id"], True)]
    one = await client.get(f"/v1/tariff-imports/{resp.json()['id']}", headers=berlin)
    assert one.status_code == 200 and one.json()["counts"]["timings"] == 4
    assert (await client.get(f"/v1/tariff-imports/{resp.json()['id']}", headers=utc)).status_code == 404
