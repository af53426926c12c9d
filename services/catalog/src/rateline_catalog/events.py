"""Events this service publishes, and the handlers of the customer events it consumes.

The catalog keeps a small projection of the customer service's accounts (time zone), lines and
subscriptions so that ``POST /v1/rating/quote`` can name a line (by MSISDN or id) and find its
plan. Each handler is an upsert, so applying an event twice changes nothing (the inbox already
drops redeliveries; the upsert also covers a replay from the stream).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog import repository as repo
from rateline_shared.events import CloudEvent
from rateline_shared.events.consumer import ConsumerSpec
from rateline_shared.events.payloads import AccountCreated, LineCreated, SubscriptionActivated

SERVICE = "catalog"
PLAN_PUBLISHED = "catalog.plan.published"
PLAN_VERSION_PUBLISHED = "catalog.plan_version.published"
PLAN_MIGRATION_SCHEDULED = "catalog.plan_migration.scheduled"
TARIFF_IMPORTED = "catalog.tariff.imported"

ACCOUNT_CREATED = "customer.account.created"
LINE_CREATED = "customer.line.created"
SUBSCRIPTION_ACTIVATED = "customer.subscription.activated"


async def on_account_created(session: AsyncSession, event: CloudEvent) -> None:
    account = AccountCreated.model_validate(event.data)
    await repo.upsert_account(session, event.tenant, {"id": account.account_id, "timezone": account.timezone})


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


CONSUMERS: list[ConsumerSpec] = [
    ConsumerSpec(
        name="catalog-customer",
        stream_service="customer",
        handlers={
            ACCOUNT_CREATED: on_account_created,
            LINE_CREATED: on_line_created,
            SUBSCRIPTION_ACTIVATED: on_subscription_activated,
        },
    ),
]
