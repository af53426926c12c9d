"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits.

Batches are written with one statement each: arrays are bound as parameters and expanded with
``unnest`` (``INSERT ... SELECT FROM unnest(...)``), which keeps 10,000 records a single round
trip and far below PostgreSQL's limit on bind parameters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Table, any_, bindparam, cast, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_rating.versions import Migration
from rateline_shared import repository as generic
from rateline_shared.pagination import page_of, paginate
from rateline_usage.db import (
    accounts,
    column_mappings,
    imports,
    lines,
    plan_migrations,
    plan_versions,
    rerating_adjustments,
    rerating_jobs,
    subscriptions,
    tariff_imports,
    usage_records,
)
from rateline_usage.domain.allowances import BalanceKey
from rateline_usage.domain.guiding import (
    AccountView,
    Directory,
    LineView,
    PlanBook,
    PlanVersionView,
    SubscriptionView,
)
from rateline_usage.domain.plans import version_view
from rateline_usage.domain.tariffing import TariffBook


def _any(values: Iterable[str]) -> Any:
    return any_(bindparam(None, list(values), type_=ARRAY(String)))


def _upsert(table: Table, tenant: str, values: dict[str, Any], keys: Sequence[str]) -> Any:
    stmt = pg_insert(table).values(tenant=tenant, **values)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.tenant, *(table.c[k] for k in keys)],
        set_={k: stmt.excluded[k] for k in values if k not in keys} | {"updated_at": func.now()},
    )


# --- projections --------------------------------------------------------------------------
async def upsert_account(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    await session.execute(_upsert(accounts, tenant, values, ["id"]))


async def upsert_line(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    await session.execute(_upsert(lines, tenant, values, ["id"]))


async def upsert_subscription(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    await session.execute(_upsert(subscriptions, tenant, values, ["id"]))


async def upsert_plan_version(
    session: AsyncSession, tenant: str, values: dict[str, Any], *, replace: bool = True
) -> None:
    """Keep the latest publication of a plan version (an older one arriving late changes nothing).

    ``replace=False`` only inserts (``catalog.plan.published``, kept for compatibility, never
    overwrites what ``catalog.plan_version.published`` said).
    """
    stmt = pg_insert(plan_versions).values(tenant=tenant, **values)
    if not replace:
        await session.execute(stmt.on_conflict_do_nothing())
        return
    set_ = {k: stmt.excluded[k] for k in values if k not in ("plan_id", "version")} | {"updated_at": func.now()}
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[plan_versions.c.tenant, plan_versions.c.plan_id, plan_versions.c.version],
            set_=set_,
            where=plan_versions.c.published_at <= stmt.excluded.published_at,
        )
    )


async def upsert_plan_migration(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    stmt = pg_insert(plan_migrations).values(tenant=tenant, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[plan_migrations.c.tenant, plan_migrations.c.id],
            set_={k: stmt.excluded[k] for k in values if k != "id"},
        )
    )


async def insert_tariff_import(session: AsyncSession, tenant: str, values: dict[str, Any]) -> None:
    await session.execute(pg_insert(tariff_imports).values(tenant=tenant, **values).on_conflict_do_nothing())


@dataclass(frozen=True, slots=True)
class TariffImportRef:
    id: str
    currency: str
    timezone: str


async def latest_tariff_import(session: AsyncSession, tenant: str) -> TariffImportRef | None:
    """The tenant's import in force: the latest one imported."""
    row = (
        await session.execute(
            select(tariff_imports.c.id, tariff_imports.c.currency, tariff_imports.c.timezone)
            .where(tariff_imports.c.tenant == tenant)
            .order_by(tariff_imports.c.imported_at.desc(), tariff_imports.c.id.desc())
            .limit(1)
        )
    ).first()
    return TariffImportRef(row.id, row.currency, row.timezone) if row else None


async def tariff_files(session: AsyncSession, tenant: str, ident: str) -> str:
    return str(
        (
            await session.execute(
                select(tariff_imports.c.files_gzip_b64).where(
                    tariff_imports.c.tenant == tenant, tariff_imports.c.id == ident
                )
            )
        ).scalar_one()
    )


def _version(row: RowMapping) -> PlanVersionView:
    return version_view(
        plan_id=row["plan_id"],
        version=row["version"],
        effective_from=row["effective_from"],
        currency=row["currency"],
        code=row["code"],
        rates=row["rates"],
        allowances=row["allowances"],
        spend_cap=row["spend_cap"],
    )


async def load_plans(session: AsyncSession, tenant: str, plan_ids: Iterable[str]) -> dict[str, PlanBook]:
    """Every version and migration of these plans (two queries)."""
    ids = sorted(set(plan_ids))
    if not ids:
        return {}
    version_rows = (
        await session.execute(
            select(plan_versions).where(plan_versions.c.tenant == tenant, plan_versions.c.plan_id == _any(ids))
        )
    ).mappings().all()
    migration_rows = (
        await session.execute(
            select(plan_migrations).where(
                plan_migrations.c.tenant == tenant, plan_migrations.c.plan_id == _any(ids)
            )
        )
    ).mappings().all()
    versions: dict[str, list[PlanVersionView]] = defaultdict(list)
    for r in version_rows:
        versions[r["plan_id"]].append(_version(r))
    migrations: dict[str, list[Migration]] = defaultdict(list)
    for r in migration_rows:
        ids_ = r["subscription_ids"]
        migrations[r["plan_id"]].append(
            Migration(r["to_version"], r["effective_from"], frozenset(ids_) if ids_ is not None else None)
        )
    return {pid: PlanBook.of(vs, migrations.get(pid, ())) for pid, vs in versions.items()}


def _account(r: RowMapping) -> AccountView:
    return AccountView(r["id"], r["currency"], r["country"], r["timezone"], r["bill_cycle_day"])


TariffLoader = Callable[[AsyncSession, str], Awaitable[tuple[TariffBook | None, str | None]]]


async def load_directory(
    session: AsyncSession, tenant: str, msisdns: Iterable[str], tariffs: TariffLoader | None = None
) -> Directory:
    """The projections needed to guide records of these numbers (six queries in all, plus one
    or two for the tariff when a plan version prices by tariff)."""
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
    plans = await load_plans(session, tenant, {r["plan_id"] for r in sub_rows})
    account_rows = (
        (
            await session.execute(
                select(accounts).where(accounts.c.tenant == tenant, accounts.c.id == _any(account_ids))
            )
        ).mappings().all()
        if account_ids
        else []
    )
    tariff, problem = None, None
    if tariffs is not None and any(
        rate.pricing == "tariff" for book in plans.values() for v in book.versions.values() for rate in v.rates.values()
    ):
        tariff, problem = await tariffs(session, tenant)
    return Directory(
        lines_by_msisdn=by_msisdn,
        subscriptions_by_line=by_line,
        plans=plans,
        accounts={r["id"]: _account(r) for r in account_rows},
        tariff=tariff,
        tariff_problem=problem,
    )


@dataclass(frozen=True, slots=True)
class Subscriber:
    line: RowMapping
    subscription: RowMapping | None
    plan: PlanVersionView | None  # the version in force now
    account: RowMapping | None


async def find_subscriber(session: AsyncSession, tenant: str, msisdn: str, now: datetime) -> Subscriber | None:
    """The latest line with this number, its latest subscription, plan version and account."""
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
    account = (
        await session.execute(
            select(accounts).where(accounts.c.tenant == tenant, accounts.c.id == line["account_id"])
        )
    ).mappings().first()
    plan = None
    if sub is not None:
        book = (await load_plans(session, tenant, [sub["plan_id"]])).get(sub["plan_id"])
        if book is not None:
            view = SubscriptionView(
                sub["id"], sub["account_id"], sub["line_id"], sub["plan_id"], sub["start_date"], sub["activated_at"]
            )
            plan = Directory().version_for(book, view, _account(account) if account else None, now)
    return Subscriber(line, sub, plan, account)


@dataclass(frozen=True, slots=True)
class BalanceScope:
    subscriptions: list[RowMapping]
    accounts: dict[str, AccountView]
    account_known: bool
    subscription_known: bool
    line_known: bool


async def subscriptions_for_balances(
    session: AsyncSession,
    tenant: str,
    *,
    account_id: str | None,
    subscription_id: str | None,
    line_id: str | None,
) -> BalanceScope:
    """The subscriptions matching every given filter, their accounts, and which filters name
    something known (an account is known by its event or by a line or subscription of it)."""
    stmt = select(subscriptions).where(subscriptions.c.tenant == tenant)
    if account_id is not None:
        stmt = stmt.where(subscriptions.c.account_id == account_id)
    if subscription_id is not None:
        stmt = stmt.where(subscriptions.c.id == subscription_id)
    if line_id is not None:
        stmt = stmt.where(subscriptions.c.line_id == line_id)
    rows = list((await session.execute(stmt.order_by(subscriptions.c.start_date, subscriptions.c.id))).mappings())

    async def exists(table: Table, column: str, value: str | None) -> bool:
        if value is None:
            return True
        found = await session.execute(
            select(table.c.tenant).where(table.c.tenant == tenant, table.c[column] == value).limit(1)
        )
        return found.first() is not None

    account_known = bool(rows) or (
        await exists(accounts, "id", account_id)
        or await exists(lines, "account_id", account_id)
        or await exists(subscriptions, "account_id", account_id)
    )
    account_ids = {r["account_id"] for r in rows}
    account_rows = (
        (await session.execute(select(accounts).where(accounts.c.tenant == tenant, accounts.c.id == _any(account_ids))))
        .mappings()
        .all()
        if account_ids
        else []
    )
    return BalanceScope(
        subscriptions=rows,
        accounts={r["id"]: _account(r) for r in account_rows},
        account_known=account_known,
        subscription_known=bool(rows) or await exists(subscriptions, "id", subscription_id),
        line_known=bool(rows) or await exists(lines, "id", line_id),
    )


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
    "plan_version": "int",
    "pricing": "varchar",
    "chargeable_quantity": "numeric",
    "allowance_code": "varchar",
    "allowance_used": "numeric",
    "rating_plan": "varchar",
    "tariff_intervals": "jsonb",  # bound as JSON text
    "raw": "text",
    "import_id": "varchar",
}
_OUTCOME_COLUMNS = (
    "status", "reason", "reason_message", "line_id", "account_id", "subscription_id",
    "plan_id", "billed_quantity", "amount", "currency", "rated_at", "plan_version", "pricing",
    "chargeable_quantity", "allowance_code", "allowance_used", "rating_plan", "tariff_intervals",
)


def _columns(rows: Sequence[dict[str, Any]], names: Iterable[str]) -> dict[str, list[Any]]:
    return {name: [row.get(name) for row in rows] for name in names}


def _unnest(names: Sequence[str], types: dict[str, str] = _RECORD_COLUMNS) -> str:
    arrays = ", ".join(f"CAST(:{n} AS {types[n]}[])" for n in names)
    return f"unnest({arrays}) AS u({', '.join(names)})"


# The statements below are assembled once, at import, from the constant column lists above;
# every value travels as a bind parameter (hence the S608 waivers).
def _insert_records_sql(constant: frozenset[str]) -> str:
    values = ", ".join(
        f"CAST(:{c} AS {_RECORD_COLUMNS[c]})" if c in constant else f"u.{c}" for c in _RECORD_COLUMNS
    )
    return (
        f"INSERT INTO usage_records ({', '.join(_RECORD_COLUMNS)}, tenant, created_at, updated_at) "  # noqa: S608
        f"SELECT {values}, :tenant, :now, :now "
        f"FROM {_unnest([c for c in _RECORD_COLUMNS if c not in constant])} "
        "ON CONFLICT (tenant, source, record_id) DO NOTHING "
        "RETURNING id"
    )


# Columns whose value is often the same for a whole batch (bound once, not as an array: fewer
# values to encode). Numeric columns are always arrays (equal Decimals may differ in scale).
_MAYBE_CONSTANT = tuple(c for c, t in _RECORD_COLUMNS.items() if t != "numeric" and c != "id")
_INSERT_RECORDS: dict[frozenset[str], Any] = {}


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
    constant = frozenset(c for c in _MAYBE_CONSTANT if params[c].count(params[c][0]) == len(rows))
    for c in constant:
        params[c] = params[c][0]
    stmt = _INSERT_RECORDS.get(constant)
    if stmt is None:
        stmt = _INSERT_RECORDS[constant] = text(_insert_records_sql(constant))
    params |= {"tenant": tenant, "now": now}
    result = await session.execute(stmt, params)
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


# --- rating state: allowance balances, spend totals, threshold marks ------------------------
_BALANCE_KEY = ("owner_kind", "owner_id", "plan_id", "allowance_code", "period_start")
_BALANCE_TYPES: dict[str, str] = {
    "owner_kind": "varchar", "owner_id": "varchar", "plan_id": "varchar", "allowance_code": "varchar",
    "period_start": "date", "period_end": "date", "account_id": "varchar", "subscription_id": "varchar",
    "service": "varchar", "unit": "varchar", "granted": "numeric", "rollover": "numeric",
    "delta": "numeric",
}
_BALANCE_JOIN = " AND ".join(f"b.{c} = u.{c}" for c in _BALANCE_KEY)
_BALANCE_NEW = [*_BALANCE_KEY, "period_end", "account_id", "subscription_id", "service", "unit", "granted", "rollover"]

_SELECT_BALANCES = text(
    "SELECT b.* FROM allowance_balances b "  # noqa: S608
    f"JOIN {_unnest(list(_BALANCE_KEY), _BALANCE_TYPES)} ON {_BALANCE_JOIN} "
    "WHERE b.tenant = :tenant"
)
_LOCK_BALANCES = text(
    "SELECT b.* FROM allowance_balances b "  # noqa: S608
    f"JOIN {_unnest(list(_BALANCE_KEY), _BALANCE_TYPES)} ON {_BALANCE_JOIN} "
    f"WHERE b.tenant = :tenant ORDER BY {', '.join('b.' + c for c in _BALANCE_KEY)} FOR UPDATE OF b"
)
_INSERT_BALANCES = text(
    f"INSERT INTO allowance_balances (tenant, {', '.join(_BALANCE_NEW)}, used, created_at, updated_at) "  # noqa: S608
    f"SELECT :tenant, {', '.join('u.' + c for c in _BALANCE_NEW)}, 0, :now, :now "
    f"FROM {_unnest(_BALANCE_NEW, _BALANCE_TYPES)} "
    "ON CONFLICT DO NOTHING"
)
_ADD_BALANCE_USE = text(
    "UPDATE allowance_balances b SET used = b.used + u.delta, updated_at = :now "  # noqa: S608
    f"FROM {_unnest([*_BALANCE_KEY, 'delta'], _BALANCE_TYPES)} "
    f"WHERE b.tenant = :tenant AND {_BALANCE_JOIN}"
)


def _key_params(keys: Sequence[BalanceKey]) -> dict[str, list[Any]]:
    return {
        "owner_kind": [k.owner_kind for k in keys],
        "owner_id": [k.owner_id for k in keys],
        "plan_id": [k.plan_id for k in keys],
        "allowance_code": [k.code for k in keys],
        "period_start": [k.period_start for k in keys],
    }


def balance_key_of(row: RowMapping) -> BalanceKey:
    return BalanceKey(row["owner_kind"], row["owner_id"], row["plan_id"], row["allowance_code"], row["period_start"])


async def select_balances(
    session: AsyncSession, tenant: str, keys: Iterable[BalanceKey]
) -> dict[BalanceKey, RowMapping]:
    """Balance rows by key (missing keys are absent)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = (await session.execute(_SELECT_BALANCES, {"tenant": tenant, **_key_params(wanted)})).mappings().all()
    return {balance_key_of(r): r for r in rows}


async def lock_balances(
    session: AsyncSession, tenant: str, new_rows: Sequence[dict[str, Any]], keys: Sequence[BalanceKey], now: datetime
) -> dict[BalanceKey, RowMapping]:
    """Create the missing balances (``new_rows``, already granted), then lock every balance of
    ``keys`` until the commit, in key order (two batches on the same balance serialise here)."""
    if new_rows:
        ordered = sorted(new_rows, key=lambda r: tuple(r[c] for c in _BALANCE_KEY))
        params: dict[str, Any] = {c: [r[c] for r in ordered] for c in _BALANCE_NEW}
        await session.execute(_INSERT_BALANCES, {"tenant": tenant, "now": now, **params})
    wanted = sorted(set(keys))
    rows = (await session.execute(_LOCK_BALANCES, {"tenant": tenant, **_key_params(wanted)})).mappings().all()
    return {balance_key_of(r): r for r in rows}


async def add_balance_use(
    session: AsyncSession, tenant: str, deltas: dict[BalanceKey, Decimal], now: datetime
) -> None:
    keys = sorted(k for k, v in deltas.items() if v)
    if keys:
        params = _key_params(keys) | {"delta": [deltas[k] for k in keys]}
        await session.execute(_ADD_BALANCE_USE, {"tenant": tenant, "now": now, **params})


_SPEND_TYPES = {
    "subscription_id": "varchar", "period_start": "date", "period_end": "date", "account_id": "varchar",
    "plan_id": "varchar", "currency": "varchar", "amount": "numeric",
}
_SPEND_COLUMNS = list(_SPEND_TYPES)
_ADD_SPEND = text(
    f"INSERT INTO spend_totals AS s (tenant, {', '.join(_SPEND_COLUMNS)}, updated_at) "  # noqa: S608
    f"SELECT :tenant, {', '.join('u.' + c for c in _SPEND_COLUMNS)}, :now "
    f"FROM {_unnest(_SPEND_COLUMNS, _SPEND_TYPES)} ORDER BY u.subscription_id, u.period_start "
    "ON CONFLICT (tenant, subscription_id, period_start) "
    "DO UPDATE SET amount = s.amount + excluded.amount, updated_at = excluded.updated_at "
    "RETURNING s.subscription_id, s.period_start, s.amount"
)


async def add_spend(
    session: AsyncSession, tenant: str, rows: Sequence[dict[str, Any]], now: datetime
) -> dict[tuple[str, date], Decimal]:
    """Add rated amounts to each (subscription, cycle) total atomically; the totals after."""
    if not rows:
        return {}
    params = {c: [r[c] for r in rows] for c in _SPEND_COLUMNS}
    result = await session.execute(_ADD_SPEND, {"tenant": tenant, "now": now, **params})
    return {(r.subscription_id, r.period_start): r.amount for r in result}


_MARK_TYPES = {
    "kind": "varchar", "owner_kind": "varchar", "owner_id": "varchar", "plan_id": "varchar", "code": "varchar",
    "period_start": "date", "threshold": "int",
}
_MARK_COLUMNS = list(_MARK_TYPES)
_INSERT_MARKS = text(
    f"INSERT INTO threshold_marks (tenant, {', '.join(_MARK_COLUMNS)}, reached_at) "  # noqa: S608
    f"SELECT :tenant, {', '.join('u.' + c for c in _MARK_COLUMNS)}, :now "
    f"FROM {_unnest(_MARK_COLUMNS, _MARK_TYPES)} "
    "ON CONFLICT DO NOTHING "
    f"RETURNING {', '.join(_MARK_COLUMNS)}"
)


async def insert_threshold_marks(
    session: AsyncSession, tenant: str, marks: Sequence[tuple[Any, ...]], now: datetime
) -> set[tuple[Any, ...]]:
    """Mark thresholds as reached; returns the marks that are new (their events are due)."""
    if not marks:
        return set()
    params = {c: [m[i] for m in marks] for i, c in enumerate(_MARK_COLUMNS)}
    result = await session.execute(_INSERT_MARKS, {"tenant": tenant, "now": now, **params})
    return {tuple(r) for r in result}


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


# --- re-rating jobs -----------------------------------------------------------------------
OPEN_JOB_STATUSES = ("queued", "running")
_OPEN_JOB = text("rerating_jobs.status IN ('queued', 'running')")
_SCOPE_COLUMNS = {
    "line": usage_records.c.line_id, "account": usage_records.c.account_id, "plan": usage_records.c.plan_id,
}


def _in_scope(
    tenant: str, kind: str, scope_id: str | None, started_from: datetime, started_before: datetime
) -> list[Any]:
    """Rated records of the job's scope whose start is in [started_from, started_before)."""
    cond = [
        usage_records.c.tenant == tenant,
        usage_records.c.status == "rated",
        usage_records.c.started_at >= started_from,
        usage_records.c.started_at < started_before,
    ]
    if kind == "tariff":
        cond.append(usage_records.c.pricing == "tariff")
    else:
        cond.append(_SCOPE_COLUMNS[kind] == scope_id)
    return cond


async def count_in_scope(
    session: AsyncSession,
    tenant: str,
    kind: str,
    scope_id: str | None,
    started_from: datetime,
    started_before: datetime,
) -> tuple[int, str | None]:
    """How many records a new job covers, and the greatest of their ids (its upper bound)."""
    row = (
        await session.execute(
            select(func.count(), func.max(usage_records.c.id)).where(
                *_in_scope(tenant, kind, scope_id, started_from, started_before)
            )
        )
    ).one()
    return int(row[0]), row[1]


async def insert_rerating_job(session: AsyncSession, tenant: str, values: dict[str, Any]) -> RowMapping:
    return await generic.insert_row(session, rerating_jobs, {"tenant": tenant, **values})


async def get_rerating_job(session: AsyncSession, tenant: str, ident: str) -> RowMapping | None:
    return await generic.get(session, rerating_jobs, tenant, ident)


async def list_rerating_jobs(
    session: AsyncSession, tenant: str, *, status: str | None, cursor: str | None, limit: int
) -> tuple[list[RowMapping], str | None]:
    return await generic.list_page(
        session, rerating_jobs, tenant, cursor=cursor, limit=limit, filters={"status": status}
    )


async def claim_rerating_job(session: AsyncSession) -> RowMapping | None:
    """An open job (any tenant) no other worker holds, least recently advanced first; locked
    until the commit, so two workers never process one job at once."""
    stmt = (
        select(rerating_jobs)
        .where(_OPEN_JOB)  # literally the partial index's predicate, so that the index serves it
        .order_by(rerating_jobs.c.updated_at, rerating_jobs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).mappings().first()


async def lock_rerating_job(session: AsyncSession, tenant: str, ident: str) -> RowMapping | None:
    stmt = select(rerating_jobs).where(rerating_jobs.c.tenant == tenant, rerating_jobs.c.id == ident).with_for_update()
    return (await session.execute(stmt)).mappings().first()


async def update_rerating_job(session: AsyncSession, tenant: str, ident: str, values: dict[str, Any]) -> None:
    await session.execute(
        update(rerating_jobs).where(rerating_jobs.c.tenant == tenant, rerating_jobs.c.id == ident).values(**values)
    )


async def lock_job_records(session: AsyncSession, job: RowMapping, limit: int) -> list[RowMapping]:
    """The job's next ``limit`` records after its cursor (keyset over the record id, up to the
    job's bound), locked until the commit: a concurrent job on the same records waits and then
    reads what this one wrote."""
    if job["until_id"] is None:
        return []
    cond = _in_scope(job["tenant"], job["scope_kind"], job["scope_id"], job["started_from"], job["started_before"])
    cond.append(usage_records.c.id <= job["until_id"])
    if job["cursor"] is not None:
        cond.append(usage_records.c.id > job["cursor"])
    stmt = select(usage_records).where(*cond).order_by(usage_records.c.id).limit(limit).with_for_update()
    return list((await session.execute(stmt)).mappings().all())


_RERATED_TYPES = {
    "id": "varchar", "amount": "numeric", "billed_quantity": "numeric", "chargeable_quantity": "numeric",
    "plan_version": "int", "rating_plan": "varchar", "tariff_intervals": "jsonb",
}
_UPDATE_RERATED = text(
    "UPDATE usage_records r SET "  # noqa: S608
    + ", ".join(f"{c} = u.{c}" for c in _RERATED_TYPES if c != "id")
    + ", updated_at = :now "
    f"FROM {_unnest(list(_RERATED_TYPES), _RERATED_TYPES)} "
    "WHERE r.tenant = :tenant AND r.id = u.id AND r.status = 'rated'"
)


async def update_rerated_records(
    session: AsyncSession, tenant: str, rows: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Write the new rating of re-rated records (one statement; ``tariff_intervals`` as JSON text)."""
    if rows:
        params: dict[str, Any] = _columns(rows, _RERATED_TYPES)
        await session.execute(_UPDATE_RERATED, params | {"tenant": tenant, "now": now})


async def insert_rerating_adjustments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(rerating_adjustments.insert(), list(rows))


async def list_rerating_adjustments(
    session: AsyncSession, tenant: str, job_id: str, *, cursor: str | None, limit: int
) -> tuple[list[RowMapping], str | None]:
    """A job's adjustments in record order (its chunks are written in record-id order)."""
    stmt = select(rerating_adjustments).where(
        rerating_adjustments.c.tenant == tenant, rerating_adjustments.c.job_id == job_id
    )
    stmt = paginate(stmt, rerating_adjustments.c.created_at, rerating_adjustments.c.usage_id, cursor, limit)
    rows = list((await session.execute(stmt)).mappings().all())
    return page_of(rows, limit, id_attr="usage_id")
