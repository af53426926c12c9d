"""Events this service publishes, and the handlers of the events it consumes.

The handlers keep the projections guiding rates from (accounts, lines, subscriptions, plans).
Each is an upsert, so applying an event twice changes nothing (the inbox already drops
redeliveries; the upsert also covers a replay from the stream).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.events import CloudEvent, new_event
from rateline_shared.events.consumer import ConsumerSpec
from rateline_shared.events.payloads import (
    AccountCreated,
    LineCreated,
    PlanPublished,
    RatedRecord,
    RecordsRated,
    SubscriptionActivated,
)
from rateline_usage import repository as repo

SERVICE = "usage"
RECORDS_RATED = "usage.records.rated"
# At most this many records per usage.records.rated event (keeps messages well under 1 MB).
RATED_CHUNK_SIZE = 500


async def on_account_created(session: AsyncSession, event: CloudEvent) -> None:
    account = AccountCreated.model_validate(event.data)
    await repo.upsert_account(
        session,
        event.tenant,
        {
            "id": account.account_id,
            "currency": account.currency,
            "country": account.country,
            "timezone": account.timezone,
        },
    )


async def on_line_created(session: AsyncSession, event: CloudEvent) -> None:
    line = LineCreated.model_validate(event.data)
    await repo.upsert_line(
        session,
        event.tenant,
        {
            "id": line.line_id,
            "account_id": line.account_id,
            "msisdn": line.msisdn,
            "status": line.status,
            "activated_at": line.activated_at,
        },
    )


async def on_subscription_activated(session: AsyncSession, event: CloudEvent) -> None:
    sub = SubscriptionActivated.model_validate(event.data)
    await repo.upsert_subscription(
        session,
        event.tenant,
        {
            "id": sub.subscription_id,
            "account_id": sub.account_id,
            "line_id": sub.line_id,
            "plan_id": sub.plan_id,
            "start_date": sub.start_date,
            "activated_at": sub.activated_at,
        },
    )


async def on_plan_published(session: AsyncSession, event: CloudEvent) -> None:
    plan = PlanPublished.model_validate(event.data)
    await repo.upsert_plan(
        session,
        event.tenant,
        {
            "id": plan.plan_id,
            "code": plan.code,
            "currency": plan.currency,
            "rates": [r.model_dump(mode="json") for r in plan.rates],
            "published_at": plan.published_at,
        },
    )


def records_rated_events(tenant: str, records: Sequence[RatedRecord]) -> list[CloudEvent]:
    """``usage.records.rated`` events for newly rated records, in chunks of RATED_CHUNK_SIZE."""
    events = []
    for start in range(0, len(records), RATED_CHUNK_SIZE):
        batch_id = str(uuid.uuid4())
        events.append(
            new_event(
                service=SERVICE,
                type=RECORDS_RATED,
                tenant=tenant,
                subject=batch_id,
                data=RecordsRated(
                    batch_id=batch_id, records=list(records[start : start + RATED_CHUNK_SIZE])
                ),
            )
        )
    return events


CONSUMERS = [
    ConsumerSpec(
        name="usage-customer",
        stream_service="customer",
        handlers={
            "customer.account.created": on_account_created,
            "customer.line.created": on_line_created,
            "customer.subscription.activated": on_subscription_activated,
        },
    ),
    ConsumerSpec(
        name="usage-catalog",
        stream_service="catalog",
        handlers={"catalog.plan.published": on_plan_published},
    ),
]
