"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog.db import plan_rates, plans, tariff_import_files, tariff_imports
from rateline_shared import repository as generic


async def insert_plan(
    session: AsyncSession, values: dict[str, Any], rates: list[dict[str, Any]]
) -> RowMapping | None:
    """Insert a plan and its rates; ``None`` when the tenant already has a plan with that code."""
    stmt = (
        pg_insert(plans)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[plans.c.tenant, plans.c.code])
        .returning(plans)
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    if row is None:
        return None
    if rates:
        await session.execute(
            insert(plan_rates),
            [
                {**rate, "plan_id": values["id"], "tenant": values["tenant"], "position": i}
                for i, rate in enumerate(rates)
            ],
        )
    return row


async def rates_of(
    session: AsyncSession, tenant: str, plan_ids: list[str]
) -> dict[str, list[RowMapping]]:
    if not plan_ids:
        return {}
    stmt = (
        select(plan_rates)
        .where(plan_rates.c.tenant == tenant, plan_rates.c.plan_id.in_(plan_ids))
        .order_by(plan_rates.c.plan_id, plan_rates.c.position)
    )
    grouped: dict[str, list[RowMapping]] = defaultdict(list)
    for row in (await session.execute(stmt)).mappings():
        grouped[row["plan_id"]].append(row)
    return grouped


async def get_plan(session: AsyncSession, tenant: str, plan_id: str) -> RowMapping | None:
    return await generic.get(session, plans, tenant, plan_id)


async def list_plans(
    session: AsyncSession,
    tenant: str,
    *,
    cursor: str | None,
    limit: int,
    filters: dict[str, Any],
) -> tuple[list[RowMapping], str | None]:
    return await generic.list_page(session, plans, tenant, cursor=cursor, limit=limit, filters=filters)


async def insert_tariff_import(
    session: AsyncSession, values: dict[str, Any], files: dict[str, str]
) -> RowMapping:
    """Insert an import and its files (the caller's transaction makes it all-or-nothing)."""
    stmt = insert(tariff_imports).values(**values).returning(tariff_imports)
    row: RowMapping = (await session.execute(stmt)).mappings().one()
    await session.execute(
        insert(tariff_import_files),
        [
            {"import_id": values["id"], "tenant": values["tenant"], "name": n, "content": c}
            for n, c in sorted(files.items())
        ],
    )
    return row


async def current_tariff_import(session: AsyncSession, tenant: str) -> RowMapping | None:
    """The tenant's latest import, or ``None`` if it never imported one."""
    stmt = (
        select(tariff_imports)
        .where(tariff_imports.c.tenant == tenant)
        .order_by(tariff_imports.c.created_at.desc(), tariff_imports.c.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).mappings().first()


async def files_of_import(
    session: AsyncSession, tenant: str, import_id: str
) -> dict[str, str]:
    """The CSV files of one import of the tenant, by name."""
    stmt = select(tariff_import_files.c.name, tariff_import_files.c.content).where(
        tariff_import_files.c.tenant == tenant, tariff_import_files.c.import_id == import_id
    )
    return {r.name: r.content for r in (await session.execute(stmt)).all()}
