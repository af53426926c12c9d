"""Bad input through the gateway: precise problem+json, and nothing half-written."""

from __future__ import annotations

import httpx
import pytest

from rateline_devstack.stack import Stack
from tests.e2e.conftest import Api
from tests.e2e.scenario import create_customer, october, plan_body, voice, wait_usage_knows

PROBLEM = "application/problem+json"


def assert_problem(resp: httpx.Response, status: int, slug: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["type"].endswith("/" + slug), body
    assert body["status"] == status and body["detail"]
    return body


async def test_auth_failures(api: Api, stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as anon:
        assert_problem(await anon.get("/v1/accounts"), 401, "unauthorized")
        assert_problem(await anon.get("/v1/accounts", headers={"Authorization": "Bearer x.y.z"}), 401, "unauthorized")
        bad = await anon.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(api.client_id, "wrong"))
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
        ro = stack.create_client(tenant=api.tenant, scopes=["customers:read"], name="read only")
        token = (await anon.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(ro["client_id"], ro["client_secret"]))).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await anon.get("/v1/accounts", headers=headers)).status_code == 200
        assert_problem(
            await anon.post("/v1/accounts", json={"name": "x", "currency": "EUR", "timezone": "UTC"}, headers=headers),
            403, "forbidden",
        )
        assert_problem(await anon.get("/v1/plans", headers=headers), 403, "forbidden")


async def test_other_tenant_sees_nothing(api: Api, stack: Stack) -> None:
    account = await api.ok("POST", "/v1/accounts", {"name": "Private", "currency": "EUR", "timezone": "UTC"})
    other = stack.create_client(tenant="someone-else", scopes=["admin"], name="other operator")
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        token = (await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(other["client_id"], other["client_secret"]))).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert_problem(await http.get(f"/v1/accounts/{account['id']}", headers=headers), 404, "not-found")
        listed = (await http.get("/v1/accounts", headers=headers)).json()["items"]
        assert account["id"] not in [a["id"] for a in listed]


@pytest.mark.parametrize(
    ("path", "raw", "status", "slug"),
    [
        ("/v1/accounts", b'{"name": "x", "currency": ', 400, "malformed-json"),
        ("/v1/accounts", b'{"name": "x", "currency": "EUR", "timezone": "UTC", "tenant": "evil"}', 422, "validation-error"),
        ("/v1/accounts", b'{"name": "x", "currency": "EURO", "timezone": "UTC"}', 422, "validation-error"),
        ("/v1/plans", b'{"code": "F", "name": "f", "currency": "EUR", "recurring_fee": 9.99, "billing_period": "monthly", "rates": []}', 422, "validation-error"),
        ("/v1/plans", b'{"code": "F", "name": "f", "currency": "XXX1", "recurring_fee": "9.99", "billing_period": "monthly", "rates": []}', 422, "validation-error"),
        ("/v1/usage/records", b'{"records": [{"source": "s", "record_id": "r", "service": "voice", "msisdn": "+4915112349999", "started_at": "2026-10-01T00:00:00Z", "duration_seconds": 1.5}]}', 422, "validation-error"),
        ("/v1/bill-runs", b'{"period_start": "2026-11-01", "period_end": "2026-10-01"}', 422, "invalid-period"),
    ],
)
async def test_malformed_requests_get_precise_problems(api: Api, path: str, raw: bytes, status: int, slug: str) -> None:
    resp = await api.http.post(path, content=raw, headers={"content-type": "application/json"})
    body = assert_problem(resp, status, slug)
    if status == 422:
        assert body["errors"], body


async def test_rejected_requests_write_nothing(api: Api) -> None:
    before_accounts = len((await api.get("/v1/accounts", limit=500)).json()["items"])
    before_plans = len((await api.get("/v1/plans", limit=500)).json()["items"])
    await api.http.post("/v1/accounts", content=b'{"name": "x", "currency": "EUR", "timezone": "Nowhere/City"}',
                        headers={"content-type": "application/json"})
    await api.post("/v1/plans", {**plan_body("BAD"), "recurring_fee": "-1.00"})
    assert len((await api.get("/v1/accounts", limit=500)).json()["items"]) == before_accounts
    assert len((await api.get("/v1/plans", limit=500)).json()["items"]) == before_plans


async def test_cdr_batch_with_one_bad_record_is_refused_whole(api: Api) -> None:
    plan = await api.ok("POST", "/v1/plans", plan_body("BATCH"))
    await create_customer(api, plan["id"], "+4915112348888")
    await wait_usage_knows(api, "+4915112348888")
    good = voice("bad-batch", "ok-1", "+4915112348888", 30, october(3))
    negative = {**voice("bad-batch", "neg-1", "+4915112348888", 30, october(3)), "duration_seconds": -5}
    body = assert_problem(await api.post("/v1/usage/records", {"records": [good, negative]}), 422, "validation-error")
    assert any("1" in str(e["field"]) for e in body["errors"])  # points at the second record
    listed = (await api.get("/v1/usage/records", source="bad-batch")).json()["items"]
    assert listed == []
    too_many = {"records": [voice("big", f"r{i}", "+4915112348888", 1, october(3)) for i in range(10_001)]}
    assert_problem(await api.post("/v1/usage/records", too_many), 413, "payload-too-large")
    assert (await api.get("/v1/usage/records", source="big")).json()["items"] == []
    first = await api.ok("POST", "/v1/usage/records", {"records": [good]})
    dup = await api.ok("POST", "/v1/usage/records", {"records": [good]})
    assert (first["rated"], dup["rated"], dup["duplicates"]) == (1, 0, 1)
    assert dup["results"][0]["status"] == "duplicate"


async def test_unknown_route_and_merged_openapi(api: Api, stack: Stack) -> None:
    assert_problem(await api.get("/v1/nothing-here"), 404, "not-found")
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        doc = (await http.get("/openapi.json")).json()
        docs_page = await http.get("/docs")
    for path in ["/v1/accounts", "/v1/plans", "/v1/usage/records", "/v1/bill-runs",
                 "/v1/invoices/{invoice_id}/finalize", "/v1/payments", "/v1/webhook-endpoints", "/oauth/token"]:
        assert path in doc["paths"], path
    assert docs_page.status_code == 200 and "swagger" in docs_page.text.lower()
