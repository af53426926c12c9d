"""Migration 0002 on a database that already has plans and invoices (an upgrade in place)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal

from alembic import command
from sqlalchemy import text

from rateline_invoicing.app import MIGRATIONS
from rateline_shared.db import create_engine
from rateline_shared.engines import EmbeddedPostgres
from rateline_shared.migrations import alembic_config, upgrade
from rateline_shared.testing import fresh_database

T = datetime(2026, 10, 1, tzinfo=UTC)


async def test_0002_turns_known_plans_into_version_1_and_remembers_invoiced_subscriptions(
    pg_server: EmbeddedPostgres,
) -> None:
    url = fresh_database(pg_server, "invmig")
    await asyncio.to_thread(upgrade, MIGRATIONS, url, "0001")
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO plans VALUES ('acme', 'p1', 'BASIC', 'Basic', 'EUR', 10, 'monthly', :t)"
            ), {"t": T})
            await conn.execute(text(
                "INSERT INTO invoices (id, tenant, account_id, status, currency, timezone, period_start, "
                "period_end, period_start_utc, period_end_utc, subtotal, total) VALUES "
                "('inv-1', 'acme', 'a1', 'draft', 'EUR', 'UTC', :d1, :d2, :t, :t2, 10, 10)"
            ), {"d1": date(2026, 10, 1), "d2": date(2026, 11, 1), "t": T, "t2": datetime(2026, 11, 1, tzinfo=UTC)})
            await conn.execute(text(
                "INSERT INTO invoice_lines (tenant, invoice_id, position, kind, description, subscription_id, "
                "plan_id, quantity, unit, amount, unrounded_amount, currency) VALUES "
                "('acme', 'inv-1', 1, 'recurring', 'Basic monthly fee', 's1', 'p1', 1, 'month', 10, 10, 'EUR')"
            ))
        await asyncio.to_thread(upgrade, MIGRATIONS, url, "head")
        async with engine.begin() as conn:
            version = (await conn.execute(text(
                "SELECT version, recurring_fee, billing_timing, source, effective_from FROM plan_versions"
            ))).one()
            assert tuple(version) == (1, Decimal("10.000000000000"), "advance", "plan", T)
            first = (await conn.execute(text(
                "SELECT tenant, subscription_id, invoice_id FROM subscription_first_invoices"
            ))).all()
            assert [tuple(r) for r in first] == [("acme", "s1", "inv-1")]
            header = (await conn.execute(text("SELECT version FROM plans"))).scalar_one()
            assert header == 1
        # and back down
        await asyncio.to_thread(command.downgrade, alembic_config(MIGRATIONS, url), "0001")
        async with engine.begin() as conn:
            gone = (await conn.execute(text("SELECT to_regclass('plan_versions')"))).scalar_one()
            assert gone is None
    finally:
        await engine.dispose()
