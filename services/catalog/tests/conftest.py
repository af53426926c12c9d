"""Helpers shared by the catalog's API tests: a running service and a JetStream reader."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import nats
import pytest
from pydantic import BaseModel

from rateline_catalog.app import MIGRATIONS, create_app
from rateline_catalog.settings import CatalogSettings
from rateline_shared.events import new_event
from rateline_shared.events.envelope import CloudEvent
from rateline_shared.testing import running_service, service_settings, wait_until


@pytest.fixture(scope="module")
async def client(pg_server, nats_server, test_keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(CatalogSettings, pg_server, nats_server, test_keys, "catalog")
    async with running_service(create_app, settings, MIGRATIONS) as c:
        yield c


async def read_events(
    nats_url: str, subject: str, match: Callable[[CloudEvent], bool], count: int = 1
) -> list[CloudEvent]:
    """Wait for ``count`` events on ``subject`` (CATALOG stream) that ``match``, oldest first."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable=f"t-{uuid.uuid4().hex[:12]}", stream="CATALOG")
        found: list[CloudEvent] = []

        async def probe() -> list[CloudEvent] | None:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except nats.errors.TimeoutError:
                msgs = []
            for m in msgs:
                await m.ack()
                event = CloudEvent.model_validate_json(m.data)
                assert m.headers and m.headers["Nats-Msg-Id"] == event.id
                if match(event):
                    found.append(event)
            return found if len(found) >= count else None

        return await wait_until(probe)
    finally:
        await nc.close()


async def publish(client: httpx.AsyncClient, service: str, type_: str, tenant: str, data: BaseModel) -> None:
    """Play another service: put its event on its stream."""
    runtime: Any = client.app.state.runtime  # type: ignore[attr-defined]
    event = new_event(service=service, type=type_, tenant=tenant, data=data)
    await runtime.js.publish(event.type, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})


EventReader = Callable[..., Any]


@pytest.fixture(scope="module")
def events(nats_server) -> EventReader:
    """``await events(subject, match, count=1)``: this service's events read from JetStream."""

    async def read(subject: str, match: Callable[[CloudEvent], bool], count: int = 1) -> list[CloudEvent]:
        return await read_events(nats_server.url, subject, match, count)

    return read


@pytest.fixture(scope="module")
def play(client) -> Callable[..., Any]:
    """``await play(service, type, tenant, payload)``: publish another service's event."""

    async def send(service: str, type_: str, tenant: str, data: BaseModel) -> None:
        await publish(client, service, type_, tenant, data)

    return send
