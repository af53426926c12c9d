"""The thin billing chain end to end, through the gateway's public API only."""

from __future__ import annotations

from decimal import Decimal

from standardwebhooks import Webhook

from rateline_shared.testing import wait_until
from tests.e2e.conftest import Api, Receiver, body_json
from tests.e2e.scenario import (
    create_customer,
    october,
    plan_body,
    run_bill_run,
    sms,
    tariff_zip,
    voice,
    wait_billable,
    wait_usage_knows,
)


async def test_plan_to_paid_invoice_with_signed_webhooks(api: Api, receiver: Receiver) -> None:
    receiver.fail_first = 1  # the partner's first delivery fails: webhooks must retry
    endpoint = await api.ok("POST", "/v1/webhook-endpoints", {
        "url": receiver.url,
        "event_types": ["invoicing.invoice.finalized", "payment.payment.succeeded"],
        "description": "partner CRM",
    })
    secret = endpoint["secret"]

    plan = await api.ok("POST", "/v1/plans", plan_body("CHAIN-S"))
    assert plan["recurring_fee"] == {"amount": "10.00", "currency": "EUR"}
    cust = await create_customer(api, plan["id"], "+4915112340001")
    account_id = cust["account"]["id"]
    await wait_usage_knows(api, "+4915112340001")

    records = [
        voice("sw1", "c-1", "+4915112340001", 90, october(5)),    # 2 minutes at 60/60 -> 0.20
        voice("sw1", "c-2", "+4915112340001", 60, october(6)),    # 1 minute -> 0.10
        voice("sw1", "c-3", "+4915112340001", 61, october(7)),    # 2 minutes -> 0.20
        sms("sw1", "s-1", "+4915112340001", october(8)),          # 0.05
        sms("sw1", "s-2", "+4915112340001", october(9)),          # 0.05
        voice("sw1", "c-4", "+4915199999999", 30, october(9)),    # unknown line -> rejected
    ]
    result = await api.ok("POST", "/v1/usage/records", {"records": records})
    assert (result["rated"], result["rejected"], result["duplicates"]) == (5, 1, 0)
    again = await api.ok("POST", "/v1/usage/records", {"records": records[:2]})
    assert (again["rated"], again["duplicates"]) == (0, 2)

    rejected = (await api.get("/v1/usage/records", status="rejected")).json()["items"]
    assert [r["record_id"] for r in rejected] == ["c-4"]
    assert rejected[0]["reason"]
    rated = (await api.get("/v1/usage/records", status="rated", msisdn="+4915112340001")).json()["items"]
    by_id = {r["record_id"]: r for r in rated}
    assert by_id["c-1"]["amount"] == {"amount": "0.2000", "currency": "EUR"}
    assert Decimal(by_id["c-1"]["billed_quantity"]) == 120

    await wait_billable(api, account_id, 5)
    run = await run_bill_run(api)
    assert run["invoices_created"] >= 1
    invoices = (await api.get("/v1/invoices", account_id=account_id)).json()["items"]
    assert len(invoices) == 1
    invoice = (await api.get(f"/v1/invoices/{invoices[0]['id']}")).json()
    assert invoice["status"] == "draft" and invoice["number"] is None
    amounts = sorted((line["kind"], line.get("service"), line["amount"]["amount"]) for line in invoice["lines"])
    assert amounts == [("recurring", None, "10.00"), ("usage", "sms", "0.10"), ("usage", "voice", "0.50")]
    assert invoice["total"] == {"amount": "10.60", "currency": "EUR"}

    finalized = await api.ok("POST", f"/v1/invoices/{invoice['id']}/finalize")
    assert finalized["status"] == "finalized"
    assert finalized["number"].startswith("INV-")

    async def paid() -> dict | None:
        body = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
        return body if body["status"] == "paid" else None

    paid_invoice = await wait_until(paid, timeout=30)
    assert paid_invoice["amount_paid"] == {"amount": "10.60", "currency": "EUR"}
    payments = (await api.get("/v1/payments", invoice_id=invoice["id"])).json()["items"]
    assert [(p["status"], p["amount"]) for p in payments] == [("succeeded", {"amount": "10.60", "currency": "EUR"})]

    async def both_delivered() -> bool:
        ok = [body_json(r)["type"] for r in receiver.requests if not r["failed"]]
        return "invoicing.invoice.finalized" in ok and "payment.payment.succeeded" in ok

    await wait_until(both_delivered, timeout=60)
    wh = Webhook(secret)
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers.keys()
        payload = wh.verify(request["body"], headers)  # raises if the signature is wrong
        assert payload["data"]["invoice_id"] == invoice["id"]
    finalized_events = [body_json(r) for r in receiver.requests if body_json(r)["type"] == "invoicing.invoice.finalized"]
    assert finalized_events[-1]["data"]["total"] == "10.60"
    assert sum(r["failed"] for r in receiver.requests) == 1  # the one failure was retried
    deliveries = (await api.get("/v1/webhook-deliveries", endpoint_id=endpoint["id"])).json()["items"]
    assert {d["status"] for d in deliveries} == {"delivered"}


async def test_declined_card_leaves_invoice_open_with_the_reason(api: Api) -> None:
    plan = await api.ok("POST", "/v1/plans", plan_body("CHAIN-DECLINE"))
    cust = await create_customer(api, plan["id"], "+4915112340002", token="tok_sandbox_declined")
    await wait_billable(api, cust["account"]["id"])
    run = await run_bill_run(api, auto_finalize=True)
    assert run["status"] == "completed"
    invoices = (await api.get("/v1/invoices", account_id=cust["account"]["id"])).json()["items"]
    assert len(invoices) == 1 and invoices[0]["total"] == {"amount": "10.00", "currency": "EUR"}

    async def failed_payment() -> list | None:
        items = (await api.get("/v1/payments", invoice_id=invoices[0]["id"])).json()["items"]
        return items if items and items[0]["status"] == "failed" else None

    payments = await wait_until(failed_payment, timeout=30)
    assert payments[0]["failure_code"] == "card_declined"

    async def error_on_invoice() -> dict | None:
        body = (await api.get(f"/v1/invoices/{invoices[0]['id']}")).json()
        return body if body.get("last_payment_error") else None

    invoice = await wait_until(error_on_invoice, timeout=30)
    assert invoice["status"] == "finalized"


async def test_subscription_in_a_foreign_currency_is_refused(api: Api) -> None:
    plan = await api.ok("POST", "/v1/plans", plan_body("CHAIN-USD", currency="USD"))
    account = await api.ok("POST", "/v1/accounts", {"name": "Euro Co", "currency": "EUR", "timezone": "Europe/Berlin"})

    async def refused_for_currency() -> dict | None:
        resp = await api.post("/v1/subscriptions", {"account_id": account["id"], "plan_id": plan["id"], "start_date": "2026-10-01"})
        body = resp.json()
        return body if resp.status_code == 422 and body["type"].endswith("/currency-mismatch") else None

    problem = await wait_until(refused_for_currency, timeout=30)
    assert "USD" in problem["detail"] and "EUR" in problem["detail"]
    subs = (await api.get("/v1/subscriptions", account_id=account["id"])).json()["items"]
    assert subs == []


async def test_cgrates_tariff_plan_import_and_quote_through_the_gateway(api: Api) -> None:
    """A CGRateS tariff-plan folder, zipped, uploaded through the gateway (multipart, streamed),
    then priced: 85 s from 1001 to 1002 on Monday 13:00 UTC (RP_RETAIL2 peak: connect fee 0.4,
    first 60 s at 0.2 per minute in 60 s steps, then 0.1 per minute in 1 s steps:
    0.4 + 0.2 + 25 x 0.001667 -> 0.64175 -> 0.6418 rounded *up to 4 decimals)."""
    resp = await api.http.post(
        "/v1/tariff-imports",
        data={"format": "cgrates", "currency": "EUR"},
        files={"file": ("oldtutorial.zip", tariff_zip("oldtutorial"), "application/zip")},
    )
    assert resp.status_code == 201, resp.text
    quote = await api.ok("POST", "/v1/rating/quote", {
        "category": "call", "subject": "1001", "destination": "1002", "start": "2014-08-04T13:00:00Z", "usage": 85,
    })
    assert (quote["cost"], quote["currency"]) == ("0.6418", "EUR")
    unknown = await api.post("/v1/rating/quote", {
        "category": "call", "subject": "1001", "destination": "99999", "start": "2014-08-04T13:00:00Z", "usage": 85,
    })
    assert unknown.status_code == 422 and unknown.json()["type"].endswith("/unauthorized-destination")
