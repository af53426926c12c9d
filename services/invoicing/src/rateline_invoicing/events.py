"""Events this service publishes, and the handlers of the events it consumes.

Handlers are idempotent on top of the inbox: projections are upserts keyed by (tenant, id),
plan versions by (tenant, plan, version), rated records are unique by (tenant, source,
record_id), adjustments by (tenant, job, source, record_id), payments count once per payment id.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

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
    PLAN_MIGRATION_SCHEDULED,
    PLAN_PUBLISHED,
    PLAN_VERSION_PUBLISHED,
    RECORDS_RATED,
    RECORDS_RERATED,
    SERVICE,
    SUBSCRIPTION_ACTIVATED,
)
from rateline_invoicing.domain.adjustments import StoredRecord, decide
from rateline_invoicing.domain.errors import DomainError
from rateline_rating.pricing import INVOICE_TIME_PRICING
from rateline_shared.events import CloudEvent
from rateline_shared.events.consumer import ConsumerSpec, PoisonEvent
from rateline_shared.events.payloads import (
    AccountCreated,
    Payload,
    PaymentOutcome,
    PlanMigrationScheduled,
    PlanPublished,
    PlanVersionPublished,
    RecordsRated,
    RecordsRerated,
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


PRICING_MODELS = frozenset({"per_unit", "tariff"}) | INVOICE_TIME_PRICING


def aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise PoisonEvent(f"{what} has no time zone")
    return value


async def on_plan_published(session: AsyncSession, event: CloudEvent) -> None:
    """Version 1 of a plan, as older catalogs announce it: the plan's header and, until the
    catalog.plan_version.published of version 1 arrives (it replaces it), version 1."""
    plan = parse(PlanPublished, event)
    published = aware(plan.published_at, "published_at")
    header = {
        "tenant": event.tenant, "id": plan.plan_id, "code": plan.code, "name": plan.name,
        "currency": plan.currency, "recurring_fee": plan.recurring_fee,
        "billing_period": plan.billing_period, "published_at": published, "version": 1,
    }
    await repo.upsert_plan_header(session, header)
    await repo.store_plan_version(
        session,
        {
            "tenant": event.tenant, "plan_id": plan.plan_id, "version": 1, "code": plan.code,
            "name": plan.name, "currency": plan.currency, "effective_from": published,
            "recurring_fee": plan.recurring_fee, "billing_period": plan.billing_period,
            "billing_timing": "advance", "one_time_charges": [],
            "rates": [r.model_dump(mode="json") for r in plan.rates],
            "published_at": published, "source": "plan",
        },
        replace=False,
    )


async def on_plan_version_published(session: AsyncSession, event: CloudEvent) -> None:
    """Every version of a plan, with all its components (kept as published)."""
    v = parse(PlanVersionPublished, event)
    effective = aware(v.effective_from, "effective_from")
    published = aware(v.published_at, "published_at")
    await repo.upsert_plan_header(
        session,
        {
            "tenant": event.tenant, "id": v.plan_id, "code": v.code, "name": v.name,
            "currency": v.currency, "recurring_fee": v.recurring_fee,
            "billing_period": v.billing_period, "published_at": published, "version": v.version,
        },
    )
    await repo.store_plan_version(
        session,
        {
            "tenant": event.tenant, "plan_id": v.plan_id, "version": v.version, "code": v.code,
            "name": v.name, "currency": v.currency, "effective_from": effective,
            "recurring_fee": v.recurring_fee, "billing_period": v.billing_period,
            "billing_timing": v.billing_timing,
            "one_time_charges": [c.model_dump(mode="json") for c in v.one_time_charges],
            "rates": [r.model_dump(mode="json") for r in v.rates],
            "published_at": published, "source": "version",
        },
        replace=True,
    )


async def on_plan_migration_scheduled(session: AsyncSession, event: CloudEvent) -> None:
    m = parse(PlanMigrationScheduled, event)
    await repo.upsert(
        session,
        repo.plan_migrations,
        {
            "tenant": event.tenant, "id": m.migration_id, "plan_id": m.plan_id,
            "to_version": m.to_version, "effective_from": aware(m.effective_from, "effective_from"),
            "subscription_ids": m.subscription_ids, "created_at": aware(m.created_at, "created_at"),
        },
    )


async def on_records_rated(session: AsyncSession, event: CloudEvent) -> None:
    batch = parse(RecordsRated, event)
    rows = []
    for r in batch.records:
        if r.started_at.tzinfo is None:
            raise PoisonEvent(f"record {r.source}/{r.record_id}: started_at has no time zone")
        if r.pricing not in PRICING_MODELS:
            raise PoisonEvent(f"record {r.source}/{r.record_id}: unknown pricing {r.pricing!r}")
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
                "plan_version": r.plan_version,
                "pricing": r.pricing,
                "chargeable_quantity": r.chargeable_quantity,
            }
        )
    await repo.insert_rated_usage(session, rows)


async def on_records_rerated(session: AsyncSession, event: CloudEvent) -> None:
    """Apply a chunk of re-rating adjustments (see ``domain/adjustments.py``): records not yet
    invoiced change in place, invoiced ones get a pending adjustment for the next invoice.
    A few set-based queries per chunk, none per record."""
    chunk = parse(RecordsRerated, event)
    adjustments = {(a.source, a.record_id): a for a in chunk.adjustments}  # once per record
    records = {
        (r["source"], r["record_id"]): r
        for r in await repo.lock_records(session, event.tenant, list(adjustments))
    }
    missing = [f"{s}/{i}" for s, i in adjustments if (s, i) not in records]
    if missing:
        # The rated record has not reached invoicing yet (its chunk is being retried): retry
        # this chunk later; if it never comes, the chunk ends as a dead letter to look at.
        raise LookupError(f"adjustments of records invoicing does not hold (yet): {missing[:5]}")
    latest = await repo.latest_pending_chargeable(
        session, event.tenant, [r["id"] for r in records.values()]
    )
    rows: list[dict[str, Any]] = []
    in_place: dict[tuple[str, str], tuple[int, Decimal, Decimal | None]] = {}
    for key, adj in adjustments.items():
        record = records[key]
        try:
            decision = decide(
                StoredRecord(
                    record["id"], record["invoice_id"], record["currency"],
                    record["chargeable_quantity"] if record["chargeable_quantity"] is not None
                    else record["billed_quantity"],
                ),
                currency=adj.currency,
                new_chargeable=adj.chargeable_quantity,
                latest_pending_chargeable=latest.get(record["id"]),
            )
        except DomainError as exc:
            raise PoisonEvent(f"adjustment of {key[0]}/{key[1]} in job {chunk.job_id}: {exc}") from exc
        if decision.in_place:
            in_place[key] = (record["id"], adj.delta, adj.chargeable_quantity)
        rows.append(
            {
                "tenant": event.tenant, "job_id": chunk.job_id, "reason": chunk.reason,
                "source": adj.source, "record_id": adj.record_id, "usage_id": record["id"],
                "account_id": record["account_id"], "subscription_id": record["subscription_id"],
                "plan_id": record["plan_id"], "plan_version": record["plan_version"],
                "service": record["service"], "pricing": record["pricing"], "unit": record["unit"],
                "started_at": record["started_at"], "old_amount": adj.old_amount,
                "new_amount": adj.new_amount, "delta": adj.delta,
                "chargeable_quantity": adj.chargeable_quantity,
                "quantity_delta": decision.quantity_delta, "currency": adj.currency,
                "status": "applied" if decision.in_place else "pending",
            }
        )
    stored = await repo.insert_adjustments(session, rows)
    await repo.adjust_in_place(session, event.tenant, [v for k, v in in_place.items() if k in stored])


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
        handlers={
            PLAN_PUBLISHED: on_plan_published,
            PLAN_VERSION_PUBLISHED: on_plan_version_published,
            PLAN_MIGRATION_SCHEDULED: on_plan_migration_scheduled,
        },
    ),
    ConsumerSpec(
        name="invoicing-usage",
        stream_service="usage",
        handlers={RECORDS_RATED: on_records_rated, RECORDS_RERATED: on_records_rerated},
    ),
    ConsumerSpec(
        name="invoicing-payment",
        stream_service="payment",
        handlers={PAYMENT_SUCCEEDED: on_payment_succeeded, PAYMENT_FAILED: on_payment_failed},
    ),
]
