"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog.db import (
    accounts,
    lines,
    plan_migrations,
    plan_versions,
    plans,
    products,
    subscriptions,
    tariff_import_files,
    tariff_imports,
)
from rateline_shared import repository as generic
from rateline_shared.errors import BadRequest
from rateline_shared.pagination import MAX_LIMIT, decode_cursor, encode_cursor


# --- products --------------------------------------------------------------------------------
async def insert_product(session: AsyncSession, values: dict[str, Any]) -> RowMapping | None:
    """Insert a product; ``None`` when the tenant already has a product with that code."""
    stmt = (
        pg_insert(products)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[products.c.tenant, products.c.code])
        .returning(products)
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


async def get_product(session: AsyncSession, tenant: str, product_id: str) -> RowMapping | None:
    return await generic.get(session, products, tenant, product_id)


async def list_products(
    session: AsyncSession, tenant: str, *, cursor: str | None, limit: int, filters: dict[str, Any]
) -> tuple[list[RowMapping], str | None]:
    return await generic.list_page(session, products, tenant, cursor=cursor, limit=limit, filters=filters)


# --- plans and versions ----------------------------------------------------------------------
async def insert_plan(session: AsyncSession, values: dict[str, Any]) -> RowMapping | None:
    """Insert a plan; ``None`` when the tenant already has a plan with that code."""
    stmt = (
        pg_insert(plans)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[plans.c.tenant, plans.c.code])
        .returning(plans)
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


async def insert_version(session: AsyncSession, values: dict[str, Any]) -> RowMapping:
    """Insert one plan version (never updated afterwards)."""
    return await generic.insert_row(session, plan_versions, values)


async def get_plan(session: AsyncSession, tenant: str, plan_id: str) -> RowMapping | None:
    return await generic.get(session, plans, tenant, plan_id)


async def lock_plan(session: AsyncSession, tenant: str, plan_id: str) -> RowMapping | None:
    """The plan, locked until the commit (serialises new versions and migrations of a plan)."""
    stmt = select(plans).where(plans.c.tenant == tenant, plans.c.id == plan_id).with_for_update()
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


async def list_plans(
    session: AsyncSession,
    tenant: str,
    *,
    cursor: str | None,
    limit: int,
    filters: dict[str, Any],
) -> tuple[list[RowMapping], str | None]:
    return await generic.list_page(session, plans, tenant, cursor=cursor, limit=limit, filters=filters)


async def versions_of(
    session: AsyncSession, tenant: str, plan_ids: list[str]
) -> dict[str, list[RowMapping]]:
    """Every version of each plan, by plan id, in version order."""
    if not plan_ids:
        return {}
    stmt = (
        select(plan_versions)
        .where(plan_versions.c.tenant == tenant, plan_versions.c.plan_id.in_(plan_ids))
        .order_by(plan_versions.c.plan_id, plan_versions.c.version)
    )
    grouped: dict[str, list[RowMapping]] = defaultdict(list)
    for row in (await session.execute(stmt)).mappings():
        grouped[row["plan_id"]].append(row)
    return grouped


async def list_versions(
    session: AsyncSession, tenant: str, plan_id: str, *, cursor: str | None, limit: int
) -> tuple[list[RowMapping], str | None]:
    """One page of a plan's versions in version order (the cursor carries the last version)."""
    stmt = select(plan_versions).where(
        plan_versions.c.tenant == tenant, plan_versions.c.plan_id == plan_id
    )
    if cursor:
        _, last = decode_cursor(cursor)
        if not last.isdigit():
            raise BadRequest("the cursor is not valid; use next_cursor from a previous page")
        stmt = stmt.where(plan_versions.c.version > int(last))
    limit = min(limit, MAX_LIMIT)
    stmt = stmt.order_by(plan_versions.c.version).limit(limit + 1)
    rows = list((await session.execute(stmt)).mappings().all())
    if len(rows) <= limit:
        return rows, None
    tail = rows[limit - 1]
    return rows[:limit], encode_cursor(tail["created_at"], str(tail["version"]))


async def get_version(
    session: AsyncSession, tenant: str, plan_id: str, version: int
) -> RowMapping | None:
    stmt = select(plan_versions).where(
        plan_versions.c.tenant == tenant,
        plan_versions.c.plan_id == plan_id,
        plan_versions.c.version == version,
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


# --- migrations ------------------------------------------------------------------------------
async def insert_migration(session: AsyncSession, values: dict[str, Any]) -> RowMapping:
    return await generic.insert_row(session, plan_migrations, values)


async def list_migrations(
    session: AsyncSession, tenant: str, plan_id: str, *, cursor: str | None, limit: int
) -> tuple[list[RowMapping], str | None]:
    return await generic.list_page(
        session, plan_migrations, tenant, cursor=cursor, limit=limit, filters={"plan_id": plan_id}
    )


async def migrations_of(session: AsyncSession, tenant: str, plan_id: str) -> list[RowMapping]:
    stmt = select(plan_migrations).where(
        plan_migrations.c.tenant == tenant, plan_migrations.c.plan_id == plan_id
    )
    return list((await session.execute(stmt)).mappings().all())


# --- customer projection ---------------------------------------------------------------------
async def upsert_account(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    stmt = pg_insert(accounts).values(tenant=tenant, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[accounts.c.tenant, accounts.c.id],
        set_={k: stmt.excluded[k] for k in values if k != "id"},
    )
    await session.execute(stmt)


async def account_timezone(session: AsyncSession, tenant: str, account_id: str) -> str | None:
    stmt = select(accounts.c.timezone).where(accounts.c.tenant == tenant, accounts.c.id == account_id)
    value: str | None = (await session.execute(stmt)).scalar_one_or_none()
    return value


async def upsert_line(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    stmt = pg_insert(lines).values(tenant=tenant, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[lines.c.tenant, lines.c.id],
        set_={k: stmt.excluded[k] for k in values if k != "id"},
    )
    await session.execute(stmt)


async def upsert_subscription(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    stmt = pg_insert(subscriptions).values(tenant=tenant, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[subscriptions.c.tenant, subscriptions.c.id],
        set_={k: stmt.excluded[k] for k in values if k != "id"},
    )
    await session.execute(stmt)


async def get_line(session: AsyncSession, tenant: str, line_id: str) -> RowMapping | None:
    stmt = select(lines).where(lines.c.tenant == tenant, lines.c.id == line_id)
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


async def lines_with_msisdn(session: AsyncSession, tenant: str, msisdn: str) -> list[RowMapping]:
    """The tenant's lines with this number (a recycled number has several), latest first."""
    stmt = (
        select(lines)
        .where(lines.c.tenant == tenant, lines.c.msisdn == msisdn)
        .order_by(lines.c.activated_at.desc(), lines.c.id)
    )
    return list((await session.execute(stmt)).mappings().all())


async def subscriptions_of_line(session: AsyncSession, tenant: str, line_id: str) -> list[RowMapping]:
    stmt = select(subscriptions).where(
        subscriptions.c.tenant == tenant, subscriptions.c.line_id == line_id
    )
    return list((await session.execute(stmt)).mappings().all())


# --- tariff imports --------------------------------------------------------------------------
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


async def get_tariff_import(session: AsyncSession, tenant: str, import_id: str) -> RowMapping | None:
    return await generic.get(session, tariff_imports, tenant, import_id)


async def list_tariff_imports(
    session: AsyncSession, tenant: str, *, cursor: str | None, limit: int
) -> tuple[list[RowMapping], str | None]:
    return await generic.list_page(session, tariff_imports, tenant, cursor=cursor, limit=limit, filters={})
