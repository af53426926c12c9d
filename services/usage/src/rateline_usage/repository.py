"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits.

Batches are written with one statement each: arrays are bound as parameters and expanded with
``unnest`` (``INSERT ... SELECT FROM unnest(...)``), which keeps 10,000 records a single round
trip and far below PostgreSQL's limit on bind parameters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, any_, bindparam, cast, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared import repository as generic
from rateline_shared.pagination import page_of, paginate
from rateline_usage.db import (
    accounts,
    column_mappings,
    imports,
    lines,
    plans,
    subscriptions,
    usage_records,
)
from rateline_usage.domain.guiding import (
    AccountView,
    Directory,
    LineView,
    PlanView,
    SubscriptionView,
)
from rateline_usage.domain.rating import Rate


def _any(values: Iterable[str]) -> Any:
    return any_(bindparam(None, list(values), type_=ARRAY(String)))


# --- projections --------------------------------------------------------------------------
async def upsert_account(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    stmt = pg_insert(accounts).values(tenant=tenant, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[accounts.c.tenant, accounts.c.id],
            set_={k: stmt.excluded[k] for k in values if k != "id"} | {"updated_at": func.now()},
        )
    )


async def upsert_line(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    stmt = pg_insert(lines).values(tenant=tenant, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[lines.c.tenant, lines.c.id],
            set_={k: stmt.excluded[k] for k in values if k != "id"} | {"updated_at": func.now()},
        )
    )


async def upsert_subscription(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    stmt = pg_insert(subscriptions).values(tenant=tenant, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[subscriptions.c.tenant, subscriptions.c.id],
            set_={k: stmt.excluded[k] for k in values if k != "id"} | {"updated_at": func.now()},
        )
    )


async def upsert_plan(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    """Keep the latest publication of a plan (an older one arriving late changes nothing)."""
    stmt = pg_insert(plans).values(tenant=tenant, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[plans.c.tenant, plans.c.id],
            set_={k: stmt.excluded[k] for k in values if k != "id"} | {"updated_at": func.now()},
            where=plans.c.published_at <= stmt.excluded.published_at,
        )
    )


def _rate(raw: dict[str, Any]) -> Rate:
    return Rate(
        service=raw["service"],
        unit=raw["unit"],
        price=Decimal(raw["price"]),
        first_increment=int(raw.get("first_increment", 1)),
        increment=int(raw.get("increment", 1)),
    )


async def load_directory(session: AsyncSession, tenant: str, msisdns: Iterable[str]) -> Directory:
    """The projections needed to guide records of these numbers (four queries in all)."""
    numbers = sorted(set(msisdns))
    if not numbers:
        return Directory()
    line_rows = (
        await session.execute(
            select(lines).where(lines.c.tenant == tenant, lines.c.msisdn == _any(numbers))
        )
    ).mappings().all()
    by_msisdn: dict[str, list[LineView]] = defaultdict(list)
    for r in line_rows:
        by_msisdn[r["msisdn"]].append(LineView(r["id"], r["account_id"], r["msisdn"], r["activated_at"]))
    line_ids = [r["id"] for r in line_rows]
    account_ids = {r["account_id"] for r in line_rows}
    sub_rows = (
        (
            await session.execute(
                select(subscriptions).where(
                    subscriptions.c.tenant == tenant, subscriptions.c.line_id == _any(line_ids)
                )
            )
        ).mappings().all()
        if line_ids
        else []
    )
    by_line: dict[str, list[SubscriptionView]] = defaultdict(list)
    for r in sub_rows:
        by_line[r["line_id"]].append(
            SubscriptionView(
                r["id"], r["account_id"], r["line_id"], r["plan_id"], r["start_date"], r["activated_at"]
            )
        )
    plan_ids = {r["plan_id"] for r in sub_rows}
    plan_rows = (
        (
            await session.execute(
                select(plans).where(plans.c.tenant == tenant, plans.c.id == _any(plan_ids))
            )
        ).mappings().all()
        if plan_ids
        else []
    )
    account_rows = (
        (
            await session.execute(
                select(accounts).where(accounts.c.tenant == tenant, accounts.c.id == _any(account_ids))
            )
        ).mappings().all()
        if account_ids
        else []
    )
    return Directory(
        lines_by_msisdn=by_msisdn,
        subscriptions_by_line=by_line,
        plans={
            r["id"]: PlanView(r["id"], r["currency"], {x["service"]: _rate(x) for x in r["rates"]})
            for r in plan_rows
        },
        accounts={
            r["id"]: AccountView(r["id"], r["currency"], r["country"], r["timezone"])
            for r in account_rows
        },
    )


@dataclass(frozen=True, slots=True)
class Subscriber:
    line: RowMapping
    subscription: RowMapping | None
    plan: RowMapping | None
    account: RowMapping | None


async def find_subscriber(session: AsyncSession, tenant: str, msisdn: str) -> Subscriber | None:
    """The latest line with this number, its latest subscription, plan and account."""
    line = (
        await session.execute(
            select(lines)
            .where(lines.c.tenant == tenant, lines.c.msisdn == msisdn)
            .order_by(lines.c.activated_at.desc())
            .limit(1)
        )
    ).mappings().first()
    if line is None:
        return None
    sub = (
        await session.execute(
            select(subscriptions)
            .where(subscriptions.c.tenant == tenant, subscriptions.c.line_id == line["id"])
            .order_by(subscriptions.c.start_date.desc(), subscriptions.c.activated_at.desc())
            .limit(1)
        )
    ).mappings().first()
    plan = None
    if sub is not None:
        plan = (
            await session.execute(
                select(plans).where(plans.c.tenant == tenant, plans.c.id == sub["plan_id"])
            )
        ).mappings().first()
    account = (
        await session.execute(
            select(accounts).where(accounts.c.tenant == tenant, accounts.c.id == line["account_id"])
        )
    ).mappings().first()
    return Subscriber(line, sub, plan, account)


# --- usage records ------------------------------------------------------------------------
# Column name -> PostgreSQL array type, in the order of the unnest() below.
_RECORD_COLUMNS: dict[str, str] = {
    "id": "varchar",
    "source": "varchar",
    "record_id": "varchar",
    "service": "varchar",
    "msisdn": "varchar",
    "destination": "varchar",
    "started_at": "timestamptz",
    "quantity": "numeric",
    "unit": "varchar",
    "status": "varchar",
    "reason": "varchar",
    "reason_message": "text",
    "line_id": "varchar",
    "account_id": "varchar",
    "subscription_id": "varchar",
    "plan_id": "varchar",
    "billed_quantity": "numeric",
    "amount": "numeric",
    "currency": "varchar",
    "rated_at": "timestamptz",
    "raw": "text",
    "import_id": "varchar",
}
_OUTCOME_COLUMNS = (
    "status", "reason", "reason_message", "line_id", "account_id", "subscription_id",
    "plan_id", "billed_quantity", "amount", "currency", "rated_at",
)


def _columns(rows: Sequence[dict[str, Any]], names: Iterable[str]) -> dict[str, list[Any]]:
    return {name: [row.get(name) for row in rows] for name in names}


def _unnest(names: Sequence[str]) -> str:
    arrays = ", ".join(f"CAST(:{n} AS {_RECORD_COLUMNS[n]}[])" for n in names)
    return f"unnest({arrays}) AS u({', '.join(names)})"


# The statements below are assembled once, at import, from the constant column lists above;
# every value travels as a bind parameter (hence the S608 waivers).
_INSERT_RECORDS = text(
    f"INSERT INTO usage_records ({', '.join(_RECORD_COLUMNS)}, tenant, created_at, updated_at) "  # noqa: S608
    f"SELECT {', '.join('u.' + c for c in _RECORD_COLUMNS)}, :tenant, :now, :now "
    f"FROM {_unnest(list(_RECORD_COLUMNS))} "
    "ON CONFLICT (tenant, source, record_id) DO NOTHING "
    "RETURNING id"
)

_FIND_EXISTING = text(
    "SELECT r.id, r.source, r.record_id FROM usage_records r "  # noqa: S608
    f"JOIN {_unnest(['source', 'record_id'])} "
    "ON r.source = u.source AND r.record_id = u.record_id "
    "WHERE r.tenant = :tenant"
)

_UPDATE_OUTCOMES = text(
    "UPDATE usage_records r SET "  # noqa: S608
    + ", ".join(f"{c} = u.{c}" for c in _OUTCOME_COLUMNS)
    + ", updated_at = :now "
    f"FROM {_unnest(['id', *_OUTCOME_COLUMNS])} "
    "WHERE r.tenant = :tenant AND r.id = u.id AND r.status = 'rejected'"
)


async def insert_records(
    session: AsyncSession, tenant: str, rows: Sequence[dict[str, Any]], now: datetime
) -> set[str]:
    """Insert new records in one statement; returns the ids actually inserted.

    Rows whose (source, record_id) already exists are skipped by ``ON CONFLICT DO NOTHING``
    (also when a concurrent request inserts them first): they are duplicates.
    """
    if not rows:
        return set()
    params: dict[str, Any] = _columns(rows, _RECORD_COLUMNS)
    params |= {"tenant": tenant, "now": now}
    result = await session.execute(_INSERT_RECORDS, params)
    return {r[0] for r in result}


async def existing_ids(
    session: AsyncSession, tenant: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Ids of stored records by (source, record_id)."""
    if not keys:
        return {}
    result = await session.execute(
        _FIND_EXISTING,
        {"tenant": tenant, "source": [k[0] for k in keys], "record_id": [k[1] for k in keys]},
    )
    return {(r.source, r.record_id): r.id for r in result}


async def update_outcomes(
    session: AsyncSession, tenant: str, rows: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Write new outcomes of rejected records (one statement for the chunk)."""
    if not rows:
        return
    params: dict[str, Any] = _columns(rows, ["id", *_OUTCOME_COLUMNS])
    params |= {"tenant": tenant, "now": now}
    await session.execute(_UPDATE_OUTCOMES, params)


@dataclass(frozen=True, slots=True)
class RejectedFilter:
    """Narrows the rejected queue: by reason, by source, received at or after ``since``."""

    reason: str | None = None
    source: str | None = None
    since: datetime | None = None


async def lock_rejected(
    session: AsyncSession,
    tenant: str,
    *,
    ids: Sequence[str] | None,
    after: tuple[datetime, str] | None,
    limit: int,
    filters: RejectedFilter | None = None,
) -> list[RowMapping]:
    """Rejected records to re-process, locked until the commit (oldest first).

    ``ids`` picks given records; otherwise all rejected records after the keyset ``after``.
    A record rated meanwhile by another transaction is re-checked after the lock and skipped.
    """
    stmt = select(usage_records).where(
        usage_records.c.tenant == tenant, usage_records.c.status == "rejected"
    )
    if ids is not None:
        stmt = stmt.where(usage_records.c.id == _any(ids))
    if after is not None:
        stmt = stmt.where(
            tuple_(usage_records.c.created_at, usage_records.c.id) > tuple_(after[0], after[1])
        )
    if filters is not None:
        if filters.reason is not None:
            stmt = stmt.where(usage_records.c.reason == filters.reason)
        if filters.source is not None:
            stmt = stmt.where(usage_records.c.source == filters.source)
        if filters.since is not None:
            stmt = stmt.where(usage_records.c.created_at >= filters.since)
    stmt = (
        stmt.order_by(usage_records.c.created_at, usage_records.c.id)
        .limit(limit)
        .with_for_update()
    )
    return list((await session.execute(stmt)).mappings().all())


async def get_record(session: AsyncSession, tenant: str, ident: str) -> RowMapping | None:
    return await generic.get(session, usage_records, tenant, ident)


async def list_records(
    session: AsyncSession,
    tenant: str,
    *,
    cursor: str | None,
    limit: int,
    filters: dict[str, Any],
) -> tuple[list[RowMapping], str | None]:
    return await generic.list_page(session, usage_records, tenant, cursor=cursor, limit=limit, filters=filters)



async def lock_record(session: AsyncSession, tenant: str, ident: str) -> RowMapping | None:
    stmt = (
        select(usage_records)
        .where(usage_records.c.tenant == tenant, usage_records.c.id == ident)
        .with_for_update()
    )
    return (await session.execute(stmt)).mappings().first()


async def correct_record(
    session: AsyncSession, tenant: str, ident: str, values: dict[str, Any], audit: dict[str, Any],
    now: datetime,
) -> None:
    """Write corrected fields of a rejected record and append ``audit`` to its corrections."""
    await session.execute(
        update(usage_records)
        .where(
            usage_records.c.tenant == tenant,
            usage_records.c.id == ident,
            usage_records.c.status == "rejected",
        )
        .values(
            **values,
            corrections=func.coalesce(usage_records.c.corrections, cast([], JSONB)).op("||")(
                cast([audit], JSONB)
            ),
            updated_at=now,
        )
    )


# --- imports and column mappings ----------------------------------------------------------
async def insert_import(session: AsyncSession, tenant: str, values: dict[str, Any]) -> RowMapping:
    stmt = pg_insert(imports).values(tenant=tenant, **values).returning(*imports.c)
    row: RowMapping = (await session.execute(stmt)).mappings().one()
    return row


async def get_import(session: AsyncSession, tenant: str, ident: str) -> RowMapping | None:
    stmt = select(imports).where(imports.c.tenant == tenant, imports.c.id == ident)
    return (await session.execute(stmt)).mappings().first()


async def insert_mapping(session: AsyncSession, tenant: str, values: dict[str, Any]) -> RowMapping | None:
    """The new mapping, or ``None`` when the name is taken."""
    stmt = (
        pg_insert(column_mappings)
        .values(tenant=tenant, **values)
        .on_conflict_do_nothing(index_elements=[column_mappings.c.tenant, column_mappings.c.name])
        .returning(*column_mappings.c)
    )
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    return row


async def get_mapping(session: AsyncSession, tenant: str, ident: str) -> RowMapping | None:
    stmt = select(column_mappings).where(
        column_mappings.c.tenant == tenant, column_mappings.c.id == ident
    )
    return (await session.execute(stmt)).mappings().first()


async def list_mappings(
    session: AsyncSession, tenant: str, *, cursor: str | None, limit: int
) -> tuple[list[RowMapping], str | None]:
    stmt = select(column_mappings).where(column_mappings.c.tenant == tenant)
    stmt = paginate(stmt, column_mappings.c.created_at, column_mappings.c.id, cursor, limit)
    rows = list((await session.execute(stmt)).mappings().all())
    return page_of(rows, limit)
