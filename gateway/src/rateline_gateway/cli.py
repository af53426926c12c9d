"""``create-client``: register (or update) an OAuth client from the command line.

The dev stack runs it after migrating, with the gateway's environment, to get its first
admin client. An existing ``client_id`` gets the new secret, scopes, name and tenant.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from rateline_gateway import repository as repo
from rateline_gateway.domain.credentials import (
    hash_secret,
    new_client_id,
    new_client_secret,
    valid_client_id,
)
from rateline_gateway.domain.scopes import check_scope_names
from rateline_gateway.settings import GatewaySettings
from rateline_shared.db import create_engine, session_factory, unit_of_work


class CliError(ValueError):
    pass


def parse_scope_list(value: str) -> list[str]:
    """``"admin"``, ``"customers:* invoices:read"`` or ``"customers:*,invoices:read"``."""
    return [s for s in re.split(r"[\s,]+", value) if s]


async def create_client(
    settings: GatewaySettings,
    *,
    tenant: str,
    scopes: str | list[str],
    name: str,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> dict[str, Any]:
    """Insert or update the client; returns ``{client_id, client_secret, tenant, scopes}``."""
    scope_list = check_scope_names(parse_scope_list(scopes) if isinstance(scopes, str) else scopes)
    if not tenant or len(tenant) > 64:
        raise CliError("--tenant must be 1 to 64 characters")
    if not name or len(name) > 200:
        raise CliError("--name must be 1 to 200 characters")
    client_id = client_id or new_client_id()
    if not valid_client_id(client_id):
        raise CliError("--client-id must be 3 to 64 of A-Z a-z 0-9 . _ ~ -")
    if client_secret is not None and not client_secret:
        raise CliError("--client-secret must not be empty")
    secret = client_secret or new_client_secret()
    secret_hash = await asyncio.to_thread(hash_secret, secret)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with unit_of_work(session_factory(engine)) as session:
            row, _created = await repo.upsert_client(
                session,
                client_id=client_id,
                secret_hash=secret_hash,
                name=name,
                tenant=tenant,
                scopes=scope_list,
            )
    finally:
        await engine.dispose()
    return {
        "client_id": row["client_id"],
        "client_secret": secret,
        "tenant": row["tenant"],
        "scopes": list(row["scopes"]),
    }
