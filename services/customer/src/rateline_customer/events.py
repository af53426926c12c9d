"""Events this service publishes, and the handlers of the events it consumes."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_customer.db import plans
from rateline_shared.events import CloudEvent
from rateline_shared.events.consumer import ConsumerSpec
from rateline_shared.events.payloads import PlanPublished

SERVICE = "customer"
ACCOUNT_CREATED = "customer.account.created"
LINE_CREATED = "customer.line.created"
SUBSCRIPTION_ACTIVATED = "customer.subscription.activated"


async def on_plan_published(session: AsyncSession, event: CloudEvent) -> None:
    plan = PlanPublished.model_validate(event.data)
    stmt = insert(plans).values(
        id=plan.plan_id, tenant=event.tenant, code=plan.code, currency=plan.currency
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[plans.c.id], set_={"code": plan.code, "currency": plan.currency}
        )
    )


CONSUMERS = [
    ConsumerSpec(
        name="customer-catalog",
        stream_service="catalog",
        handlers={"catalog.plan.published": on_plan_published},
    )
]
