"""Bill runs: invoice every account of the tenant for one period, in the background."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_invoicing import repository as repo
from rateline_invoicing.api.errors import period_problem
from rateline_invoicing.api.schemas import BillRun, BillRunCreate, BillRunPage, BillRunStatus
from rateline_invoicing.domain.errors import PeriodError
from rateline_invoicing.domain.periods import check_period
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound

router = APIRouter(prefix="/v1", tags=["bill-runs"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("invoices:read"))]
Write = Annotated[Principal, Depends(require_scope("invoices:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


@router.post("/bill-runs", status_code=status.HTTP_202_ACCEPTED, response_model=BillRun)
async def create_bill_run(body: BillRunCreate, principal: Write, session: Session) -> BillRun:
    """Start a bill run for ``[period_start, period_end)``.

    The dates are local dates in each account's time zone: an account is billed for usage from
    local midnight of ``period_start`` up to (excluding) local midnight of ``period_end``. The
    run is accepted as ``pending`` and worked off in the background, one account at a time;
    poll ``GET /v1/bill-runs/{id}``. An account that already has an invoice for
    ``period_start`` is skipped, so repeating a run never invoices anyone twice. Accounts that
    cannot be billed (e.g. a plan in another currency) are listed in ``errors``.
    """
    try:
        check_period(body.period_start, body.period_end)
    except PeriodError as err:
        raise period_problem(err, "body") from err
    row = await repo.insert_bill_run(
        session,
        {
            "id": str(uuid.uuid4()),
            "tenant": principal.tenant,
            "status": "pending",
            "period_start": body.period_start,
            "period_end": body.period_end,
            "bill_cycle_day": body.bill_cycle_day,
            "auto_finalize": body.auto_finalize,
            "created_at": utcnow(),
        },
    )
    return BillRun.of(row)


@router.get("/bill-runs", response_model=BillRunPage)
async def list_bill_runs(
    principal: Read,
    session: Session,
    status_: Annotated[BillRunStatus | None, Query(alias="status")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> BillRunPage:
    """The tenant's bill runs, oldest first (cursor paginated), optionally by status."""
    rows, nxt = await repo.list_page(
        session, repo.bill_runs, principal.tenant, cursor=cursor, limit=limit,
        filters={"status": status_},
    )
    return BillRunPage(items=[BillRun.of(r) for r in rows], next_cursor=nxt)


@router.get("/bill-runs/{bill_run_id}", response_model=BillRun)
async def get_bill_run(bill_run_id: str, principal: Read, session: Session) -> BillRun:
    """A bill run with its progress (accounts done of total, invoices created) and errors."""
    row = await repo.get(session, repo.bill_runs, principal.tenant, bill_run_id)
    if row is None:
        raise NotFound(f"bill run {bill_run_id} not found")
    return BillRun.of(row)
