"""Plans: created and published in one step, listed and read back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog import repository as repo
from rateline_catalog.api.schemas import Plan, PlanCreate, PlanPage, Rate
from rateline_catalog.domain.plans import (
    STATUS_PUBLISHED,
    PlanDraft,
    PlanInvalid,
    RateDraft,
    validate_plan,
)
from rateline_catalog.events import PLAN_PUBLISHED, SERVICE
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, Conflict, NotFound, Unprocessable, field_error
from rateline_shared.events import new_event, publish_in_transaction
from rateline_shared.events.payloads import PlanPublished, UsageRate
from rateline_shared.money import MoneyModel

router = APIRouter(prefix="/v1", tags=["plans"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("catalog:read"))]
Write = Annotated[Principal, Depends(require_scope("catalog:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def _draft(body: PlanCreate) -> PlanDraft:
    return PlanDraft(
        code=body.code,
        name=body.name,
        currency=body.currency,
        recurring_fee=body.recurring_fee,
        billing_period=body.billing_period,
        rates=tuple(
            RateDraft(r.service, r.unit, r.price, r.first_increment, r.increment)
            for r in body.rates
        ),
    )


def _plan(row: RowMapping, rates: Sequence[RowMapping]) -> Plan:
    return Plan(
        id=row["id"],
        code=row["code"],
        name=row["name"],
        currency=row["currency"],
        recurring_fee=MoneyModel(amount=row["recurring_fee"], currency=row["currency"]),
        billing_period=row["billing_period"],
        rates=[
            Rate(
                service=r["service"],
                unit=r["unit"],
                price=r["price"],
                first_increment=r["first_increment"],
                increment=r["increment"],
            )
            for r in rates
        ],
        status=row["status"],
        published_at=row["published_at"],
        created_at=row["created_at"],
    )


@router.post(
    "/plans",
    status_code=status.HTTP_201_CREATED,
    response_model=Plan,
    summary="Create and publish a plan",
)
async def create_plan(body: PlanCreate, principal: Write, session: Session) -> Plan:
    """Create a plan and publish it at once (status ``published``).

    A plan has a recurring fee per billing period and at most one usage rate per service:
    ``voice`` priced per ``minute`` with rating increments in seconds (``60``/``60`` bills
    every started minute), ``sms`` priced per ``message``. Amounts are decimal strings >= 0.
    The code is unique per tenant (409 otherwise). ``catalog.plan.published`` is emitted in
    the same transaction.
    """
    try:
        draft = validate_plan(_draft(body))
    except PlanInvalid as err:
        raise Unprocessable(
            "the plan is not valid",
            errors=[
                field_error(i.field, i.message, i.code)
                for i in err.issues
            ],
        ) from err
    now = utcnow()
    plan_id = str(uuid.uuid4())
    rates = [
        {
            "service": r.service,
            "unit": r.unit,
            "price": r.price,
            "first_increment": r.first_increment,
            "increment": r.increment,
        }
        for r in draft.rates
    ]
    row = await repo.insert_plan(
        session,
        {
            "id": plan_id,
            "tenant": principal.tenant,
            "code": draft.code,
            "name": draft.name,
            "currency": draft.currency,
            "recurring_fee": draft.recurring_fee,
            "billing_period": draft.billing_period,
            "status": STATUS_PUBLISHED,
            "published_at": now,
            "created_at": now,
        },
        rates,
    )
    if row is None:
        message = f"a plan with code {draft.code!r} already exists"
        raise Conflict(
            message,
            errors=[field_error("code", message, "taken")],
        )
    plan = _plan(row, (await repo.rates_of(session, principal.tenant, [plan_id])).get(plan_id, []))
    payload = PlanPublished(
        plan_id=plan.id,
        code=plan.code,
        name=plan.name,
        currency=plan.currency,
        recurring_fee=plan.recurring_fee.amount,
        billing_period=plan.billing_period,
        rates=[UsageRate(**r.model_dump()) for r in plan.rates],
        published_at=now,
    )
    await publish_in_transaction(
        session,
        new_event(
            service=SERVICE,
            type=PLAN_PUBLISHED,
            tenant=principal.tenant,
            subject=plan.id,
            data=payload,
        ),
    )
    return plan


@router.get("/plans", response_model=PlanPage, summary="List plans")
async def list_plans(
    principal: Read,
    session: Session,
    code: Annotated[str | None, Query(description="Only the plan with this code")] = None,
    status_: Annotated[str | None, Query(alias="status", description="e.g. published")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PlanPage:
    """The tenant's plans, oldest first, with their rates (cursor pagination)."""
    rows, nxt = await repo.list_plans(
        session,
        principal.tenant,
        cursor=cursor,
        limit=limit,
        filters={"code": code, "status": status_},
    )
    rates = await repo.rates_of(session, principal.tenant, [r["id"] for r in rows])
    return PlanPage(items=[_plan(r, rates.get(r["id"], [])) for r in rows], next_cursor=nxt)


@router.get("/plans/{plan_id}", response_model=Plan, summary="Get a plan")
async def get_plan(plan_id: str, principal: Read, session: Session) -> Plan:
    """One plan of the tenant with its rates (404 if it does not exist for this tenant)."""
    row = await repo.get_plan(session, principal.tenant, plan_id)
    if row is None:
        raise NotFound(f"plan {plan_id} not found")
    rates = await repo.rates_of(session, principal.tenant, [plan_id])
    return _plan(row, rates.get(plan_id, []))
