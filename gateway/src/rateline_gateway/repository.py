"""Queries. Functions only execute; the unit of work commits.

OAuth clients are scoped by tenant everywhere except :func:`get_client`, which the token
endpoint uses to find a client *by its id* before any tenant is known (the client id is
globally unique, and the tenant comes from that row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_gateway.db import oauth_clients, signing_keys
from rateline_shared.db import utcnow
from rateline_shared.pagination import page_of, paginate


async def active_signing_keys(session: AsyncSession) -> list[RowMapping]:
    """Active keys, newest first (the first one signs)."""
    stmt = (
        select(signing_keys)
        .where(signing_keys.c.active.is_(True))
        .order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
    )
    return list((await session.execute(stmt)).mappings().all())


async def insert_signing_key(session: AsyncSession, kid: str, pem: str) -> None:
    stmt = insert(signing_keys).values(
        kid=kid, private_key_pem=pem, created_at=utcnow(), active=True
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=[signing_keys.c.kid]))


async def get_client(session: AsyncSession, client_id: str) -> RowMapping | None:
    stmt = select(oauth_clients).where(oauth_clients.c.client_id == client_id)
    return (await session.execute(stmt)).mappings().first()


async def insert_client(session: AsyncSession, values: dict[str, Any]) -> RowMapping:
    stmt = insert(oauth_clients).values(created_at=utcnow(), **values).returning(oauth_clients)
    row: RowMapping = (await session.execute(stmt)).mappings().one()
    return row


async def upsert_client(
    session: AsyncSession,
    *,
    client_id: str,
    secret_hash: str,
    name: str,
    tenant: str,
    scopes: Sequence[str],
) -> tuple[RowMapping, bool]:
    """Insert the client, or update secret, scopes, name and tenant (and re-enable) if the id
    exists. Returns the row and whether it was created."""
    values = {
        "secret_hash": secret_hash,
        "name": name,
        "tenant": tenant,
        "scopes": list(scopes),
        "disabled": False,
    }
    stmt = insert(oauth_clients).values(client_id=client_id, created_at=utcnow(), **values)
    stmt = stmt.on_conflict_do_update(index_elements=[oauth_clients.c.client_id], set_=values)
    # PostgreSQL sets xmax = 0 only on a freshly inserted row version.
    inserted: Any = literal_column("(xmax = 0)").label("inserted")
    row = (await session.execute(stmt.returning(oauth_clients, inserted))).mappings().one()
    return row, bool(row["inserted"])


async def list_clients(
    session: AsyncSession, tenant: str, *, cursor: str | None, limit: int
) -> tuple[list[RowMapping], str | None]:
    stmt = select(oauth_clients).where(oauth_clients.c.tenant == tenant)
    stmt = paginate(stmt, oauth_clients.c.created_at, oauth_clients.c.client_id, cursor, limit)
    rows = list((await session.execute(stmt)).mappings().all())
    return page_of(rows, limit, id_attr="client_id")
