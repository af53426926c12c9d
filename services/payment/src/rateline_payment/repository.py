"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_payment.db import accounts, payment_methods, payments
from rateline_shared import repository as generic
from rateline_shared.db import utcnow

# The generic tenant-scoped queries (rateline_shared.repository), used by the API as repo.*.
get = generic.get
insert_row = generic.insert_row
list_page = generic.list_page


# --- accounts projection ----------------------------------------------------------------------
async def upsert_account(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    stmt = pg_insert(accounts).values(tenant=tenant, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[accounts.c.tenant, accounts.c.id],
            set_={"name": stmt.excluded.name, "currency": stmt.excluded.currency},
        )
    )


# --- payment methods --------------------------------------------------------------------------
async def default_method(session: AsyncSession, tenant: str, account_id: str) -> RowMapping | None:
    stmt = select(payment_methods).where(
        payment_methods.c.tenant == tenant,
        payment_methods.c.account_id == account_id,
        payment_methods.c.is_default.is_(True),
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


async def clear_default(session: AsyncSession, tenant: str, account_id: str) -> None:
    await session.execute(
        update(payment_methods)
        .where(
            payment_methods.c.tenant == tenant,
            payment_methods.c.account_id == account_id,
            payment_methods.c.is_default.is_(True),
        )
        .values(is_default=False)
    )


# --- payments ---------------------------------------------------------------------------------
async def insert_payment_once(session: AsyncSession, values: dict[str, Any]) -> RowMapping | None:
    """Insert the invoice's payment; ``None`` if the invoice already has one."""
    stmt = (
        pg_insert(payments)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[payments.c.tenant, payments.c.invoice_id])
        .returning(payments)
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


async def record_outcome(
    session: AsyncSession, tenant: str, payment_id: str, values: dict[str, Any]
) -> RowMapping:
    stmt = (
        update(payments)
        .where(payments.c.tenant == tenant, payments.c.id == payment_id)
        .values(updated_at=utcnow(), **values)
        .returning(payments)
    )
    row: RowMapping = (await session.execute(stmt)).mappings().one()
    return row


__all__ = [
    "accounts",
    "clear_default",
    "default_method",
    "get",
    "insert_payment_once",
    "insert_row",
    "list_page",
    "payment_methods",
    "payments",
    "record_outcome",
    "upsert_account",
]
