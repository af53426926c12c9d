"""Durable pull consumers that apply each event exactly once.

For every message: open a transaction, insert ``(consumer, event_id)`` into the inbox table,
run the handler in the same transaction, commit, and only then ack. A redelivered event finds
its inbox row and is acked without running again. A handler that keeps failing is retried with
back-off; after ``max_deliver`` deliveries the event is copied to the dead-letter stream (and
the ``dead_letters`` table, listed by the service's API) and terminated.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_shared.db import unit_of_work
from rateline_shared.events.envelope import CloudEvent
from rateline_shared.events.streams import DEAD_LETTER_PREFIX, stream_name
from rateline_shared.logs import correlation_id

logger = logging.getLogger("rateline.consumer")
EVENTS_CONSUMED = Counter(
    "rateline_events_consumed_total", "Events consumed", ["consumer", "type", "outcome"]
)

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]


@dataclass
class ConsumerSpec:
    """A durable consumer: which service's stream, which event types, which handlers."""

    name: str
    stream_service: str
    handlers: dict[str, Handler] = field(default_factory=dict)

    @property
    def filter_subjects(self) -> list[str]:
        return sorted(self.handlers)


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never succeed (sent straight to dead letter)."""


async def _already_processed(session: AsyncSession, consumer: str, event: CloudEvent) -> bool:
    result = await session.execute(
        text(
            "INSERT INTO inbox (consumer, event_id, subject) VALUES (:c, :e, :s) "
            "ON CONFLICT DO NOTHING RETURNING event_id"
        ),
        {"c": consumer, "e": event.id, "s": event.type},
    )
    return result.first() is None


async def dead_letter(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    spec: ConsumerSpec,
    msg: Msg,
    error: str,
) -> None:
    """Copy ``msg`` to the dead-letter stream and table with ``error``, then terminate it.
    Public so that a service's own consumer loop (the usage mediation feed) uses the same rule."""
    event_id = (msg.headers or {}).get("Nats-Msg-Id", "") or f"seq-{msg.metadata.sequence.stream}"
    await js.publish(
        f"{DEAD_LETTER_PREFIX}.{spec.name}",
        msg.data,
        headers={
            "Nats-Msg-Id": f"dl-{spec.name}-{event_id}",
            "Rateline-Consumer": spec.name,
            "Rateline-Subject": msg.subject,
            "Rateline-Error": error[:1000],
        },
    )
    try:
        payload: object = json.loads(msg.data)
    except ValueError:
        payload = None
    async with unit_of_work(sessions) as session:
        await session.execute(
            text(
                "INSERT INTO dead_letters (consumer, event_id, subject, deliveries, error, payload) "
                "VALUES (:c, :e, :s, :d, :err, CAST(:p AS jsonb))"
            ),
            {
                "c": spec.name,
                "e": event_id,
                "s": msg.subject,
                "d": msg.metadata.num_delivered,
                "err": error[:4000],
                "p": json.dumps(payload) if payload is not None else None,
            },
        )
    await msg.term()
    logger.error("event dead-lettered", extra={"event_id": event_id, "event_type": msg.subject})


async def handle_message(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    spec: ConsumerSpec,
    msg: Msg,
    max_deliver: int,
) -> None:
    try:
        event = CloudEvent.model_validate_json(msg.data)
    except ValidationError as exc:
        EVENTS_CONSUMED.labels(spec.name, msg.subject, "malformed").inc()
        await dead_letter(js, sessions, spec, msg, f"malformed envelope: {exc}")
        return
    handler = spec.handlers.get(event.type)
    token = correlation_id.set(event.correlationid)
    try:
        async with unit_of_work(sessions) as session:
            if await _already_processed(session, spec.name, event):
                EVENTS_CONSUMED.labels(spec.name, event.type, "duplicate").inc()
            elif handler is not None:
                await handler(session, event)
                EVENTS_CONSUMED.labels(spec.name, event.type, "ok").inc()
        await msg.ack()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        EVENTS_CONSUMED.labels(spec.name, event.type, "error").inc()
        deliveries = msg.metadata.num_delivered
        extra = {"event_id": event.id, "event_type": event.type, "tenant": event.tenant}
        if isinstance(exc, PoisonEvent) or deliveries >= max_deliver:
            logger.exception("handler failed for good after %s deliveries", deliveries, extra=extra)
            await dead_letter(js, sessions, spec, msg, f"{type(exc).__name__}: {exc}")
        else:
            logger.warning("handler failed (delivery %s), will retry: %s", deliveries, exc, extra=extra)
            await msg.nak(delay=min(0.5 * 2 ** (deliveries - 1), 30.0))
    finally:
        correlation_id.reset(token)


async def run_consumer(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    spec: ConsumerSpec,
    *,
    batch_size: int,
    max_deliver: int,
    ack_wait: float,
) -> None:
    """Fetch and apply events forever. Several replicas may share the durable consumer."""
    config = ConsumerConfig(
        durable_name=spec.name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        max_deliver=max_deliver + 1,
        ack_wait=ack_wait,
        filter_subjects=spec.filter_subjects,
        max_ack_pending=10_000,
    )
    stream = stream_name(spec.stream_service)
    while True:
        try:
            sub = await _subscribe(js, stream, spec, config)
            break
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("cannot create consumer %s; retrying", spec.name)
            await asyncio.sleep(1.0)
    while True:
        try:
            msgs = await sub.fetch(batch_size, timeout=1.0)
        except (TimeoutError, NatsTimeoutError):
            continue  # nothing to fetch (nats-py raises either, depending on where it timed out)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("fetch failed on %s; retrying", spec.name)
            await asyncio.sleep(1.0)
            continue
        for msg in msgs:
            await handle_message(js, sessions, spec, msg, max_deliver)


async def _subscribe(
    js: JetStreamContext, stream: str, spec: ConsumerSpec, config: ConsumerConfig
) -> JetStreamContext.PullSubscription:
    await js.add_consumer(stream, config)
    return await js.pull_subscribe_bind(durable=spec.name, stream=stream)
