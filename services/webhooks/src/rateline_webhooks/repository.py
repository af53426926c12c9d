"""Queries. API and consumer queries are scoped by tenant; the delivery worker's claim is the one
query that spans tenants (it serves all of them), and every row it touches carries its tenant.
Functions only execute; the unit of work commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared import repository as generic
from rateline_webhooks.db import delivery_attempts, webhook_deliveries, webhook_endpoints

# The generic tenant-scoped queries (rateline_shared.repository), used by the API as repo.*.
get = generic.get
insert_row = generic.insert_row
list_page = generic.list_page


LOST_ATTEMPT = "no outcome recorded: the worker stopped while sending (lease expired)"
ENDPOINT_DISABLED = "endpoint disabled"


# --- endpoints --------------------------------------------------------------------------------
async def subscribed_endpoints(session: AsyncSession, tenant: str, event_type: str) -> list[str]:
    """Ids of the tenant's enabled endpoints subscribed to ``event_type``."""
    stmt = select(webhook_endpoints.c.id).where(
        webhook_endpoints.c.tenant == tenant,
        webhook_endpoints.c.status == "enabled",
        webhook_endpoints.c.event_types.any_() == event_type,
    )
    return [str(r) for r in (await session.execute(stmt)).scalars().all()]


async def disable_endpoint(
    session: AsyncSession, tenant: str, endpoint_id: str, now: datetime
) -> RowMapping | None:
    """Disable an endpoint and fail its queued deliveries (one being sent finishes first)."""
    stmt = (
        update(webhook_endpoints)
        .where(webhook_endpoints.c.tenant == tenant, webhook_endpoints.c.id == endpoint_id)
        .values(
            status="disabled",
            updated_at=now,
            disabled_at=func.coalesce(webhook_endpoints.c.disabled_at, now),
        )
        .returning(webhook_endpoints)
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    if row is not None:
        await session.execute(
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.tenant == tenant,
                webhook_deliveries.c.endpoint_id == endpoint_id,
                webhook_deliveries.c.status == "pending",
            )
            .values(status="failed", next_attempt_at=None, last_error=ENDPOINT_DISABLED, updated_at=now)
        )
    return row


# --- deliveries -------------------------------------------------------------------------------
async def queue_deliveries(
    session: AsyncSession,
    *,
    tenant: str,
    endpoint_ids: Sequence[str],
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    """One pending delivery per endpoint; an event seen again for an endpoint is ignored."""
    if not endpoint_ids:
        return
    rows = [
        {
            "id": str(uuid.uuid4()),
            "tenant": tenant,
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event_type": event_type,
            "payload": payload,
            "status": "pending",
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for endpoint_id in endpoint_ids
    ]
    stmt = pg_insert(webhook_deliveries).values(rows)
    await session.execute(
        stmt.on_conflict_do_nothing(
            index_elements=[webhook_deliveries.c.endpoint_id, webhook_deliveries.c.event_id]
        )
    )


async def attempts_of(session: AsyncSession, tenant: str, delivery_id: str) -> list[RowMapping]:
    stmt = (
        select(delivery_attempts)
        .where(delivery_attempts.c.tenant == tenant, delivery_attempts.c.delivery_id == delivery_id)
        .order_by(delivery_attempts.c.number)
    )
    return list((await session.execute(stmt)).mappings().all())


async def requeue(
    session: AsyncSession, tenant: str, delivery_id: str, now: datetime
) -> RowMapping | None:
    """Queue a delivery again now, with a fresh round of retries (not while it is sending)."""
    stmt = (
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.tenant == tenant,
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.status != "sending",
        )
        .values(
            status="pending",
            next_attempt_at=now,
            round_attempts=0,
            lease_expires_at=None,
            updated_at=now,
        )
        .returning(webhook_deliveries)
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


# --- the delivery worker ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery leased to this worker for one attempt."""

    delivery_id: str
    tenant: str
    attempt_id: int
    attempt_number: int  # over the delivery's whole life (the lease's identity)
    round_attempts: int  # within the current round (drives the back-off)
    event_id: str
    payload: dict[str, Any]
    url: str
    secret: str


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, lease_seconds: float
) -> list[Claim]:
    """Lease up to ``limit`` due deliveries: pending ones whose time has come, and 'sending'
    ones whose lease expired (their worker died mid-attempt). Rows locked by another worker are
    skipped. Deliveries of an endpoint disabled meanwhile are failed instead of sent."""
    d, e = webhook_deliveries, webhook_endpoints
    due = (
        select(d.c.id, e.c.status.label("endpoint_status"))
        .join(e, e.c.id == d.c.endpoint_id)
        .where(
            or_(
                and_(d.c.status == "pending", d.c.next_attempt_at <= now),
                and_(d.c.status == "sending", d.c.lease_expires_at <= now),
            )
        )
        .order_by(d.c.next_attempt_at)
        .limit(limit)
        .with_for_update(of=d, skip_locked=True)
    )
    rows = (await session.execute(due)).all()
    if not rows:
        return []
    orphaned = [r.id for r in rows if r.endpoint_status != "enabled"]
    ids = [r.id for r in rows if r.endpoint_status == "enabled"]
    if orphaned:
        await session.execute(
            update(d)
            .where(d.c.id.in_(orphaned))
            .values(
                status="failed",
                next_attempt_at=None,
                lease_expires_at=None,
                last_error=ENDPOINT_DISABLED,
                updated_at=now,
            )
        )
    if not ids:
        return []
    # An attempt left open by a dead worker gets an honest ending.
    await session.execute(
        update(delivery_attempts)
        .where(delivery_attempts.c.delivery_id.in_(ids), delivery_attempts.c.finished_at.is_(None))
        .values(finished_at=now, error=LOST_ATTEMPT)
    )
    leased = (
        await session.execute(
            update(d)
            .where(d.c.id.in_(ids))
            .values(
                status="sending",
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=d.c.attempts + 1,
                round_attempts=d.c.round_attempts + 1,
                last_attempt_at=now,
                updated_at=now,
            )
            .returning(
                d.c.id, d.c.tenant, d.c.endpoint_id, d.c.event_id, d.c.payload,
                d.c.attempts, d.c.round_attempts,
            )
        )
    ).mappings().all()
    endpoints = {
        r.id: r
        for r in (
            await session.execute(
                select(e.c.id, e.c.url, e.c.secret).where(
                    e.c.id.in_({row["endpoint_id"] for row in leased})
                )
            )
        ).all()
    }
    claims: list[Claim] = []
    for row in leased:
        endpoint = endpoints[row["endpoint_id"]]
        attempt_id = (
            await session.execute(
                insert(delivery_attempts)
                .values(
                    tenant=row["tenant"],
                    delivery_id=row["id"],
                    number=row["attempts"],
                    url=endpoint.url,
                    started_at=now,
                )
                .returning(delivery_attempts.c.id)
            )
        ).scalar_one()
        claims.append(
            Claim(
                delivery_id=row["id"],
                tenant=row["tenant"],
                attempt_id=int(attempt_id),
                attempt_number=int(row["attempts"]),
                round_attempts=int(row["round_attempts"]),
                event_id=row["event_id"],
                payload=dict(row["payload"]),
                url=endpoint.url,
                secret=endpoint.secret,
            )
        )
    return claims


async def finish_attempt(
    session: AsyncSession,
    claim: Claim,
    *,
    finished_at: datetime,
    duration_ms: int,
    status_code: int | None,
    error: str | None,
    response_body: str | None,
    new_status: str,
    next_attempt_at: datetime | None,
) -> bool:
    """Record the attempt's outcome and move the delivery on. Returns ``False`` if the lease
    was lost meanwhile (another worker took the delivery over); the attempt is recorded anyway."""
    await session.execute(
        update(delivery_attempts)
        .where(delivery_attempts.c.id == claim.attempt_id)
        .values(
            finished_at=finished_at,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
            response_body=response_body,
        )
    )
    d = webhook_deliveries
    values: dict[str, Any] = {
        "status": new_status,
        "next_attempt_at": next_attempt_at,
        "lease_expires_at": None,
        "last_status_code": status_code,
        "last_error": error,
        "updated_at": finished_at,
    }
    if new_status == "delivered":
        values["delivered_at"] = finished_at
    result = await session.execute(
        update(d)
        .where(
            d.c.id == claim.delivery_id,
            d.c.status == "sending",
            d.c.attempts == claim.attempt_number,
        )
        .values(**values)
        .returning(d.c.id)
    )
    return result.first() is not None
