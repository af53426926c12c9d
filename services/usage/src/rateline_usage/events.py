"""Events this service publishes, and the handlers of the events it consumes.

The handlers keep the projections guiding rates from (accounts, lines, subscriptions, plan
versions, plan migrations, tariff imports). Each is an upsert, so applying an event twice changes
nothing (the inbox already drops redeliveries; the upsert also covers a replay from the stream).

``catalog.plan_version.published`` (every version, 1 included) is the source of plan versions.
``catalog.plan.published`` (version 1, published in the same transaction) is still consumed for
compatibility with a catalog that predates plan versions: it only inserts version 1 when that
version is not known yet and never overwrites what a ``plan_version.published`` said.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.events import CloudEvent, new_event
from rateline_shared.events.consumer import ConsumerSpec
from rateline_shared.events.payloads import (
    AccountCreated,
    Adjustment,
    AllowanceThresholdReached,
    LineCreated,
    PlanMigrationScheduled,
    PlanPublished,
    PlanVersionPublished,
    RecordsRerated,
    SpendThresholdReached,
    SubscriptionActivated,
    TariffImported,
)
from rateline_usage import repository as repo

SERVICE = "usage"
RECORDS_RATED = "usage.records.rated"
RECORDS_RERATED = "usage.records.rerated"
ALLOWANCE_THRESHOLD_REACHED = "usage.allowance.threshold_reached"
SPEND_THRESHOLD_REACHED = "usage.spend.threshold_reached"
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
            "bill_cycle_day": account.bill_cycle_day,
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


async def on_plan_version_published(session: AsyncSession, event: CloudEvent) -> None:
    plan = PlanVersionPublished.model_validate(event.data)
    await repo.upsert_plan_version(
        session,
        event.tenant,
        {
            "plan_id": plan.plan_id,
            "version": plan.version,
            "code": plan.code,
            "currency": plan.currency,
            "effective_from": plan.effective_from,
            "rates": [r.model_dump(mode="json") for r in plan.rates],
            "allowances": [a.model_dump(mode="json") for a in plan.allowances],
            "spend_cap": plan.spend_cap.model_dump(mode="json") if plan.spend_cap else None,
            "published_at": plan.published_at,
        },
    )


async def on_plan_published(session: AsyncSession, event: CloudEvent) -> None:
    """Compatibility: version 1 from ``catalog.plan.published`` unless already known."""
    plan = PlanPublished.model_validate(event.data)
    await repo.upsert_plan_version(
        session,
        event.tenant,
        {
            "plan_id": plan.plan_id,
            "version": 1,
            "code": plan.code,
            "currency": plan.currency,
            "effective_from": plan.published_at,
            "rates": [r.model_dump(mode="json") for r in plan.rates],
            "allowances": [],
            "spend_cap": None,
            "published_at": plan.published_at,
        },
        replace=False,
    )


async def on_plan_migration_scheduled(session: AsyncSession, event: CloudEvent) -> None:
    migration = PlanMigrationScheduled.model_validate(event.data)
    await repo.upsert_plan_migration(
        session,
        event.tenant,
        {
            "id": migration.migration_id,
            "plan_id": migration.plan_id,
            "to_version": migration.to_version,
            "effective_from": migration.effective_from,
            "subscription_ids": migration.subscription_ids,
            "created_at": migration.created_at,
        },
    )


async def on_tariff_imported(session: AsyncSession, event: CloudEvent) -> None:
    """Keep the import's files; they are compiled on first use (see ``tariffs.py``)."""
    imported = TariffImported.model_validate(event.data)
    await repo.insert_tariff_import(
        session,
        event.tenant,
        {
            "id": imported.import_id,
            "format": imported.format,
            "currency": imported.currency,
            "timezone": imported.timezone,
            "counts": imported.counts,
            "files_gzip_b64": imported.files_gzip_b64,
            "imported_at": imported.imported_at,
        },
    )


def allowance_threshold_event(tenant: str, payload: AllowanceThresholdReached) -> CloudEvent:
    return new_event(
        service=SERVICE, type=ALLOWANCE_THRESHOLD_REACHED, tenant=tenant, subject=payload.account_id, data=payload
    )


def spend_threshold_event(tenant: str, payload: SpendThresholdReached) -> CloudEvent:
    return new_event(
        service=SERVICE, type=SPEND_THRESHOLD_REACHED, tenant=tenant, subject=payload.account_id, data=payload
    )


def records_rated_events(tenant: str, records: Sequence[dict[str, Any]]) -> list[CloudEvent]:
    """``usage.records.rated`` events for newly rated records (``RatedRecord`` in JSON form,
    see ``intake.rated_record``), in chunks of RATED_CHUNK_SIZE: payload ``RecordsRated``."""
    events = []
    for start in range(0, len(records), RATED_CHUNK_SIZE):
        batch_id = str(uuid.uuid4())
        events.append(
            new_event(
                service=SERVICE,
                type=RECORDS_RATED,
                tenant=tenant,
                subject=batch_id,
                data={"batch_id": batch_id, "records": list(records[start : start + RATED_CHUNK_SIZE])},
            )
        )
    return events


def records_rerated_events(
    tenant: str, job_id: str, reason: str, adjustments: Sequence[Adjustment]
) -> list[CloudEvent]:
    """``usage.records.rerated`` events of a re-rating job's chunk (RATED_CHUNK_SIZE at most each)."""
    return [
        new_event(
            service=SERVICE,
            type=RECORDS_RERATED,
            tenant=tenant,
            subject=job_id,
            data=RecordsRerated(
                job_id=job_id, reason=reason, adjustments=list(adjustments[start : start + RATED_CHUNK_SIZE])
            ),
        )
        for start in range(0, len(adjustments), RATED_CHUNK_SIZE)
    ]


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
        handlers={
            "catalog.plan.published": on_plan_published,
            "catalog.plan_version.published": on_plan_version_published,
            "catalog.plan_migration.scheduled": on_plan_migration_scheduled,
            "catalog.tariff.imported": on_tariff_imported,
        },
    ),
]
