"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, Table, and_, func, insert, literal, select, text, update
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
    plans,
    rated_usage,
    subscriptions,
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


async def insert_rated_usage(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Store rated records; one already stored (same tenant, source, record id) is ignored."""
    if not rows:
        return 0
    stmt = (
        pg_insert(rated_usage)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["tenant", "source", "record_id"])
        .returning(rated_usage.c.id)
    )
    return len((await session.execute(stmt)).all())


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


async def uninvoiced_usage(
    session: AsyncSession, tenant: str, account_id: str, start: datetime, end: datetime
) -> list[RowMapping]:
    """Uninvoiced usage of the account in ``[start, end)``, locked until the commit."""
    stmt = (
        select(rated_usage)
        .where(
            rated_usage.c.tenant == tenant,
            rated_usage.c.account_id == account_id,
            rated_usage.c.started_at >= start,
            rated_usage.c.started_at < end,
            rated_usage.c.invoice_id.is_(None),
        )
        .order_by(rated_usage.c.started_at, rated_usage.c.id)
        .with_for_update()
    )
    return list((await session.execute(stmt)).mappings().all())


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


async def mark_usage_invoiced(
    session: AsyncSession, tenant: str, usage_ids: Sequence[int], invoice_id: str
) -> int:
    if not usage_ids:
        return 0
    stmt = (
        update(rated_usage)
        .where(
            rated_usage.c.tenant == tenant,
            rated_usage.c.id.in_(list(usage_ids)),
            rated_usage.c.invoice_id.is_(None),
        )
        .values(invoice_id=invoice_id)
    )
    result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]


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
    "plans",
    "rated_usage",
    "subscriptions",
]
