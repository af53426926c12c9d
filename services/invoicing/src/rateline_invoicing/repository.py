"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, Table, and_, func, insert, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_invoicing.db import (
    accounts,
    bill_run_items,
    bill_runs,
    invoice_lines,
    invoice_number_counters,
    invoice_payments,
    invoices,
    plan_migrations,
    plan_versions,
    plans,
    rated_usage,
    subscription_first_invoices,
    subscriptions,
    usage_adjustments,
)
from rateline_shared import repository as generic
from rateline_shared.db import utcnow

# The generic tenant-scoped queries (rateline_shared.repository), used by the API as repo.*.
get = generic.get
list_page = generic.list_page


OPEN_RUN_STATUSES = ("pending", "running")


# --- projections ------------------------------------------------------------------------------
async def upsert(session: AsyncSession, table: Table, values: dict[str, Any]) -> None:
    """Insert or refresh a projection row keyed by (tenant, id)."""
    stmt = pg_insert(table).values(**values)
    changes = {k: stmt.excluded[k] for k in values if k not in ("tenant", "id")}
    await session.execute(stmt.on_conflict_do_update(index_elements=["tenant", "id"], set_=changes))


async def upsert_plan_header(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert the plan's header, or refresh it from a version at least as new as the one it has."""
    stmt = pg_insert(plans).values(**values)
    changes = {k: stmt.excluded[k] for k in values if k not in ("tenant", "id")}
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant", "id"], set_=changes, where=plans.c.version <= stmt.excluded.version
        )
    )


async def store_plan_version(session: AsyncSession, values: dict[str, Any], *, replace: bool) -> None:
    """Store a plan version; ``replace``: a catalog.plan_version.published, which supersedes
    what a catalog.plan.published told of version 1 (never the other way round)."""
    stmt = pg_insert(plan_versions).values(**values)
    keys = ["tenant", "plan_id", "version"]
    if replace:
        changes = {k: stmt.excluded[k] for k in values if k not in keys}
        await session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changes))
    else:
        await session.execute(stmt.on_conflict_do_nothing(index_elements=keys))


async def plan_histories(
    session: AsyncSession, tenant: str, plan_ids: set[str]
) -> tuple[list[RowMapping], list[RowMapping]]:
    """Every known version and migration of the plans (two queries, whatever their number)."""
    if not plan_ids:
        return [], []
    ids = sorted(plan_ids)
    versions = (
        await session.execute(
            select(plan_versions)
            .where(plan_versions.c.tenant == tenant, plan_versions.c.plan_id.in_(ids))
            .order_by(plan_versions.c.plan_id, plan_versions.c.version)
        )
    ).mappings().all()
    migrations = (
        await session.execute(
            select(plan_migrations)
            .where(plan_migrations.c.tenant == tenant, plan_migrations.c.plan_id.in_(ids))
            .order_by(plan_migrations.c.effective_from, plan_migrations.c.id)
        )
    ).mappings().all()
    return list(versions), list(migrations)


_INSERT_RATED_USAGE = pg_insert(rated_usage).on_conflict_do_nothing(
    index_elements=["tenant", "source", "record_id"]
)


async def insert_rated_usage(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Store rated records; one already stored (same tenant, source, record id) is ignored.

    An executemany of one cached statement (SQLAlchemy batches it into multi-row INSERTs): a
    statement built with ``.values(rows)`` would be compiled anew for every event, which cost
    more than the insert itself on the hot path of the usage projection.
    """
    if rows:
        await session.execute(_INSERT_RATED_USAGE, list(rows))


async def account_subscriptions(
    session: AsyncSession, tenant: str, account_id: str
) -> list[RowMapping]:
    stmt = (
        select(subscriptions)
        .where(subscriptions.c.tenant == tenant, subscriptions.c.account_id == account_id)
        .order_by(subscriptions.c.start_date, subscriptions.c.id)
    )
    return list((await session.execute(stmt)).mappings().all())


async def plans_by_id(
    session: AsyncSession, tenant: str, plan_ids: set[str]
) -> dict[str, RowMapping]:
    if not plan_ids:
        return {}
    stmt = select(plans).where(plans.c.tenant == tenant, plans.c.id.in_(sorted(plan_ids)))
    return {row["id"]: row for row in (await session.execute(stmt)).mappings().all()}


# Marks and sums in one statement, so the rows summed are exactly the rows marked: the
# uninvoiced records of the period, and the late ones (started before it, in the period of an
# invoice the account already has). One row per (subscription, service, component, period);
# ``covered_*`` is that earlier invoice for late records (the lateral join), null otherwise.
_TAKE_USAGE = text(
    """
WITH t AS (
    UPDATE rated_usage AS r SET invoice_id = :invoice_id
    WHERE r.tenant = :tenant AND r.account_id = :account_id AND r.invoice_id IS NULL
      AND r.started_at < :end_utc
      AND (r.started_at >= :start_utc OR EXISTS (
            SELECT 1 FROM invoices AS i
            WHERE i.tenant = :tenant AND i.account_id = :account_id
              AND i.period_start_utc <= r.started_at AND r.started_at < i.period_end_utc))
    RETURNING r.subscription_id, r.plan_id, r.plan_version, r.service, r.pricing, r.unit,
              r.currency, r.started_at, r.amount, r.billed_quantity,
              COALESCE(r.chargeable_quantity, r.billed_quantity) AS chargeable
)
SELECT t.subscription_id, t.plan_id, t.plan_version, t.service, t.pricing, t.unit, t.currency,
       c.id AS covered_id, c.period_start_utc AS covered_start, c.period_end_utc AS covered_end,
       count(*) AS records, sum(t.amount) AS amount, sum(t.billed_quantity) AS billed_quantity,
       sum(t.chargeable) AS chargeable_quantity,
       min(t.started_at) AS first_started, max(t.started_at) AS last_started
FROM t
LEFT JOIN LATERAL (
    SELECT i.id, i.period_start_utc, i.period_end_utc FROM invoices AS i
    WHERE t.started_at < :start_utc AND i.tenant = :tenant AND i.account_id = :account_id
      AND i.period_start_utc <= t.started_at AND t.started_at < i.period_end_utc
    ORDER BY i.period_start_utc DESC LIMIT 1
) AS c ON true
GROUP BY t.subscription_id, t.plan_id, t.plan_version, t.service, t.pricing, t.unit, t.currency,
         c.id, c.period_start_utc, c.period_end_utc
"""
)

# The same for the account's pending adjustments; ``covered_*`` is the invoice whose period
# the adjusted record belongs to.
_TAKE_ADJUSTMENTS = text(
    """
WITH t AS (
    UPDATE usage_adjustments AS a SET status = 'invoiced', invoice_id = :invoice_id
    WHERE a.tenant = :tenant AND a.account_id = :account_id AND a.status = 'pending'
    RETURNING a.usage_id, a.subscription_id, a.plan_id, a.plan_version, a.service, a.pricing,
              a.unit, a.currency, a.started_at, a.delta, a.quantity_delta
)
SELECT t.subscription_id, t.plan_id, t.plan_version, t.service, t.pricing, t.unit, t.currency,
       c.id AS covered_id, c.period_start_utc AS covered_start, c.period_end_utc AS covered_end,
       count(DISTINCT t.usage_id) AS records, sum(t.delta) AS delta,
       sum(t.quantity_delta) AS quantity_delta
FROM t
LEFT JOIN LATERAL (
    SELECT i.id, i.period_start_utc, i.period_end_utc FROM invoices AS i
    WHERE i.tenant = :tenant AND i.account_id = :account_id
      AND i.period_start_utc <= t.started_at AND t.started_at < i.period_end_utc
    ORDER BY i.period_start_utc DESC LIMIT 1
) AS c ON true
GROUP BY t.subscription_id, t.plan_id, t.plan_version, t.service, t.pricing, t.unit, t.currency,
         c.id, c.period_start_utc, c.period_end_utc
"""
)


async def take_usage(
    session: AsyncSession,
    tenant: str,
    account_id: str,
    invoice_id: str,
    start: datetime,
    end: datetime,
) -> list[RowMapping]:
    """Put the account's uninvoiced records of ``[start, end)`` and its late records on
    ``invoice_id`` and return them summed per group (see ``_TAKE_USAGE``)."""
    params = {
        "tenant": tenant, "account_id": account_id, "invoice_id": invoice_id,
        "start_utc": start, "end_utc": end,
    }
    return list((await session.execute(_TAKE_USAGE, params)).mappings().all())


async def take_adjustments(
    session: AsyncSession, tenant: str, account_id: str, invoice_id: str
) -> list[RowMapping]:
    """Put the account's pending adjustments on ``invoice_id``, summed per group."""
    params = {"tenant": tenant, "account_id": account_id, "invoice_id": invoice_id}
    return list((await session.execute(_TAKE_ADJUSTMENTS, params)).mappings().all())


async def invoiced_quantities(
    session: AsyncSession, tenant: str, invoice_id: str, covered_ids: set[str]
) -> list[RowMapping]:
    """Chargeable quantity of quantity-priced components already invoiced in the periods of
    ``covered_ids`` (other invoices than ``invoice_id``), per subscription, service, version."""
    if not covered_ids:
        return []
    stmt = text(
        """
SELECT i.id AS covered_id, r.subscription_id, r.service, r.plan_version,
       sum(COALESCE(r.chargeable_quantity, r.billed_quantity)) AS quantity
FROM invoices AS i
JOIN rated_usage AS r ON r.tenant = i.tenant AND r.account_id = i.account_id
     AND r.started_at >= i.period_start_utc AND r.started_at < i.period_end_utc
WHERE i.tenant = :tenant AND i.id = ANY(CAST(:ids AS varchar[]))
  AND r.invoice_id IS NOT NULL AND r.invoice_id <> :invoice_id
  AND r.pricing IN ('graduated', 'volume', 'package')
GROUP BY i.id, r.subscription_id, r.service, r.plan_version
"""
    )
    params = {"tenant": tenant, "invoice_id": invoice_id, "ids": sorted(covered_ids)}
    return list((await session.execute(stmt, params)).mappings().all())


async def settle_adjusted_records(session: AsyncSession, tenant: str, invoice_id: str) -> None:
    """Bring the records whose adjustments ``invoice_id`` carries up to date: from now on their
    amount and chargeable quantity are what all invoices together charged for them."""
    await session.execute(
        text(
            """
UPDATE rated_usage AS r
SET amount = r.amount + s.delta,
    chargeable_quantity = COALESCE(s.chargeable, r.chargeable_quantity)
FROM (
    SELECT usage_id, sum(delta) AS delta,
           (array_agg(chargeable_quantity ORDER BY id DESC)
               FILTER (WHERE chargeable_quantity IS NOT NULL))[1] AS chargeable
    FROM usage_adjustments WHERE tenant = :tenant AND invoice_id = :invoice_id
    GROUP BY usage_id
) AS s
WHERE r.id = s.usage_id AND r.tenant = :tenant
"""
        ),
        {"tenant": tenant, "invoice_id": invoice_id},
    )


async def first_invoiced(session: AsyncSession, tenant: str, subscription_ids: set[str]) -> set[str]:
    """The subscriptions that already had their first invoice."""
    if not subscription_ids:
        return set()
    stmt = select(subscription_first_invoices.c.subscription_id).where(
        subscription_first_invoices.c.tenant == tenant,
        subscription_first_invoices.c.subscription_id.in_(sorted(subscription_ids)),
    )
    return set((await session.execute(stmt)).scalars().all())


async def record_first_invoices(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(subscription_first_invoices), list(rows))


async def pending_adjustments(session: AsyncSession, tenant: str, account_id: str) -> int:
    stmt = select(func.count()).where(
        usage_adjustments.c.tenant == tenant,
        usage_adjustments.c.account_id == account_id,
        usage_adjustments.c.status == "pending",
    )
    return int((await session.execute(stmt)).scalar_one())


# --- re-rating ----------------------------------------------------------------------------------
async def lock_records(
    session: AsyncSession, tenant: str, keys: Sequence[tuple[str, str]]
) -> list[RowMapping]:
    """The stored records with these (source, record_id), locked until the commit (a bill run
    taking them waits, and so does a concurrent adjustment of the same record)."""
    if not keys:
        return []
    stmt = (
        select(
            rated_usage.c.id, rated_usage.c.source, rated_usage.c.record_id, rated_usage.c.account_id,
            rated_usage.c.subscription_id, rated_usage.c.plan_id, rated_usage.c.plan_version,
            rated_usage.c.service, rated_usage.c.pricing, rated_usage.c.unit, rated_usage.c.currency,
            rated_usage.c.started_at, rated_usage.c.invoice_id, rated_usage.c.billed_quantity,
            rated_usage.c.chargeable_quantity,
        )
        .where(
            rated_usage.c.tenant == tenant,
            tuple_(rated_usage.c.source, rated_usage.c.record_id).in_(list(keys)),
        )
        .order_by(rated_usage.c.id)
        .with_for_update()
    )
    return list((await session.execute(stmt)).mappings().all())


async def latest_pending_chargeable(
    session: AsyncSession, tenant: str, usage_ids: Sequence[int]
) -> dict[int, Any]:
    """Per record, the chargeable quantity of its newest pending adjustment that gave one."""
    if not usage_ids:
        return {}
    stmt = text(
        """
SELECT DISTINCT ON (usage_id) usage_id, chargeable_quantity FROM usage_adjustments
WHERE tenant = :tenant AND usage_id = ANY(CAST(:ids AS bigint[])) AND status = 'pending'
  AND chargeable_quantity IS NOT NULL
ORDER BY usage_id, id DESC
"""
    )
    rows = (await session.execute(stmt, {"tenant": tenant, "ids": list(usage_ids)})).all()
    return {int(r[0]): r[1] for r in rows}


async def insert_adjustments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """Store adjustments; one of a (job, record) stored before is ignored. Returns the
    (source, record_id) of those stored now."""
    if not rows:
        return set()
    stmt = (
        pg_insert(usage_adjustments)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["tenant", "job_id", "source", "record_id"])
        .returning(usage_adjustments.c.source, usage_adjustments.c.record_id)
    )
    return {(r[0], r[1]) for r in (await session.execute(stmt)).all()}


async def adjust_in_place(
    session: AsyncSession, tenant: str, changes: Sequence[tuple[int, Any, Any]]
) -> None:
    """(usage_id, delta, new chargeable quantity or None) for records not invoiced yet."""
    if not changes:
        return
    await session.execute(
        text(
            """
UPDATE rated_usage AS r
SET amount = r.amount + v.delta, chargeable_quantity = COALESCE(v.chargeable, r.chargeable_quantity)
FROM unnest(CAST(:ids AS bigint[]), CAST(:deltas AS numeric[]), CAST(:chargeable AS numeric[]))
     AS v(id, delta, chargeable)
WHERE r.id = v.id AND r.tenant = :tenant AND r.invoice_id IS NULL
"""
        ),
        {
            "tenant": tenant,
            "ids": [c[0] for c in changes],
            "deltas": [c[1] for c in changes],
            "chargeable": [c[2] for c in changes],
        },
    )


async def usage_summary(
    session: AsyncSession, tenant: str, account_id: str, start: datetime, end: datetime
) -> list[RowMapping]:
    stmt = (
        select(
            rated_usage.c.service,
            rated_usage.c.unit,
            rated_usage.c.currency,
            func.count().label("records"),
            func.count().filter(rated_usage.c.invoice_id.is_(None)).label("uninvoiced"),
            func.sum(rated_usage.c.billed_quantity).label("billed_quantity"),
            func.sum(
                func.coalesce(rated_usage.c.chargeable_quantity, rated_usage.c.billed_quantity)
            ).label("chargeable_quantity"),
            func.sum(rated_usage.c.amount).label("amount"),
        )
        .where(
            rated_usage.c.tenant == tenant,
            rated_usage.c.account_id == account_id,
            rated_usage.c.started_at >= start,
            rated_usage.c.started_at < end,
        )
        .group_by(rated_usage.c.service, rated_usage.c.unit, rated_usage.c.currency)
        .order_by(rated_usage.c.service, rated_usage.c.unit, rated_usage.c.currency)
    )
    return list((await session.execute(stmt)).mappings().all())


# --- bill runs --------------------------------------------------------------------------------
async def insert_bill_run(session: AsyncSession, values: dict[str, Any]) -> RowMapping:
    stmt = insert(bill_runs).values(**values).returning(bill_runs)
    row: RowMapping = (await session.execute(stmt)).mappings().one()
    return row


async def claim_open_run(session: AsyncSession) -> RowMapping | None:
    """The oldest pending or running run no other worker is claiming right now (any tenant)."""
    stmt = (
        select(bill_runs)
        .where(bill_runs.c.status.in_(OPEN_RUN_STATUSES))
        .order_by(bill_runs.c.created_at, bill_runs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).mappings().first()


async def start_run(session: AsyncSession, run: RowMapping) -> int:
    """Take the run's to-do list (the tenant's accounts, by cycle day) and mark it running."""
    cond = [accounts.c.tenant == run["tenant"]]
    if run["bill_cycle_day"] is not None:
        cond.append(accounts.c.bill_cycle_day == run["bill_cycle_day"])
    chosen = select(
        literal(run["id"], String).label("bill_run_id"),
        accounts.c.id,
        accounts.c.tenant,
        literal("pending", String).label("status"),
    ).where(and_(*cond))
    result = await session.execute(
        insert(bill_run_items)
        .from_select(["bill_run_id", "account_id", "tenant", "status"], chosen)
        .returning(bill_run_items.c.account_id)
    )
    total = len(result.all())
    await session.execute(
        update(bill_runs)
        .where(bill_runs.c.id == run["id"])
        .values(status="running", started_at=utcnow(), accounts_total=total)
    )
    return total


async def pick_pending_item(session: AsyncSession, run_id: str) -> RowMapping | None:
    """One account of the run still to do, locked for this transaction (others skip it)."""
    stmt = (
        select(bill_run_items)
        .where(bill_run_items.c.bill_run_id == run_id, bill_run_items.c.status == "pending")
        .order_by(bill_run_items.c.account_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).mappings().first()


async def lock_item(session: AsyncSession, run_id: str, account_id: str) -> RowMapping | None:
    stmt = (
        select(bill_run_items)
        .where(bill_run_items.c.bill_run_id == run_id, bill_run_items.c.account_id == account_id)
        .with_for_update()
    )
    return (await session.execute(stmt)).mappings().first()


async def finish_item(
    session: AsyncSession,
    run_id: str,
    account_id: str,
    *,
    status: str,
    invoice_id: str | None = None,
    error: dict[str, str] | None = None,
) -> None:
    """Close one account of a run and bump the run's progress (last, to keep the lock short)."""
    await session.execute(
        update(bill_run_items)
        .where(bill_run_items.c.bill_run_id == run_id, bill_run_items.c.account_id == account_id)
        .values(
            status=status,
            invoice_id=invoice_id,
            error=error["reason"] if error else None,
            updated_at=utcnow(),
        )
    )
    await session.execute(
        text(
            "UPDATE bill_runs SET accounts_done = accounts_done + 1, "
            "invoices_created = invoices_created + :created, "
            "errors = errors || CAST(:errors AS jsonb) WHERE id = :id"
        ),
        {
            "id": run_id,
            "created": 1 if status == "invoiced" else 0,
            "errors": json.dumps([error] if error else []),
        },
    )


async def count_attempt(session: AsyncSession, run_id: str, account_id: str) -> int:
    stmt = (
        update(bill_run_items)
        .where(
            bill_run_items.c.bill_run_id == run_id,
            bill_run_items.c.account_id == account_id,
            bill_run_items.c.status == "pending",
        )
        .values(attempts=bill_run_items.c.attempts + 1, updated_at=utcnow())
        .returning(bill_run_items.c.attempts)
    )
    attempts = (await session.execute(stmt)).scalar_one_or_none()
    return int(attempts) if attempts is not None else 0


async def complete_run_if_done(session: AsyncSession, run_id: str) -> bool:
    """Close a running run whose accounts are all done (atomic: no account in flight)."""
    result = await session.execute(
        text(
            "UPDATE bill_runs SET completed_at = now(), status = CASE "
            "WHEN jsonb_array_length(errors) > 0 THEN 'completed_with_errors' "
            "ELSE 'completed' END "
            "WHERE id = :id AND status = 'running' AND NOT EXISTS ("
            "SELECT 1 FROM bill_run_items WHERE bill_run_id = :id AND status = 'pending')"
        ),
        {"id": run_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- invoices ---------------------------------------------------------------------------------
async def invoice_for_period(
    session: AsyncSession, tenant: str, account_id: str, period_start: date
) -> RowMapping | None:
    stmt = select(invoices.c.id, invoices.c.status).where(
        invoices.c.tenant == tenant,
        invoices.c.account_id == account_id,
        invoices.c.period_start == period_start,
    )
    return (await session.execute(stmt)).mappings().first()


async def insert_invoice(
    session: AsyncSession, values: dict[str, Any], lines: Sequence[dict[str, Any]]
) -> None:
    await session.execute(insert(invoices).values(**values))
    if lines:
        await session.execute(insert(invoice_lines), list(lines))


async def lock_invoice(session: AsyncSession, tenant: str, invoice_id: str) -> RowMapping | None:
    stmt = (
        select(invoices)
        .where(invoices.c.tenant == tenant, invoices.c.id == invoice_id)
        .with_for_update()
    )
    return (await session.execute(stmt)).mappings().first()


async def update_invoice(
    session: AsyncSession, tenant: str, invoice_id: str, values: dict[str, Any]
) -> RowMapping:
    stmt = (
        update(invoices)
        .where(invoices.c.tenant == tenant, invoices.c.id == invoice_id)
        .values(**values, updated_at=utcnow())
        .returning(invoices)
    )
    row: RowMapping = (await session.execute(stmt)).mappings().one()
    return row


async def lines_of(
    session: AsyncSession, tenant: str, invoice_ids: Sequence[str]
) -> dict[str, list[RowMapping]]:
    out: dict[str, list[RowMapping]] = {i: [] for i in invoice_ids}
    if not invoice_ids:
        return out
    stmt = (
        select(invoice_lines)
        .where(invoice_lines.c.tenant == tenant, invoice_lines.c.invoice_id.in_(list(invoice_ids)))
        .order_by(invoice_lines.c.invoice_id, invoice_lines.c.position)
    )
    for row in (await session.execute(stmt)).mappings().all():
        out[row["invoice_id"]].append(row)
    return out


async def next_invoice_number(session: AsyncSession, tenant: str) -> int:
    """Take the tenant's next invoice number: the counter row stays locked until the commit, and
    a rollback gives the number back (a sequence would not: its gaps are why it is not used)."""
    await session.execute(
        pg_insert(invoice_number_counters)
        .values(tenant=tenant, last_number=0)
        .on_conflict_do_nothing(index_elements=["tenant"])
    )
    current = (
        await session.execute(
            select(invoice_number_counters.c.last_number)
            .where(invoice_number_counters.c.tenant == tenant)
            .with_for_update()
        )
    ).scalar_one()
    number = int(current) + 1
    await session.execute(
        update(invoice_number_counters)
        .where(invoice_number_counters.c.tenant == tenant)
        .values(last_number=number, updated_at=utcnow())
    )
    return number


async def record_payment(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Remember a payment outcome; False if this outcome of this payment was applied before."""
    stmt = (
        pg_insert(invoice_payments)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["tenant", "payment_id", "status"])
        .returning(invoice_payments.c.payment_id)
    )
    return (await session.execute(stmt)).first() is not None


__all__ = [
    "accounts",
    "bill_run_items",
    "bill_runs",
    "invoice_lines",
    "invoices",
    "plan_migrations",
    "plan_versions",
    "plans",
    "rated_usage",
    "subscription_first_invoices",
    "subscriptions",
    "usage_adjustments",
]
