"""Generic tenant-scoped queries that every service's repository re-exports.

They only execute statements; the caller's unit of work commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.pagination import page_of, paginate


async def insert_row(session: AsyncSession, table: Table, values: dict[str, Any]) -> RowMapping:
    """Insert one row and return it as stored (server defaults included)."""
    result = await session.execute(insert(table).values(**values).returning(table))
    row: RowMapping = result.mappings().one()
    return row


async def get(session: AsyncSession, table: Table, tenant: str, ident: str) -> RowMapping | None:
    """The row of ``table`` with this id, if it belongs to ``tenant``."""
    stmt = select(table).where(table.c.tenant == tenant, table.c.id == ident)
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


async def list_page(
    session: AsyncSession,
    table: Table,
    tenant: str,
    *,
    cursor: str | None,
    limit: int,
    filters: dict[str, Any],
) -> tuple[list[RowMapping], str | None]:
    """One page of the tenant's rows in (created_at, id) order; ``None`` filters are ignored."""
    stmt = select(table).where(table.c.tenant == tenant)
    for column, value in filters.items():
        if value is not None:
            stmt = stmt.where(table.c[column] == value)
    stmt = paginate(stmt, table.c.created_at, table.c.id, cursor, limit)
    rows = list((await session.execute(stmt)).mappings().all())
    return page_of(rows, limit)
