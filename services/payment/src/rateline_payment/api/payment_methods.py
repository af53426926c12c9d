"""Payment methods: provider tokens of an account's cards, one of them the default."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_payment import repository as repo
from rateline_payment.api.schemas import PaymentMethod, PaymentMethodCreate, PaymentMethodPage
from rateline_payment.domain.methods import becomes_default
from rateline_payment.providers import UnknownToken, provider_for
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import advisory_xact_lock, uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound, Unprocessable, field_error

router = APIRouter(prefix="/v1", tags=["payment-methods"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("payments:read"))]
Write = Annotated[Principal, Depends(require_scope("payments:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def field_problem(field: str, message: str, code: str = "invalid") -> Unprocessable:
    return Unprocessable(
        message, errors=[field_error(field, message, code)]
    )


@router.post(
    "/payment-methods", status_code=status.HTTP_201_CREATED, response_model=PaymentMethod
)
async def create_payment_method(
    body: PaymentMethodCreate, principal: Write, session: Session, request: Request
) -> PaymentMethod:
    """Register a card the provider has tokenised for an account.

    The token is checked with the provider (unknown tokens are refused with 422) and kept;
    only its brand and last four digits are ever shown. An account has at most one default
    method, which automatic collection charges.
    """
    account = await repo.get(session, repo.accounts, principal.tenant, body.account_id)
    if account is None:
        raise field_problem("account_id", f"account {body.account_id} is not known")
    provider = provider_for(
        body.provider, tenant=principal.tenant, sessions=request.app.state.runtime.sessions
    )
    try:
        card = await provider.describe(body.token)
    except UnknownToken as exc:
        raise field_problem("token", str(exc), code="unknown_token") from exc
    # Serialise changes to one account's methods so "one default" holds without a 409 race.
    await advisory_xact_lock(session, f"payment-methods:{principal.tenant}:{body.account_id}")
    current = await repo.default_method(session, principal.tenant, body.account_id)
    is_default = becomes_default(body.default, current is not None)
    if is_default and current is not None:
        await repo.clear_default(session, principal.tenant, body.account_id)
    row = await repo.insert_row(
        session,
        repo.payment_methods,
        {
            "id": str(uuid.uuid4()),
            "tenant": principal.tenant,
            "account_id": body.account_id,
            "provider": provider.name,
            "token": body.token,
            "brand": card.brand,
            "last4": card.last4,
            "is_default": is_default,
            "created_at": utcnow(),
        },
    )
    return PaymentMethod.model_validate(dict(row))


@router.get("/payment-methods", response_model=PaymentMethodPage)
async def list_payment_methods(
    principal: Read,
    session: Session,
    account_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PaymentMethodPage:
    """List payment methods, oldest first; filter by ``account_id``."""
    rows, nxt = await repo.list_page(
        session, repo.payment_methods, principal.tenant, cursor=cursor, limit=limit,
        filters={"account_id": account_id},
    )
    return PaymentMethodPage(
        items=[PaymentMethod.model_validate(dict(r)) for r in rows], next_cursor=nxt
    )


@router.get("/payment-methods/{method_id}", response_model=PaymentMethod)
async def get_payment_method(method_id: str, principal: Read, session: Session) -> PaymentMethod:
    """One payment method."""
    row = await repo.get(session, repo.payment_methods, principal.tenant, method_id)
    if row is None:
        raise NotFound(f"payment method {method_id} not found")
    return PaymentMethod.model_validate(dict(row))
