"""Payments: one per collected invoice, with the provider's outcome."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_payment import repository as repo
from rateline_payment.api.schemas import Payment, PaymentPage
from rateline_payment.domain.collection import PaymentStatus, canonical_amount
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound
from rateline_shared.money import MoneyModel

router = APIRouter(prefix="/v1", tags=["payments"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("payments:read"))]
Session = Annotated[AsyncSession, Depends(uow)]


def to_payment(row: RowMapping) -> Payment:
    values: dict[str, Any] = dict(row)
    amount, currency = values.pop("amount"), values.pop("currency")
    values["amount"] = MoneyModel(amount=canonical_amount(amount, currency), currency=currency)
    return Payment.model_validate(values)


@router.get("/payments", response_model=PaymentPage)
async def list_payments(
    principal: Read,
    session: Session,
    account_id: str | None = None,
    invoice_id: str | None = None,
    status: PaymentStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PaymentPage:
    """List payments, oldest first; filter by ``account_id``, ``invoice_id`` and ``status``."""
    rows, nxt = await repo.list_page(
        session, repo.payments, principal.tenant, cursor=cursor, limit=limit,
        filters={"account_id": account_id, "invoice_id": invoice_id, "status": status},
    )
    return PaymentPage(items=[to_payment(r) for r in rows], next_cursor=nxt)


@router.get("/payments/{payment_id}", response_model=Payment)
async def get_payment(payment_id: str, principal: Read, session: Session) -> Payment:
    """One payment: amount, status, the method charged and the provider's reference or
    failure (``card_declined``, ``insufficient_funds``, ``no_payment_method``, ...)."""
    row = await repo.get(session, repo.payments, principal.tenant, payment_id)
    if row is None:
        raise NotFound(f"payment {payment_id} not found")
    return to_payment(row)
