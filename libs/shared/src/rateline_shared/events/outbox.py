"""Transactional outbox: write the event in the state change's transaction, relay it later.

The relay publishes rows in order with ``Nats-Msg-Id`` = event id, so a relay that dies
between publishing and deleting republishes into JetStream's duplicate window (dropped there)
and, beyond it, into consumers' inbox tables (dropped there). Nothing uncommitted is published.
Several replicas may relay at once: rows are claimed with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from nats.js import JetStreamContext
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_shared.db import unit_of_work
from rateline_shared.events.envelope import CloudEvent

logger = logging.getLogger("rateline.outbox")
EVENTS_PUBLISHED = Counter("rateline_events_published_total", "Events relayed to JetStream", ["type"])

_INSERT = text(
    "INSERT INTO outbox (event_id, subject, payload) VALUES (:event_id, :subject, CAST(:payload AS jsonb))"
)


async def publish_in_transaction(session: AsyncSession, *events: CloudEvent) -> None:
    """Add events to the outbox inside the caller's transaction."""
    if not events:
        return
    await session.execute(
        _INSERT,
        [
            {"event_id": e.id, "subject": e.type, "payload": e.model_dump_json()}
            for e in events
        ],
    )


async def relay_once(
    sessions: async_sessionmaker[AsyncSession], js: JetStreamContext, batch_size: int
) -> int:
    """Publish up to ``batch_size`` pending events; returns how many were relayed."""
    async with unit_of_work(sessions) as session:
        rows: Sequence[Any] = (
            await session.execute(
                text(
                    "SELECT seq, event_id, subject, payload FROM outbox ORDER BY seq "
                    "LIMIT :n FOR UPDATE SKIP LOCKED"
                ),
                {"n": batch_size},
            )
        ).all()
        if not rows:
            return 0
        acks = [
            js.publish(
                subject,
                (json.dumps(payload) if not isinstance(payload, str) else payload).encode(),
                headers={"Nats-Msg-Id": event_id},
            )
            for _seq, event_id, subject, payload in rows
        ]
        await asyncio.gather(*acks)
        await session.execute(
            text("DELETE FROM outbox WHERE seq = ANY(:seqs)"), {"seqs": [r[0] for r in rows]}
        )
        for _seq, _eid, subject, _p in rows:
            EVENTS_PUBLISHED.labels(subject).inc()
        return len(rows)


async def run_relay(
    sessions: async_sessionmaker[AsyncSession],
    js: JetStreamContext,
    *,
    poll_interval: float,
    batch_size: int,
) -> None:
    """Relay forever; back off on errors (NATS or PostgreSQL down) without losing rows."""
    delay = poll_interval
    while True:
        try:
            sent = await relay_once(sessions, js, batch_size)
            delay = poll_interval
            if sent == batch_size:
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("outbox relay failed; retrying")
            delay = min(max(delay * 2, 0.5), 5.0)
        await asyncio.sleep(delay)
