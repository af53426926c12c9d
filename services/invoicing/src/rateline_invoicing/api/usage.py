"""What invoicing knows of an account's rated usage (operators; tests wait on it)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_invoicing import repository as repo
from rateline_invoicing.api.errors import period_problem
from rateline_invoicing.api.schemas import (
    BillableUsage,
    KnownPlan,
    KnownSubscription,
    ServiceUsage,
    plain,
    rated,
)
from rateline_invoicing.domain.errors import PeriodError
from rateline_invoicing.domain.periods import BillingPeriod
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound

router = APIRouter(prefix="/v1", tags=["billable-usage"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("invoices:read"))]
Session = Annotated[AsyncSession, Depends(uow)]


@router.get("/billable-usage", response_model=BillableUsage)
async def billable_usage(
    principal: Read,
    session: Session,
    account_id: str,
    period_start: Annotated[dt.date, Query(description="First local day, YYYY-MM-DD")],
    period_end: Annotated[dt.date, Query(description="Day after the last local day")],
) -> BillableUsage:
    """The rated usage invoicing holds for an account in a period (local dates in the account's
    time zone): record counts, how many are not invoiced yet, and the rated amounts by service
    (unrounded), plus the account's subscriptions and whether their plans are known, and how
    many re-rating adjustments of invoiced usage wait for the next invoice. A 404 means the
    account itself has not reached invoicing yet."""
    account = await repo.get(session, repo.accounts, principal.tenant, account_id)
    if account is None:
        raise NotFound(f"account {account_id} is not known to invoicing")
    try:
        period = BillingPeriod.of(period_start, period_end, account["timezone"])
    except PeriodError as err:
        raise period_problem(err, "query") from err
    summary = await repo.usage_summary(
        session, principal.tenant, account_id, period.start_utc, period.end_utc
    )
    subs = await repo.account_subscriptions(session, principal.tenant, account_id)
    plans = await repo.plans_by_id(session, principal.tenant, {s["plan_id"] for s in subs})
    return BillableUsage(
        account_id=account_id,
        currency=account["currency"],
        timezone=account["timezone"],
        period_start=period.start,
        period_end=period.end,
        period_start_utc=period.start_utc,
        period_end_utc=period.end_utc,
        records=sum(r["records"] for r in summary),
        uninvoiced=sum(r["uninvoiced"] for r in summary),
        services=[
            ServiceUsage(
                service=r["service"],
                unit=r["unit"],
                records=r["records"],
                uninvoiced=r["uninvoiced"],
                billed_quantity=plain(r["billed_quantity"]),
                chargeable_quantity=plain(r["chargeable_quantity"]),
                amount=rated(r["amount"], r["currency"]),
            )
            for r in summary
        ],
        pending_adjustments=await repo.pending_adjustments(session, principal.tenant, account_id),
        subscriptions=[
            KnownSubscription(
                subscription_id=s["id"],
                plan_id=s["plan_id"],
                start_date=s["start_date"],
                plan=(
                    KnownPlan(
                        code=p["code"], name=p["name"], currency=p["currency"],
                        recurring_fee=rated(p["recurring_fee"], p["currency"]).amount,
                        version=p["version"],
                    )
                    if (p := plans.get(s["plan_id"])) is not None
                    else None
                ),
            )
            for s in subs
        ],
    )
