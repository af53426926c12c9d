"""The handlers of the events partners may receive: each turns one event into one pending
delivery per subscribed endpoint of the event's tenant, inside the inbox transaction (so a
redelivered event queues nothing twice). Sending is the delivery worker's job (delivery.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.db import utcnow
from rateline_shared.events import CloudEvent
from rateline_shared.events.consumer import ConsumerSpec, Handler
from rateline_webhooks import repository as repo
from rateline_webhooks.domain.endpoints import PARTNER_EVENT_TYPES
from rateline_webhooks.domain.messages import webhook_payload

SERVICE = "webhooks"


async def fan_out(session: AsyncSession, event: CloudEvent) -> None:
    endpoint_ids = await repo.subscribed_endpoints(session, event.tenant, event.type)
    await repo.queue_deliveries(
        session,
        tenant=event.tenant,
        endpoint_ids=endpoint_ids,
        event_id=event.id,  # the webhook-id: the partner de-duplicates on it
        event_type=event.type,
        payload=webhook_payload(event.type, event.time, event.data),
        now=utcnow(),
    )


def _handlers(stream_service: str) -> dict[str, Handler]:
    return {t: fan_out for t in PARTNER_EVENT_TYPES if t.startswith(stream_service + ".")}


CONSUMERS = [
    ConsumerSpec(name="webhooks-invoicing", stream_service="invoicing", handlers=_handlers("invoicing")),
    ConsumerSpec(name="webhooks-payment", stream_service="payment", handlers=_handlers("payment")),
    # Only the threshold subjects: the consumer filters them server-side, so the stream's
    # high-volume usage.records.* events never reach this service.
    ConsumerSpec(name="webhooks-usage", stream_service="usage", handlers=_handlers("usage")),
]
