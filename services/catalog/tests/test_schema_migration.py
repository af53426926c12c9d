"""Migration 0003 on a database holding plans of the first schema: version 1 is backfilled from
the plan and its plan_rates, and a downgrade gives the rates back."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from rateline_catalog.app import MIGRATIONS
from rateline_shared.migrations import alembic_config, upgrade
from rateline_shared.testing import fresh_database

OLD_PLAN = """
INSERT INTO plans (id, tenant, code, name, currency, recurring_fee, billing_period, status, published_at, created_at)
VALUES ('p-old', 'acme', 'OLD', 'Old', 'EUR', 9.90, 'monthly', 'published', '2026-01-02T03:04:05Z', '2026-01-02T03:04:05Z')
"""
OLD_RATES = """
INSERT INTO plan_rates (plan_id, service, tenant, unit, price, first_increment, increment, position) VALUES
('p-old', 'voice', 'acme', 'minute', 0.10, 60, 60, 0),
('p-old', 'sms', 'acme', 'message', 0.050, 1, 1, 1)
"""


async def test_existing_plans_get_version_1(pg_server) -> None:
    url = fresh_database(pg_server, "catalog_mig")
    await asyncio.to_thread(upgrade, MIGRATIONS, url, "0002")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(OLD_PLAN))
            await conn.execute(text(OLD_RATES))
        await asyncio.to_thread(upgrade, MIGRATIONS, url)
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT * FROM plan_versions WHERE plan_id = 'p-old'"))).mappings().one()
        assert row["version"] == 1 and row["tenant"] == "acme"
        assert row["effective_from"].isoformat() == "2026-01-02T03:04:05+00:00"
        assert str(row["recurring_fee"]) == "9.90" and row["billing_timing"] == "advance"
        assert row["rates"] == [
            {"service": "voice", "unit": "minute", "price": "0.10", "first_increment": 60, "increment": 60,
             "pricing": "per_unit", "tiers": [], "package_size": None, "minimum_charge": None, "tariff": None},
            {"service": "sms", "unit": "message", "price": "0.050", "first_increment": 1, "increment": 1,
             "pricing": "per_unit", "tiers": [], "package_size": None, "minimum_charge": None, "tariff": None},
        ]
        assert (row["one_time_charges"], row["allowances"], row["spend_cap"]) == ([], [], None)

        await asyncio.to_thread(command.downgrade, alembic_config(MIGRATIONS, url), "0002")
        async with engine.connect() as conn:
            rates = (await conn.execute(text(
                "SELECT service, unit, price::text, first_increment, increment, position FROM plan_rates ORDER BY position"
            ))).all()
        assert [tuple(r) for r in rates] == [
            ("voice", "minute", "0.10", 60, 60, 0),
            ("sms", "message", "0.050", 1, 1, 1),
        ]
    finally:
        await engine.dispose()
