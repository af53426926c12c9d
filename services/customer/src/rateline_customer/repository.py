"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_customer.db import accounts, lines, plans, subscriptions
from rateline_shared.pagination import page_of, paginate


async def insert_row(session: AsyncSession, table: Table, values: dict[str, Any]) -> RowMapping:
    row: RowMapping = (await session.execute(insert(table).values(**values).returning(table))).mappings().one()
    return row


async def get(session: AsyncSession, table: Table, tenant: str, ident: str) -> RowMapping | None:
    stmt = select(table).where(table.c.tenant == tenant, table.c.id == ident)
    return (await session.execute(stmt)).mappings().first()


async def list_page(
    session: AsyncSession,
    table: Table,
    tenant: str,
    *,
    cursor: str | None,
    limit: int,
    filters: dict[str, Any],
) -> tuple[list[RowMapping], str | None]:
    stmt = select(table).where(table.c.tenant == tenant)
    for column, value in filters.items():
        if value is not None:
            stmt = stmt.where(table.c[column] == value)
    stmt = paginate(stmt, table.c.created_at, table.c.id, cursor, limit)
    rows = list((await session.execute(stmt)).mappings().all())
    return page_of(rows, limit)


async def get_plan(session: AsyncSession, tenant: str, plan_id: str) -> RowMapping | None:
    stmt = select(plans).where(plans.c.tenant == tenant, plans.c.id == plan_id)
    return (await session.execute(stmt)).mappings().first()


__all__ = ["accounts", "get", "get_plan", "insert_row", "lines", "list_page", "subscriptions"]
