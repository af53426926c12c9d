"""The outbox relay and the inbox consumer against real PostgreSQL and NATS JetStream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import pytest
from sqlalchemy import Column, Integer, String, Table, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_shared.db import create_engine, new_metadata, session_factory, unit_of_work
from rateline_shared.events import CloudEvent, new_event, publish_in_transaction
from rateline_shared.events.consumer import ConsumerSpec, PoisonEvent, run_consumer
from rateline_shared.events.outbox import relay_once, run_relay
from rateline_shared.events.streams import ensure_streams
from rateline_shared.testing import fresh_database, wait_until

metadata = new_metadata()
effects = Table("effects", metadata, Column("id", Integer, primary_key=True), Column("event_id", String(64)))


@dataclass
class Env:
    sessions: async_sessionmaker[AsyncSession]
    js: nats.js.JetStreamContext
    nc: nats.NATS


@pytest.fixture
async def env(pg_server, nats_server) -> AsyncIterator[Env]:
    engine = create_engine(fresh_database(pg_server, "backbone"))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, {"customer"})
    yield Env(session_factory(engine), js, nc)
    await nc.close()
    await engine.dispose()


async def count(sessions: async_sessionmaker[AsyncSession], sql: str) -> int:
    async with unit_of_work(sessions) as s:
        return int((await s.execute(text(sql))).scalar_one())


def event(n: int) -> CloudEvent:
    return new_event(service="customer", type="customer.account.created", tenant="t", subject=str(n), data={"n": n})


async def test_rolled_back_events_are_never_published(env: Env) -> None:
    with contextlib.suppress(RuntimeError):
        async with unit_of_work(env.sessions) as s:
            await publish_in_transaction(s, event(1))
            raise RuntimeError("the state change failed")
    assert await count(env.sessions, "SELECT count(*) FROM outbox") == 0
    async with unit_of_work(env.sessions) as s:
        await publish_in_transaction(s, event(2), event(3))
    assert await relay_once(env.sessions, env.js, 100) == 2
    assert await count(env.sessions, "SELECT count(*) FROM outbox") == 0
    info = await env.js.stream_info("CUSTOMER")
    assert info.state.messages == 2


async def test_republished_event_is_deduplicated_by_jetstream(env: Env) -> None:
    e = event(7)
    before = (await env.js.stream_info("CUSTOMER")).state.messages
    for _ in range(3):  # a relay that died after publishing, before deleting, publishes again
        async with unit_of_work(env.sessions) as s:
            await publish_in_transaction(s, e)
        await relay_once(env.sessions, env.js, 100)
    info = await env.js.stream_info("CUSTOMER")
    assert info.state.messages == before + 1


async def test_consumer_applies_each_event_once_and_dead_letters_poison(env: Env) -> None:
    attempts: dict[str, int] = {}

    async def handler(session: AsyncSession, ev: CloudEvent) -> None:
        attempts[ev.id] = attempts.get(ev.id, 0) + 1
        if ev.data["n"] == 99:
            raise PoisonEvent("cannot ever apply n=99")
        if ev.data["n"] == 5 and attempts[ev.id] < 3:
            raise RuntimeError("transient failure")
        await session.execute(effects.insert().values(event_id=ev.id))

    spec = ConsumerSpec(name="test-consumer", stream_service="customer", handlers={"customer.account.created": handler})
    good, flaky, poison = event(1), event(5), event(99)
    await env.js.purge_stream("CUSTOMER")
    for ev in (good, flaky, poison, good):  # `good` is delivered twice (as after a redelivery)
        # publish directly with distinct msg ids so JetStream keeps the duplicate
        await env.js.publish(ev.type, ev.model_dump_json().encode())
    task = asyncio.create_task(
        run_consumer(env.js, env.sessions, spec, batch_size=10, max_deliver=5, ack_wait=5)
    )
    relay = asyncio.create_task(run_relay(env.sessions, env.js, poll_interval=0.05, batch_size=10))
    try:
        async def settled() -> bool:
            return (
                await count(env.sessions, "SELECT count(*) FROM effects") == 2
                and await count(env.sessions, "SELECT count(*) FROM dead_letters") == 1
            )

        await wait_until(settled, timeout=30)
    finally:
        task.cancel()
        relay.cancel()
        await asyncio.gather(task, relay, return_exceptions=True)
    assert await count(env.sessions, f"SELECT count(*) FROM effects WHERE event_id = '{good.id}'") == 1
    assert attempts[flaky.id] == 3
    assert attempts[poison.id] == 1
    assert await count(env.sessions, "SELECT count(*) FROM inbox") == 2
    dl = await env.js.stream_info("DEADLETTER")
    assert dl.state.messages == 1
