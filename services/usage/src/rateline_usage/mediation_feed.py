"""Usage records from mediation devices over NATS: the ``MEDIATION`` stream.

A mediation device publishes ``{"records": [...]}`` (the JSON intake's records, ``source``
optional) to ``mediation.records.<tenant>.<source>``. The tenant and the source are taken from
the subject, so **the NATS account must restrict who may publish to which subject** (a device
gets publish permission on ``mediation.records.<its tenant>.<its source>`` only, and nothing on
``usage.>``, which is the usage service's own event stream).

A durable consumer (``usage-mediation``) hands every message to the same intake as the HTTP
API (validation, normalisation, de-duplication, rating, storage). There is nobody to answer a
422 to, so a message is treated like an imported file: a malformed record (or a body that is
not a batch at all) is stored rejected ``malformed`` with its raw JSON, never dropped.
Redelivery is harmless: records are de-duplicated by ``(source, record_id)``. A subject that
names no usable tenant or source, or a message that keeps failing (``consumer_max_deliver``
deliveries), is dead-lettered (kept in the ``dead_letters`` table and ``DEADLETTER`` stream).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_shared.db import unit_of_work
from rateline_shared.events.consumer import ConsumerSpec, dead_letter
from rateline_shared.events.streams import DUPLICATE_WINDOW_SECONDS, ensure_stream
from rateline_shared.service import Runtime
from rateline_usage import intake
from rateline_usage.api.imports import to_intake
from rateline_usage.domain.formats import Row
from rateline_usage.domain.mediation import FieldIssue
from rateline_usage.settings import UsageSettings

logger = logging.getLogger("rateline.usage.mediation")

STREAM = "MEDIATION"
SUBJECT_PREFIX = "mediation.records"
CONSUMER = "usage-mediation"
# Records handed to one intake call (one transaction); a longer message takes several.
CHUNK = 10_000


def stream_config() -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        storage=StorageType.FILE,
        max_age=30 * 24 * 3600.0,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


def parse_subject(subject: str) -> tuple[str, str] | None:
    """``(tenant, source)`` of ``mediation.records.<tenant>.<source>``, or ``None``."""
    parts = subject.split(".")
    if len(parts) != 4 or ".".join(parts[:2]) != SUBJECT_PREFIX:
        return None
    tenant, source = parts[2], parts[3]
    if not (1 <= len(tenant) <= 64 and 1 <= len(source) <= 100) or "*" in (tenant, source):
        return None
    return tenant, source


def rows_of(data: bytes, source: str) -> list[Row]:
    """The message's records as rows; a body that is no batch is one malformed row."""
    try:
        body: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        body = None
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not records or set(body) != {"records"}:
        raw = data.decode("utf-8", errors="replace")
        row = Row(1, raw, values={"source": source})
        row.issues.append(FieldIssue("", "batch", 'the message is not {"records": [...]} with records'))
        return [row]
    rows = []
    for number, record in enumerate(records, start=1):
        row = Row(number, json.dumps(record, ensure_ascii=False, default=str))
        if not isinstance(record, dict):
            row.values = {"source": source}
            row.issues.append(FieldIssue("", "object_type", "a record is a JSON object"))
        else:
            row.values = {**record, "source": record.get("source", source)}
            if row.values["source"] != source:
                row.issues.append(FieldIssue("source", "subject", f"the subject's source is {source!r}"))
                row.values["source"] = source
        rows.append(row)
    return rows


async def ingest_message(
    sessions: async_sessionmaker[AsyncSession], tenant: str, source: str, data: bytes, region: str
) -> intake.IngestSummary:
    """Store a message's records (each chunk in its own transaction)."""
    rows = rows_of(data, source)
    total = intake.IngestSummary()
    for start in range(0, len(rows), CHUNK):
        items = [to_intake(row, source, None) for row in rows[start : start + CHUNK]]
        async with unit_of_work(sessions) as session:
            summary = await intake.ingest(session, tenant, items, default_region=region)
        total.received += summary.received
        total.rated += summary.rated
        total.rejected += summary.rejected
        total.malformed += summary.malformed
        total.duplicates += summary.duplicates
    return total


async def _handle(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    msg: Msg,
    settings: UsageSettings,
) -> None:
    spec = ConsumerSpec(name=CONSUMER, stream_service="mediation")
    target = parse_subject(msg.subject)
    if target is None:
        await dead_letter(js, sessions, spec, msg, f"subject {msg.subject!r} names no tenant and source")
        return
    try:
        summary = await ingest_message(sessions, *target, msg.data, settings.default_country)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # e.g. the database is away: retry, then keep it as a dead letter
        deliveries = msg.metadata.num_delivered
        if deliveries >= settings.consumer_max_deliver:
            logger.exception("mediation message failed for good after %s deliveries", deliveries)
            await dead_letter(js, sessions, spec, msg, f"{type(exc).__name__}: {exc}")
        else:
            logger.warning("mediation message failed (delivery %s), will retry: %s", deliveries, exc)
            await msg.nak(delay=min(0.5 * 2 ** (deliveries - 1), 30.0))
        return
    await msg.ack()
    logger.info(
        "mediation records stored",
        extra={"tenant": target[0], "received": summary.received, "rated": summary.rated},
    )


async def mediation_worker(runtime: Runtime) -> None:
    """Consume ``mediation.records.>`` forever (replicas share the durable consumer)."""
    js = runtime.jetstream()
    settings = runtime.settings
    assert isinstance(settings, UsageSettings)
    config = ConsumerConfig(
        durable_name=CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.consumer_ack_wait,
        filter_subject=f"{SUBJECT_PREFIX}.>",
        max_ack_pending=1_000,
    )
    while True:
        try:
            await ensure_stream(js, stream_config())
            await js.add_consumer(STREAM, config)
            sub = await js.pull_subscribe_bind(durable=CONSUMER, stream=STREAM)
            break
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("cannot create the mediation consumer; retrying")
            await asyncio.sleep(1.0)
    while True:
        try:
            msgs = await sub.fetch(10, timeout=1.0)
        except (TimeoutError, NatsTimeoutError):
            continue
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("fetch failed on %s; retrying", CONSUMER)
            await asyncio.sleep(1.0)
            continue
        for msg in msgs:
            await _handle(js, runtime.sessions, msg, settings)
