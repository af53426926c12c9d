"""The delivery log: every event sent (or being sent) to an endpoint, its attempts, replay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, Conflict, NotFound
from rateline_webhooks import repository as repo
from rateline_webhooks.api.schemas import Attempt, Delivery, DeliveryDetail, DeliveryPage
from rateline_webhooks.db import webhook_deliveries, webhook_endpoints
from rateline_webhooks.domain.retry import DeliveryStatus


def delivery_fields(row: RowMapping) -> dict[str, Any]:
    fields = dict(row)
    fields["attempt_count"] = fields.pop("attempts")
    return fields


router = APIRouter(prefix="/v1", tags=["webhook-deliveries"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("webhooks:read"))]
Write = Annotated[Principal, Depends(require_scope("webhooks:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


@router.get("/webhook-deliveries", response_model=DeliveryPage)
async def list_deliveries(
    principal: Read,
    session: Session,
    endpoint_id: str | None = None,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    event_type: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    """List deliveries, oldest first, with their attempt count and last outcome; filter by
    ``endpoint_id``, ``status`` (pending, sending, delivered, failed) and ``event_type``."""
    rows, nxt = await repo.list_page(
        session, webhook_deliveries, principal.tenant, cursor=cursor, limit=limit,
        filters={"endpoint_id": endpoint_id, "status": status_, "event_type": event_type},
    )
    return DeliveryPage(
        items=[Delivery.model_validate(delivery_fields(r)) for r in rows], next_cursor=nxt
    )


@router.get("/webhook-deliveries/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(delivery_id: str, principal: Read, session: Session) -> DeliveryDetail:
    """One delivery with the signed payload and every attempt (status code, error, duration)."""
    row = await repo.get(session, webhook_deliveries, principal.tenant, delivery_id)
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    attempts = await repo.attempts_of(session, principal.tenant, delivery_id)
    return DeliveryDetail.model_validate(
        {**delivery_fields(row), "attempts": [Attempt.model_validate(dict(a)) for a in attempts]}
    )


@router.post(
    "/webhook-deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Delivery,
)
async def replay_delivery(delivery_id: str, principal: Write, session: Session) -> Delivery:
    """Send a delivery again now, with a fresh round of retries (same ``webhook-id``, so the
    partner can tell it is the same event). Refused (409) while it is being sent or when its
    endpoint is disabled."""
    row = await repo.get(session, webhook_deliveries, principal.tenant, delivery_id)
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    endpoint = await repo.get(session, webhook_endpoints, principal.tenant, row["endpoint_id"])
    if endpoint is None or endpoint["status"] != "enabled":
        raise Conflict(f"webhook endpoint {row['endpoint_id']} is disabled; enable it first")
    queued = await repo.requeue(session, principal.tenant, delivery_id, utcnow())
    if queued is None:
        raise Conflict(f"webhook delivery {delivery_id} is being sent right now; try again later")
    return Delivery.model_validate(delivery_fields(queued))
