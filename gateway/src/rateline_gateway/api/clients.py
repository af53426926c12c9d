"""Admin API for OAuth clients of the caller's tenant."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from rateline_gateway import repository as repo
from rateline_gateway.api.deps import Session
from rateline_gateway.api.schemas import (
    OAuthClient,
    OAuthClientCreate,
    OAuthClientCreated,
    OAuthClientPage,
)
from rateline_gateway.domain.credentials import hash_secret, new_client_id, new_client_secret
from rateline_gateway.domain.scopes import ScopeError, check_scope_names
from rateline_shared.auth import ADMIN_SCOPE, Principal, require_scope
from rateline_shared.errors import PROBLEM_RESPONSES, Forbidden, Unprocessable

router = APIRouter(prefix="/v1", tags=["oauth-clients"], responses=PROBLEM_RESPONSES)

Admin = Annotated[Principal, Depends(require_scope(ADMIN_SCOPE))]


@router.post(
    "/oauth-clients", status_code=status.HTTP_201_CREATED, response_model=OAuthClientCreated
)
async def create_oauth_client(
    body: OAuthClientCreate, principal: Admin, session: Session, response: Response
) -> OAuthClientCreated:
    """Register an OAuth client for the caller's tenant (needs `admin`).

    The answer carries the `client_secret` once; only a salted scrypt hash is stored, so a
    lost secret cannot be shown again.
    """
    tenant = body.tenant or principal.tenant
    if tenant != principal.tenant:
        raise Forbidden("clients can only be created for your own tenant")
    try:
        scopes = check_scope_names(body.scopes)
    except ScopeError as err:
        raise Unprocessable(
            err.message,
            errors=[{"field": "scopes", "location": "body", "code": "invalid_scope",
                     "message": err.message}],
        ) from err
    secret = new_client_secret()
    secret_hash = await asyncio.to_thread(hash_secret, secret)
    row = await repo.insert_client(
        session,
        {
            "client_id": new_client_id(),
            "secret_hash": secret_hash,
            "name": body.name,
            "tenant": tenant,
            "scopes": scopes,
            "disabled": False,
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return OAuthClientCreated(client_secret=secret, **OAuthClient.model_validate(dict(row)).model_dump())


@router.get("/oauth-clients", response_model=OAuthClientPage)
async def list_oauth_clients(
    principal: Admin,
    session: Session,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> OAuthClientPage:
    """List the tenant's OAuth clients (never their secrets), oldest first (needs `admin`)."""
    rows, nxt = await repo.list_clients(session, principal.tenant, cursor=cursor, limit=limit)
    return OAuthClientPage(
        items=[OAuthClient.model_validate(dict(r)) for r in rows], next_cursor=nxt
    )
