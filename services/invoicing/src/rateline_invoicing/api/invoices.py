"""Invoices: read them, finalize a draft."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_invoicing import billing
from rateline_invoicing import repository as repo
from rateline_invoicing.api.schemas import Invoice, InvoicePage, InvoiceStatus
from rateline_invoicing.settings import InvoicingSettings
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1", tags=["invoices"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("invoices:read"))]
Write = Annotated[Principal, Depends(require_scope("invoices:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


@router.get("/invoices", response_model=InvoicePage)
async def list_invoices(
    principal: Read,
    session: Session,
    account_id: str | None = None,
    status_: Annotated[InvoiceStatus | None, Query(alias="status")] = None,
    bill_run_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> InvoicePage:
    """The tenant's invoices, oldest first (cursor paginated), with their lines."""
    rows, nxt = await repo.list_page(
        session, repo.invoices, principal.tenant, cursor=cursor, limit=limit,
        filters={"account_id": account_id, "status": status_, "bill_run_id": bill_run_id},
    )
    lines = await repo.lines_of(session, principal.tenant, [r["id"] for r in rows])
    return InvoicePage(items=[Invoice.of(r, lines[r["id"]]) for r in rows], next_cursor=nxt)


@router.get("/invoices/{invoice_id}", response_model=Invoice)
async def get_invoice(invoice_id: str, principal: Read, session: Session) -> Invoice:
    """One invoice with its lines, totals and payment state."""
    row = await repo.get(session, repo.invoices, principal.tenant, invoice_id)
    if row is None:
        raise billing.InvoiceNotFound(f"invoice {invoice_id} not found")
    lines = await repo.lines_of(session, principal.tenant, [invoice_id])
    return Invoice.of(row, lines[invoice_id])


@router.post("/invoices/{invoice_id}/finalize", response_model=Invoice)
async def finalize_invoice(
    invoice_id: str, request: Request, principal: Write, session: Session
) -> Invoice:
    """Finalize a draft: it gets the tenant's next invoice number (``INV-000001``, gapless),
    is issued now and due after the payment terms; ``invoicing.invoice.finalized`` is
    published. An invoice with nothing to pay is paid at once (``invoicing.invoice.paid``).
    Finalizing an invoice that is not a draft is a 409."""
    settings = request.app.state.runtime.settings
    assert isinstance(settings, InvoicingSettings)
    row = await billing.finalize_invoice(
        session, principal.tenant, invoice_id,
        now=utcnow(), payment_terms_days=settings.payment_terms_days,
    )
    lines = await repo.lines_of(session, principal.tenant, [invoice_id])
    return Invoice.of(row, lines[invoice_id])
