"""Partner webhook endpoints: where to send which events."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound, Unprocessable
from rateline_webhooks import repository as repo
from rateline_webhooks.api.schemas import (
    Endpoint,
    EndpointCreate,
    EndpointPage,
    EndpointStatus,
    EndpointWithSecret,
)
from rateline_webhooks.db import webhook_endpoints
from rateline_webhooks.domain.endpoints import (
    DomainError,
    EventTypesError,
    check_event_types,
    check_url,
    new_secret,
)

router = APIRouter(prefix="/v1", tags=["webhook-endpoints"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("webhooks:read"))]
Write = Annotated[Principal, Depends(require_scope("webhooks:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def unprocessable(errors: list[DomainError]) -> Unprocessable:
    return Unprocessable(
        "; ".join(e.message for e in errors),
        errors=[
            {"field": e.field, "location": "body", "code": "invalid", "message": e.message}
            for e in errors
        ],
    )


@router.post(
    "/webhook-endpoints", status_code=status.HTTP_201_CREATED, response_model=EndpointWithSecret
)
async def create_endpoint(body: EndpointCreate, principal: Write, session: Session) -> EndpointWithSecret:
    """Register a partner URL for some event types.

    Every event of those types of your tenant is POSTed to it, signed the Standard Webhooks way
    (headers ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``). The response holds
    the signing ``secret``; it is not shown again.
    """
    errors: list[DomainError] = []
    try:
        url = check_url(body.url)
    except DomainError as err:
        errors.append(err)
    try:
        event_types = check_event_types(body.event_types)
    except EventTypesError as err:
        errors.extend(err.errors)
    if errors:
        raise unprocessable(errors)
    now = utcnow()
    row = await repo.insert_row(
        session,
        webhook_endpoints,
        {
            "id": str(uuid.uuid4()),
            "tenant": principal.tenant,
            "url": url,
            "description": body.description,
            "event_types": event_types,
            "secret": new_secret(),
            "status": "enabled",
            "created_at": now,
            "updated_at": now,
        },
    )
    return EndpointWithSecret.model_validate(dict(row))


@router.get("/webhook-endpoints", response_model=EndpointPage)
async def list_endpoints(
    principal: Read,
    session: Session,
    status_: Annotated[EndpointStatus | None, Query(alias="status")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EndpointPage:
    """List endpoints, oldest first; filter by ``status`` (secrets are never listed)."""
    rows, nxt = await repo.list_page(
        session, webhook_endpoints, principal.tenant, cursor=cursor, limit=limit,
        filters={"status": status_},
    )
    return EndpointPage(items=[Endpoint.model_validate(dict(r)) for r in rows], next_cursor=nxt)


@router.get("/webhook-endpoints/{endpoint_id}", response_model=Endpoint)
async def get_endpoint(endpoint_id: str, principal: Read, session: Session) -> Endpoint:
    """One endpoint (without its secret)."""
    row = await repo.get(session, webhook_endpoints, principal.tenant, endpoint_id)
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return Endpoint.model_validate(dict(row))


@router.delete("/webhook-endpoints/{endpoint_id}", response_model=Endpoint)
async def disable_endpoint(endpoint_id: str, principal: Write, session: Session) -> Endpoint:
    """Disable an endpoint: it receives nothing more, and its queued deliveries are failed.

    The endpoint and its delivery log are kept (status ``disabled``); repeating the call is
    harmless.
    """
    row = await repo.disable_endpoint(session, principal.tenant, endpoint_id, utcnow())
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return Endpoint.model_validate(dict(row))
