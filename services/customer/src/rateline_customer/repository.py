"""Queries. Every query is scoped by tenant; functions only execute, the unit of work commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_customer.db import accounts, lines, plans, subscriptions
from rateline_shared import repository as generic

# The generic tenant-scoped queries (rateline_shared.repository), used by the API as repo.*.
get = generic.get
insert_row = generic.insert_row
list_page = generic.list_page


async def get_plan(session: AsyncSession, tenant: str, plan_id: str) -> RowMapping | None:
    stmt = select(plans).where(plans.c.tenant == tenant, plans.c.id == plan_id)
    return (await session.execute(stmt)).mappings().first()


__all__ = ["accounts", "get", "get_plan", "insert_row", "lines", "list_page", "subscriptions"]
