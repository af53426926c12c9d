"""Webhooks service against real PostgreSQL, NATS and a real HTTP receiver on 127.0.0.1.

The invoicing and payment services are played by publishing their events onto their streams.
The receiver verifies every request with ``standardwebhooks.Webhook(secret).verify``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from pydantic import BaseModel
from sqlalchemy import insert
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from rateline_shared.db import unit_of_work
from rateline_shared.events import CloudEvent, new_event
from rateline_shared.events.payloads import InvoiceFinalized, PaymentOutcome
from rateline_shared.testing import running_service, service_settings, wait_until
from rateline_webhooks.app import MIGRATIONS, create_app
from rateline_webhooks.db import delivery_attempts, webhook_deliveries
from rateline_webhooks.delivery import send
from rateline_webhooks.domain.endpoints import new_secret
from rateline_webhooks.repository import ENDPOINT_DISABLED, LOST_ATTEMPT, Claim
from rateline_webhooks.settings import WebhooksSettings


# --- a partner's HTTP server --------------------------------------------------------------------
@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    payload: Any


@dataclass
class Receiver:
    """Answers POST /<path> with the status codes planned for that path, in order (the last one
    repeats), after verifying the Standard Webhooks signature (401 if it does not verify)."""

    port: int = 0
    secrets: dict[str, str] = field(default_factory=dict)
    plans: dict[str, list[int]] = field(default_factory=dict)
    hits: dict[str, list[Hit]] = field(default_factory=dict)
    forged: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)  # for planned hangs (-1)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def expect(self, path: str, secret: str, plan: list[int]) -> None:
        with self.lock:
            self.secrets[path], self.plans[path], self.hits[path] = secret, plan, []

    def got(self, path: str) -> list[Hit]:
        with self.lock:
            return list(self.hits.get(path, []))

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            secret = self.secrets.get(path)
            if secret is None:
                self.forged.append(path)
                return 404
            try:
                payload = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                self.forged.append(path)
                return 401
            hits = self.hits[path]
            hits.append(Hit(headers, body, payload))
            plan = self.plans[path]
            return plan[min(len(hits), len(plan)) - 1]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = rec.handle(self.path.lstrip("/"), dict(self.headers.items()), body)
            if status == -1:  # hang until the test lets go
                rec.release.wait(30)
                status = 200
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    rec.release.set()
    server.shutdown()
    server.server_close()


# --- the service --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(
        WebhooksSettings, pg_server, nats_server, test_keys, "webhooks",
        retry_schedule_seconds=[0.2, 0.2], delivery_poll_interval=0.05,
        delivery_timeout=5.0, delivery_lease_seconds=30.0,
    )
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


@pytest.fixture(scope="module")
def auth(test_keys) -> dict[str, str]:
    return test_keys.headers("acme", ["webhooks:*"])


def runtime(client: httpx.AsyncClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


async def publish(
    client: httpx.AsyncClient, service: str, type_: str, data: BaseModel | None,
    tenant: str = "acme", event: CloudEvent | None = None,
) -> tuple[CloudEvent, int]:
    """Play another service: put its event on its stream. Returns the event and its sequence."""
    event = event or new_event(service=service, type=type_, tenant=tenant, data=data or {})
    js: JetStreamContext = runtime(client).js
    ack = await js.publish(
        event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": uuid.uuid4().hex}
    )
    return event, ack.seq


def finalized(total: str = "99.90") -> InvoiceFinalized:
    return InvoiceFinalized(
        invoice_id=str(uuid.uuid4()), number="INV-7", account_id=str(uuid.uuid4()),
        period_start=date(2026, 10, 1), period_end=date(2026, 10, 31), total=Decimal(total),
        currency="EUR", due_date=date(2026, 11, 14), finalized_at=datetime.now(UTC),
    )


def payment_failed() -> PaymentOutcome:
    return PaymentOutcome(
        payment_id=str(uuid.uuid4()), invoice_id=str(uuid.uuid4()), account_id=str(uuid.uuid4()),
        amount=Decimal("10.00"), currency="EUR", status="failed", provider="sandbox",
        failure_code="card_declined", occurred_at=datetime.now(UTC),
    )


async def new_endpoint(
    client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver, path: str,
    event_types: list[str], plan: list[int],
) -> dict[str, Any]:
    resp = await client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url(path), "event_types": event_types, "description": path},
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    endpoint: dict[str, Any] = resp.json()
    receiver.expect(path, endpoint["secret"], plan)
    return endpoint


async def deliveries(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    resp = await client.get("/v1/webhook-deliveries", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def wait_status(
    client: httpx.AsyncClient, headers: dict[str, str], endpoint_id: str, status: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        items = await deliveries(client, headers, endpoint_id=endpoint_id, status=status)
        return items[0] if items else None

    return await wait_until(probe)


async def wait_consumed(client: httpx.AsyncClient, stream: str, durable: str, seq: int) -> None:
    js: JetStreamContext = runtime(client).js

    async def done() -> bool:
        info = await js.consumer_info(stream, durable)
        return info.ack_floor.stream_seq >= seq and info.num_ack_pending == 0

    await wait_until(done)


# --- tests --------------------------------------------------------------------------------------
async def test_signed_delivery_is_retried_then_delivered_and_only_to_subscribers(
    client, auth, receiver, test_keys
) -> None:
    subscribed = await new_endpoint(
        client, auth, receiver, "a", ["invoicing.invoice.finalized", "payment.payment.succeeded"],
        plan=[500, 200],
    )
    assert subscribed["status"] == "enabled"
    assert subscribed["secret"].startswith("whsec_")
    not_subscribed = await new_endpoint(client, auth, receiver, "b", ["payment.payment.failed"], plan=[200])
    globex = test_keys.headers("globex", ["webhooks:*"])
    other_tenant = await new_endpoint(client, globex, receiver, "c", ["invoicing.invoice.finalized"], plan=[200])

    invoice = finalized("99.90")
    event, _ = await publish(client, "invoicing", "invoicing.invoice.finalized", invoice)
    delivered = await wait_status(client, auth, subscribed["id"], "delivered")

    assert delivered["attempt_count"] == 2
    assert delivered["event_id"] == event.id
    assert delivered["event_type"] == "invoicing.invoice.finalized"
    assert (delivered["last_status_code"], delivered["last_error"]) == (200, None)
    hits = receiver.got("a")
    assert len(hits) == 2  # both verified by the receiver
    assert {h.headers["webhook-id"] for h in hits} == {event.id}
    assert hits[0].payload == hits[1].payload
    assert hits[0].payload["type"] == "invoicing.invoice.finalized"
    assert hits[0].payload["data"] == json.loads(invoice.model_dump_json())
    assert datetime.fromisoformat(hits[0].payload["timestamp"]) == event.time
    assert receiver.forged == []

    detail = (await client.get(f"/v1/webhook-deliveries/{delivered['id']}", headers=auth)).json()
    assert [(a["number"], a["status_code"], a["error"]) for a in detail["attempts"]] == [
        (1, 500, "HTTP 500"), (2, 200, None),
    ]
    assert all(a["duration_ms"] is not None and a["duration_ms"] >= 0 for a in detail["attempts"])
    assert detail["payload"] == hits[0].payload
    assert detail["attempts"][1]["response_body"] == "ok"
    assert detail["attempts"][0]["url"] == receiver.url("a")

    # Deliveries for every endpoint are queued in the same transaction as the one above: the
    # others got none, and their receivers nothing.
    assert await deliveries(client, auth, endpoint_id=not_subscribed["id"]) == []
    assert await deliveries(client, globex, endpoint_id=other_tenant["id"]) == []
    assert await deliveries(client, globex) == []
    assert receiver.got("b") == [] and receiver.got("c") == []


async def test_redelivered_event_queues_one_delivery(client, auth, receiver) -> None:
    endpoint = await new_endpoint(client, auth, receiver, "r", ["invoicing.invoice.finalized"], plan=[200])
    event, _ = await publish(client, "invoicing", "invoicing.invoice.finalized", finalized())
    _, seq = await publish(client, "invoicing", "", None, event=event)
    await wait_consumed(client, "INVOICING", "webhooks-invoicing", seq)
    await wait_status(client, auth, endpoint["id"], "delivered")
    items = await deliveries(client, auth, endpoint_id=endpoint["id"])
    assert len(items) == 1
    assert len(receiver.got("r")) == 1


async def test_exhausted_retries_fail_and_replay_sends_again(client, auth, receiver) -> None:
    endpoint = await new_endpoint(
        client, auth, receiver, "d", ["payment.payment.failed"], plan=[500, 503, 500, 204]
    )
    event, _ = await publish(client, "payment", "payment.payment.failed", payment_failed())
    failed = await wait_status(client, auth, endpoint["id"], "failed")
    assert failed["attempt_count"] == 3  # the first try and the two retries of the schedule
    assert (failed["last_status_code"], failed["last_error"]) == (500, "HTTP 500")
    assert len(receiver.got("d")) == 3

    replay = await client.post(f"/v1/webhook-deliveries/{failed['id']}/replay", headers=auth)
    assert replay.status_code == 202, replay.text
    assert replay.json()["status"] == "pending"
    delivered = await wait_status(client, auth, endpoint["id"], "delivered")
    assert delivered["attempt_count"] == 4 and delivered["last_status_code"] == 204
    hits = receiver.got("d")
    assert len(hits) == 4 and {h.headers["webhook-id"] for h in hits} == {event.id}
    by_type = await deliveries(
        client, auth, endpoint_id=endpoint["id"], event_type="payment.payment.failed", status="delivered"
    )
    assert [d["id"] for d in by_type] == [failed["id"]]
    assert await deliveries(client, auth, endpoint_id=endpoint["id"], event_type="invoicing.invoice.paid") == []


async def test_a_delivery_whose_lease_expired_is_sent_again(client, auth, receiver) -> None:
    """A worker killed while sending leaves the row 'sending'; after the lease it is due again."""
    endpoint = await new_endpoint(client, auth, receiver, "l", ["invoicing.invoice.paid"], plan=[200])
    delivery_id, now = str(uuid.uuid4()), datetime.now(UTC)
    async with unit_of_work(runtime(client).sessions) as session:
        await session.execute(insert(webhook_deliveries).values(
            id=delivery_id, tenant="acme", endpoint_id=endpoint["id"], event_id="evt-lease",
            event_type="invoicing.invoice.paid",
            payload={"type": "invoicing.invoice.paid", "timestamp": "2026-11-01T00:00:00Z", "data": {}},
            status="sending", attempts=1, round_attempts=1, next_attempt_at=now - timedelta(minutes=2),
            lease_expires_at=now - timedelta(seconds=1), last_attempt_at=now - timedelta(minutes=2),
            created_at=now, updated_at=now,
        ))
        await session.execute(insert(delivery_attempts).values(
            tenant="acme", delivery_id=delivery_id, number=1, url=endpoint["url"],
            started_at=now - timedelta(minutes=2),
        ))
    delivered = await wait_status(client, auth, endpoint["id"], "delivered")
    assert delivered["id"] == delivery_id and delivered["attempt_count"] == 2
    detail = (await client.get(f"/v1/webhook-deliveries/{delivery_id}", headers=auth)).json()
    assert [(a["status_code"], a["error"]) for a in detail["attempts"]] == [(None, LOST_ATTEMPT), (200, None)]
    assert [h.headers["webhook-id"] for h in receiver.got("l")] == ["evt-lease"]


async def test_disabled_endpoint_gets_nothing_and_its_queue_is_failed(client, auth, receiver) -> None:
    endpoint = await new_endpoint(client, auth, receiver, "x", ["invoicing.invoice.finalized"], plan=[200])
    witness = await new_endpoint(client, auth, receiver, "w", ["invoicing.invoice.finalized"], plan=[200])
    queued_id, now = str(uuid.uuid4()), datetime.now(UTC)
    async with unit_of_work(runtime(client).sessions) as session:
        await session.execute(insert(webhook_deliveries).values(
            id=queued_id, tenant="acme", endpoint_id=endpoint["id"], event_id="evt-later",
            event_type="invoicing.invoice.finalized", payload={"type": "x", "timestamp": "t", "data": {}},
            status="pending", next_attempt_at=now + timedelta(hours=1), created_at=now, updated_at=now,
        ))
    resp = await client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth)
    assert resp.status_code == 200 and resp.json()["status"] == "disabled"
    again = await client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth)
    assert again.status_code == 200 and again.json()["disabled_at"] == resp.json()["disabled_at"]
    queued = (await client.get(f"/v1/webhook-deliveries/{queued_id}", headers=auth)).json()
    assert (queued["status"], queued["last_error"]) == ("failed", ENDPOINT_DISABLED)
    replay = await client.post(f"/v1/webhook-deliveries/{queued_id}/replay", headers=auth)
    assert replay.status_code == 409

    await publish(client, "invoicing", "invoicing.invoice.finalized", finalized())
    await wait_status(client, auth, witness["id"], "delivered")
    assert [d["id"] for d in await deliveries(client, auth, endpoint_id=endpoint["id"])] == [queued_id]
    assert receiver.got("x") == []
    listed = (await client.get("/v1/webhook-endpoints", params={"status": "disabled"}, headers=auth)).json()
    assert [e["id"] for e in listed["items"]] == [endpoint["id"]]


async def test_bad_input_gets_problem_json_and_writes_nothing(client, auth) -> None:
    before = (await client.get("/v1/webhook-endpoints", headers=auth)).json()
    ok = {"url": "https://partner.example/hook", "event_types": ["invoicing.invoice.paid"]}
    cases: list[tuple[dict[str, Any] | bytes, int, str, list[str] | None]] = [
        ({**ok, "url": "ftp://partner.example/hook"}, 422, "unprocessable", ["url"]),
        ({**ok, "url": "partner.example/hook"}, 422, "unprocessable", ["url"]),
        ({**ok, "event_types": ["invoicing.invoice.paid", "usage.records.rated"]}, 422, "unprocessable", ["event_types.1"]),
        ({**ok, "event_types": []}, 422, "unprocessable", ["event_types"]),
        ({"url": "mailto:x", "event_types": ["nope"]}, 422, "unprocessable", ["url", "event_types.0"]),
        ({**ok, "status": "disabled"}, 422, "validation-error", ["status"]),
        ({**ok, "secret": "whsec_mine"}, 422, "validation-error", ["secret"]),
        ({"url": "https://partner.example/hook"}, 422, "validation-error", ["event_types"]),
        (b'{"url": ', 400, "malformed-json", None),
    ]
    for body, status, slug, fields in cases:
        if isinstance(body, bytes):
            resp = await client.post("/v1/webhook-endpoints", content=body, headers={**auth, "content-type": "application/json"})
        else:
            resp = await client.post("/v1/webhook-endpoints", json=body, headers=auth)
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        problem = resp.json()
        assert problem["type"].endswith("/" + slug), problem
        if fields is not None:
            assert [e["field"] for e in problem.get("errors", [])] == fields, problem
    assert (await client.get("/v1/webhook-endpoints", headers=auth)).json() == before
    assert (await client.get("/v1/webhook-deliveries", params={"status": "lost"}, headers=auth)).status_code == 422
    assert (await client.get("/v1/webhook-deliveries/nope", headers=auth)).status_code == 404
    assert (await client.post("/v1/webhook-deliveries/nope/replay", headers=auth)).status_code == 404
    assert (await client.delete("/v1/webhook-endpoints/nope", headers=auth)).status_code == 404


async def test_scopes_secrets_and_tenant_isolation(client, auth, receiver, test_keys) -> None:
    assert (await client.get("/v1/webhook-endpoints")).status_code == 401
    ro = test_keys.headers("acme", ["webhooks:read"])
    body = {"url": "https://partner.example/hook", "event_types": ["invoicing.invoice.paid"]}
    assert (await client.post("/v1/webhook-endpoints", json=body, headers=ro)).status_code == 403
    created = (await client.post("/v1/webhook-endpoints", json=body, headers=auth)).json()
    shown = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=ro)
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    assert all("secret" not in e for e in (await client.get("/v1/webhook-endpoints", headers=ro)).json()["items"])
    other = test_keys.headers("globex", ["webhooks:*"])
    assert (await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=other)).status_code == 404
    assert (await client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=other)).status_code == 404
    assert (await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=ro)).json()["status"] == "enabled"
    assert (await client.get("/v1/admin/webhooks/dead-letters", headers=test_keys.headers("acme", ["admin"]))).status_code == 200


async def test_endpoint_list_is_paginated(client, test_keys) -> None:
    h = test_keys.headers("pager", ["webhooks:*"])
    ids = []
    for i in range(5):
        resp = await client.post(
            "/v1/webhook-endpoints",
            json={"url": f"https://p{i}.example/h", "event_types": ["payment.payment.succeeded"]},
            headers=h,
        )
        ids.append(resp.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/webhook-endpoints", params=params, headers=h)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids


async def test_an_attempt_that_hangs_is_cut_at_the_timeout(receiver) -> None:
    """The whole attempt is bounded by delivery_timeout, whatever the partner does."""
    secret = new_secret()
    receiver.expect("slow", secret, plan=[-1])
    claim = Claim(
        delivery_id="d", tenant="acme", attempt_id=1, attempt_number=1, round_attempts=1,
        event_id="evt-slow", payload={"type": "t", "timestamp": "x", "data": {}},
        url=receiver.url("slow"), secret=secret,
    )
    async with httpx.AsyncClient() as http:
        status_code, error, body = await send(http, claim, body_limit=16, timeout=0.3)
    assert (status_code, error, body) == (None, "timeout after 0.3s", None)
    assert len(receiver.got("slow")) == 1  # it was sent (and verified), just never answered
