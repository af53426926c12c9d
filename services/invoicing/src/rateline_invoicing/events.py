"""Events this service publishes, and the handlers of the events it consumes.

Handlers are idempotent on top of the inbox: projections are upserts keyed by (tenant, id),
rated records are unique by (tenant, source, record_id), payments count once per payment id.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_invoicing import billing
from rateline_invoicing import repository as repo
from rateline_invoicing.contracts import (
    ACCOUNT_CREATED,
    INVOICE_FINALIZED,
    INVOICE_PAID,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    PLAN_PUBLISHED,
    RECORDS_RATED,
    SERVICE,
    SUBSCRIPTION_ACTIVATED,
)
from rateline_shared.events import CloudEvent
from rateline_shared.events.consumer import ConsumerSpec, PoisonEvent
from rateline_shared.events.payloads import (
    AccountCreated,
    Payload,
    PaymentOutcome,
    PlanPublished,
    RecordsRated,
    SubscriptionActivated,
)

__all__ = ["CONSUMERS", "INVOICE_FINALIZED", "INVOICE_PAID", "SERVICE"]

P = TypeVar("P", bound=Payload)


def parse(model: type[P], event: CloudEvent) -> P:
    """The event's payload; one that does not validate can never succeed (dead letter now)."""
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise PoisonEvent(f"{event.type} payload does not validate: {exc}") from exc


async def on_account_created(session: AsyncSession, event: CloudEvent) -> None:
    acc = parse(AccountCreated, event)
    await repo.upsert(
        session,
        repo.accounts,
        {
            "tenant": event.tenant,
            "id": acc.account_id,
            "name": acc.name,
            "currency": acc.currency,
            "timezone": acc.timezone,
            "bill_cycle_day": acc.bill_cycle_day,
            "created_at": acc.created_at,
        },
    )


async def on_subscription_activated(session: AsyncSession, event: CloudEvent) -> None:
    sub = parse(SubscriptionActivated, event)
    await repo.upsert(
        session,
        repo.subscriptions,
        {
            "tenant": event.tenant,
            "id": sub.subscription_id,
            "account_id": sub.account_id,
            "line_id": sub.line_id,
            "plan_id": sub.plan_id,
            "start_date": sub.start_date,
            "activated_at": sub.activated_at,
        },
    )


async def on_plan_published(session: AsyncSession, event: CloudEvent) -> None:
    plan = parse(PlanPublished, event)
    await repo.upsert(
        session,
        repo.plans,
        {
            "tenant": event.tenant,
            "id": plan.plan_id,
            "code": plan.code,
            "name": plan.name,
            "currency": plan.currency,
            "recurring_fee": plan.recurring_fee,
            "billing_period": plan.billing_period,
            "published_at": plan.published_at,
        },
    )


async def on_records_rated(session: AsyncSession, event: CloudEvent) -> None:
    batch = parse(RecordsRated, event)
    rows = []
    for r in batch.records:
        if r.started_at.tzinfo is None:
            raise PoisonEvent(f"record {r.source}/{r.record_id}: started_at has no time zone")
        rows.append(
            {
                "tenant": event.tenant,
                "source": r.source,
                "record_id": r.record_id,
                "batch_id": batch.batch_id,
                "account_id": r.account_id,
                "line_id": r.line_id,
                "subscription_id": r.subscription_id,
                "plan_id": r.plan_id,
                "service": r.service,
                "started_at": r.started_at,
                "quantity": r.quantity,
                "billed_quantity": r.billed_quantity,
                "unit": r.unit,
                "amount": r.amount,
                "currency": r.currency,
            }
        )
    await repo.insert_rated_usage(session, rows)


async def on_payment_succeeded(session: AsyncSession, event: CloudEvent) -> None:
    await billing.apply_payment(
        session, event.tenant, parse(PaymentOutcome, event), succeeded=True
    )


async def on_payment_failed(session: AsyncSession, event: CloudEvent) -> None:
    await billing.apply_payment(
        session, event.tenant, parse(PaymentOutcome, event), succeeded=False
    )


CONSUMERS = [
    ConsumerSpec(
        name="invoicing-customer",
        stream_service="customer",
        handlers={
            ACCOUNT_CREATED: on_account_created,
            SUBSCRIPTION_ACTIVATED: on_subscription_activated,
        },
    ),
    ConsumerSpec(
        name="invoicing-catalog",
        stream_service="catalog",
        handlers={PLAN_PUBLISHED: on_plan_published},
    ),
    ConsumerSpec(
        name="invoicing-usage",
        stream_service="usage",
        handlers={RECORDS_RATED: on_records_rated},
    ),
    ConsumerSpec(
        name="invoicing-payment",
        stream_service="payment",
        handlers={PAYMENT_SUCCEEDED: on_payment_succeeded, PAYMENT_FAILED: on_payment_failed},
    ),
]
