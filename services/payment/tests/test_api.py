"""Payment service against real PostgreSQL and NATS: the customer and invoicing services are
played by publishing their events onto their streams, exactly as they would."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import nats
import pytest
from nats.js import JetStreamContext
from pydantic import BaseModel
from sqlalchemy import func, select, text

from rateline_payment.app import MIGRATIONS, create_app
from rateline_payment.db import payments, sandbox_charges
from rateline_payment.domain.collection import payment_id_for
from rateline_payment.events import on_invoice_finalized
from rateline_payment.settings import PaymentSettings
from rateline_shared.db import unit_of_work
from rateline_shared.events import CloudEvent, new_event
from rateline_shared.events.payloads import AccountCreated, InvoiceFinalized
from rateline_shared.testing import running_service, service_settings, wait_until


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(PaymentSettings, pg_server, nats_server, test_keys, "payment")
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


@pytest.fixture(scope="module")
def auth(test_keys) -> dict[str, str]:
    return test_keys.headers("acme", ["payments:*"])


def runtime(client: httpx.AsyncClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


async def publish(
    client: httpx.AsyncClient,
    service: str,
    type_: str,
    data: BaseModel,
    tenant: str = "acme",
    event: CloudEvent | None = None,
) -> tuple[CloudEvent, int]:
    """Play another service: put its event on its stream. Returns the event and its sequence."""
    event = event or new_event(service=service, type=type_, tenant=tenant, data=data)
    js: JetStreamContext = runtime(client).js
    ack = await js.publish(
        event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": uuid.uuid4().hex}
    )
    return event, ack.seq


async def new_account(client: httpx.AsyncClient, tenant: str = "acme", currency: str = "EUR") -> str:
    account_id = str(uuid.uuid4())
    await publish(
        client, "customer", "customer.account.created",
        AccountCreated(
            account_id=account_id, name="Anna", currency=currency, timezone="Europe/Berlin",
            bill_cycle_day=1, country="DE", created_at=datetime.now(UTC),
        ),
        tenant=tenant,
    )
    return account_id


async def add_method(
    client: httpx.AsyncClient, auth: dict[str, str], account_id: str, token: str, **extra: Any
) -> dict[str, Any]:
    """Register a method once the account has reached the projection."""

    async def created() -> httpx.Response | None:
        r = await client.post(
            "/v1/payment-methods", json={"account_id": account_id, "token": token, **extra},
            headers=auth,
        )
        if r.status_code == 422 and "account_id" in r.text:
            return None
        return r

    resp = await wait_until(created)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def invoice(account_id: str, total: str, currency: str = "EUR", invoice_id: str | None = None) -> InvoiceFinalized:
    return InvoiceFinalized(
        invoice_id=invoice_id or str(uuid.uuid4()), number="INV-1", account_id=account_id,
        period_start=date(2026, 10, 1), period_end=date(2026, 10, 31), total=total,
        currency=currency, due_date=date(2026, 11, 14), finalized_at=datetime.now(UTC),
    )


class Outcomes:
    """Everything the service has published on the PAYMENT stream so far."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self.events: list[dict[str, Any]] = []
        self.sub: Any = None

    async def poll(self) -> list[dict[str, Any]]:
        if self.sub is None:
            self.sub = await self.js.pull_subscribe("payment.>", durable="test-outcomes", stream="PAYMENT")
        try:
            for m in await self.sub.fetch(50, timeout=0.2):
                self.events.append(json.loads(m.data))
                await m.ack()
        except (TimeoutError, nats.errors.TimeoutError):
            pass  # nothing new (nats-py raises either, depending on where the wait ran out)
        return self.events

    def of(self, invoice_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["data"]["invoice_id"] == invoice_id]

    async def wait_for(self, invoice_id: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            await self.poll()
            hits = self.of(invoice_id)
            return hits[0] if hits else None

        return await wait_until(found)


@pytest.fixture(scope="module")
def outcomes(client) -> Outcomes:
    return Outcomes(runtime(client).js)


async def wait_consumed(client: httpx.AsyncClient, seq: int) -> None:
    """Wait until the invoicing consumer has acked everything up to stream sequence ``seq``."""
    js: JetStreamContext = runtime(client).js

    async def done() -> bool:
        info = await js.consumer_info("INVOICING", "payment-invoicing")
        return info.ack_floor.stream_seq >= seq and info.num_ack_pending == 0

    await wait_until(done)


async def charges_for(client: httpx.AsyncClient, key: str) -> int:
    async with unit_of_work(runtime(client).sessions) as s:
        stmt = select(func.count()).select_from(sandbox_charges).where(
            sandbox_charges.c.idempotency_key == key
        )
        return int((await s.execute(stmt)).scalar_one())


async def test_finalized_invoice_is_charged_and_succeeded_is_published(client, auth, outcomes) -> None:
    account_id = await new_account(client)
    method = await add_method(client, auth, account_id, "tok_sandbox_success", default=True)
    assert method["provider"] == "sandbox"
    assert (method["brand"], method["last4"], method["is_default"]) == ("visa", "4242", True)
    assert "token" not in method

    inv = invoice(account_id, "123.45")
    await publish(client, "invoicing", "invoicing.invoice.finalized", inv)
    event = await outcomes.wait_for(inv.invoice_id)

    assert event["type"] == "payment.payment.succeeded"
    assert event["tenant"] == "acme"
    data = event["data"]
    assert (data["amount"], data["currency"], data["status"]) == ("123.45", "EUR", "succeeded")
    assert data["account_id"] == account_id
    assert data["provider"] == "sandbox"
    assert data["provider_reference"].startswith("sbx_ch_")
    assert data["payment_id"] == payment_id_for("acme", inv.invoice_id)

    page = (await client.get("/v1/payments", params={"invoice_id": inv.invoice_id}, headers=auth)).json()
    assert len(page["items"]) == 1
    payment = page["items"][0]
    assert payment["amount"] == {"amount": "123.45", "currency": "EUR"}
    assert payment["status"] == "succeeded"
    assert payment["payment_method_id"] == method["id"]
    one = await client.get(f"/v1/payments/{payment['id']}", headers=auth)
    assert one.status_code == 200
    assert one.json() == payment


@pytest.mark.parametrize(
    ("token", "code"),
    [("tok_sandbox_declined", "card_declined"), ("tok_sandbox_insufficient_funds", "insufficient_funds")],
)
async def test_declined_card_publishes_failed(client, auth, outcomes, token: str, code: str) -> None:
    account_id = await new_account(client)
    await add_method(client, auth, account_id, token)
    inv = invoice(account_id, "80.00")
    await publish(client, "invoicing", "invoicing.invoice.finalized", inv)
    event = await outcomes.wait_for(inv.invoice_id)
    assert event["type"] == "payment.payment.failed"
    assert (event["data"]["status"], event["data"]["failure_code"]) == ("failed", code)
    assert event["data"]["amount"] == "80.00"
    failed = (await client.get("/v1/payments", params={"account_id": account_id, "status": "failed"}, headers=auth)).json()
    assert [p["failure_code"] for p in failed["items"]] == [code]


async def test_no_default_method_fails_with_no_payment_method(client, auth, outcomes) -> None:
    account_id = await new_account(client)
    inv = invoice(account_id, "10.00")
    await publish(client, "invoicing", "invoicing.invoice.finalized", inv)
    event = await outcomes.wait_for(inv.invoice_id)
    assert event["type"] == "payment.payment.failed"
    assert event["data"]["failure_code"] == "no_payment_method"
    assert event["data"]["provider"] == "none"


async def test_zero_and_negative_totals_make_no_payment(client, auth, outcomes) -> None:
    account_id = await new_account(client)
    await add_method(client, auth, account_id, "tok_sandbox_success")
    zero, credit = invoice(account_id, "0.00"), invoice(account_id, "-5.00")
    await publish(client, "invoicing", "invoicing.invoice.finalized", zero)
    _, seq = await publish(client, "invoicing", "invoicing.invoice.finalized", credit)
    await wait_consumed(client, seq)
    listed = (await client.get("/v1/payments", params={"account_id": account_id}, headers=auth)).json()
    assert listed["items"] == []
    await outcomes.poll()
    assert outcomes.of(zero.invoice_id) == [] and outcomes.of(credit.invoice_id) == []


async def test_redelivered_and_refinalized_events_make_one_payment_and_one_charge(
    client, auth, outcomes
) -> None:
    account_id = await new_account(client)
    await add_method(client, auth, account_id, "tok_sandbox_success")
    inv = invoice(account_id, "55.10")
    event, _ = await publish(client, "invoicing", "invoicing.invoice.finalized", inv)
    await outcomes.wait_for(inv.invoice_id)
    # The same event again (as JetStream redelivers it), then the same invoice under a new id.
    await publish(client, "invoicing", "", inv, event=event)
    _, seq = await publish(client, "invoicing", "invoicing.invoice.finalized", inv)
    await wait_consumed(client, seq)

    listed = (await client.get("/v1/payments", params={"invoice_id": inv.invoice_id}, headers=auth)).json()
    assert len(listed["items"]) == 1
    assert await charges_for(client, payment_id_for("acme", inv.invoice_id)) == 1

    async def outbox_empty() -> bool:
        async with unit_of_work(runtime(client).sessions) as s:
            return (await s.execute(text("SELECT count(*) FROM outbox"))).scalar_one() == 0

    await wait_until(outbox_empty)
    await outcomes.poll()
    assert len(outcomes.of(inv.invoice_id)) == 1


async def test_charge_then_rollback_then_retry_charges_once(client, auth, outcomes) -> None:
    """The card is charged inside the inbox transaction; a crash after the charge rolls our
    side back, and the retry (same derived payment id = idempotency key) gets the first
    outcome back from the provider instead of a second charge."""
    account_id = await new_account(client)
    await add_method(client, auth, account_id, "tok_sandbox_success")
    inv = invoice(account_id, "19.99")
    event = new_event(service="invoicing", type="invoicing.invoice.finalized", tenant="acme", data=inv)
    sessions = runtime(client).sessions
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as session:
            await on_invoice_finalized(session, event)
            raise RuntimeError("process died before the commit")
    key = payment_id_for("acme", inv.invoice_id)
    assert await charges_for(client, key) == 1
    async with unit_of_work(sessions) as session:
        stmt = select(func.count()).select_from(payments).where(payments.c.invoice_id == inv.invoice_id)
        assert (await session.execute(stmt)).scalar_one() == 0

    await publish(client, "invoicing", "", inv, event=event)  # the redelivery
    outcome = await outcomes.wait_for(inv.invoice_id)
    assert outcome["type"] == "payment.payment.succeeded"
    assert outcome["data"]["payment_id"] == key
    assert await charges_for(client, key) == 1


async def test_one_default_method_per_account(client, auth) -> None:
    account_id = await new_account(client)
    first = await add_method(client, auth, account_id, "tok_sandbox_success")
    assert first["is_default"] is True  # the first method becomes the default
    second = await add_method(client, auth, account_id, "tok_sandbox_declined")
    assert second["is_default"] is False
    third = await add_method(client, auth, account_id, "tok_sandbox_insufficient_funds", default=True)
    assert third["is_default"] is True
    listed = (await client.get("/v1/payment-methods", params={"account_id": account_id}, headers=auth)).json()
    assert [(m["id"], m["is_default"]) for m in listed["items"]] == [
        (first["id"], False), (second["id"], False), (third["id"], True),
    ]
    got = await client.get(f"/v1/payment-methods/{first['id']}", headers=auth)
    assert got.status_code == 200 and got.json()["is_default"] is False


async def test_bad_input_is_refused_with_problem_json_and_writes_nothing(client, auth) -> None:
    account_id = await new_account(client)
    await add_method(client, auth, account_id, "tok_sandbox_success")
    before = (await client.get("/v1/payment-methods", params={"account_id": account_id}, headers=auth)).json()
    cases: list[tuple[dict[str, Any] | bytes, int, str, str | None]] = [
        ({"account_id": str(uuid.uuid4()), "token": "tok_sandbox_success"}, 422, "unprocessable", "account_id"),
        ({"account_id": account_id, "token": "tok_visa"}, 422, "unprocessable", "token"),
        ({"account_id": account_id, "token": "tok_sandbox_success", "tenant": "x"}, 422, "validation-error", "tenant"),
        ({"account_id": account_id}, 422, "validation-error", "token"),
        ({"account_id": account_id, "token": "tok_sandbox_success", "provider": "stripe"}, 422, "validation-error", "provider"),
        (b'{"account_id": ', 400, "malformed-json", None),
    ]
    for body, status, slug, field in cases:
        if isinstance(body, bytes):
            resp = await client.post("/v1/payment-methods", content=body, headers={**auth, "content-type": "application/json"})
        else:
            resp = await client.post("/v1/payment-methods", json=body, headers=auth)
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        problem = resp.json()
        assert problem["type"].endswith("/" + slug), problem
        if field:
            assert problem["errors"][0]["field"] == field, problem
    after = (await client.get("/v1/payment-methods", params={"account_id": account_id}, headers=auth)).json()
    assert after == before
    bad_filter = await client.get("/v1/payments", params={"status": "lost"}, headers=auth)
    assert bad_filter.status_code == 422
    assert (await client.get("/v1/payments/nope", headers=auth)).status_code == 404
    assert (await client.get("/v1/payment-methods/nope", headers=auth)).status_code == 404


async def test_auth_scopes_and_tenant_isolation(client, auth, test_keys, outcomes) -> None:
    assert (await client.get("/v1/payments")).status_code == 401
    ro = test_keys.headers("acme", ["payments:read"])
    account_id = await new_account(client)
    denied = await client.post("/v1/payment-methods", json={"account_id": account_id, "token": "tok_sandbox_success"}, headers=ro)
    assert denied.status_code == 403
    method = await add_method(client, auth, account_id, "tok_sandbox_success")
    inv = invoice(account_id, "7.00")
    await publish(client, "invoicing", "invoicing.invoice.finalized", inv)
    payment_id = (await outcomes.wait_for(inv.invoice_id))["data"]["payment_id"]

    other = test_keys.headers("globex", ["payments:*"])
    assert (await client.get(f"/v1/payments/{payment_id}", headers=other)).status_code == 404
    assert (await client.get(f"/v1/payment-methods/{method['id']}", headers=other)).status_code == 404
    assert (await client.get("/v1/payments", params={"invoice_id": inv.invoice_id}, headers=other)).json()["items"] == []
    # acme's account does not exist for globex.
    refused = await client.post("/v1/payment-methods", json={"account_id": account_id, "token": "tok_sandbox_success"}, headers=other)
    assert refused.status_code == 422
    # Dead letters are admin-only and served.
    assert (await client.get("/v1/admin/payment/dead-letters", headers=auth)).status_code == 403
    assert (await client.get("/v1/admin/payment/dead-letters", headers=test_keys.headers("acme", ["admin"]))).status_code == 200


async def test_payments_list_is_paginated(client, test_keys, outcomes) -> None:
    h = test_keys.headers("pager", ["payments:*"])
    account_id = await new_account(client, tenant="pager")
    await add_method(client, h, account_id, "tok_sandbox_success")
    invoices = [invoice(account_id, f"{i}.00") for i in range(1, 6)]
    for inv in invoices:
        await publish(client, "invoicing", "invoicing.invoice.finalized", inv, tenant="pager")
    for inv in invoices:
        await outcomes.wait_for(inv.invoice_id)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/payments", params=params, headers=h)).json()
        seen += [p["invoice_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [inv.invoice_id for inv in invoices]  # stable order: creation, then id
