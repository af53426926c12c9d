"""Subscriptions of accounts (and optionally one line) to plans."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_customer import repository as repo
from rateline_customer.api.schemas import Subscription, SubscriptionCreate, SubscriptionPage
from rateline_customer.events import SERVICE, SUBSCRIPTION_ACTIVATED
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound, Unprocessable, field_error
from rateline_shared.events import new_event, publish_in_transaction
from rateline_shared.events.payloads import SubscriptionActivated

router = APIRouter(prefix="/v1", tags=["subscriptions"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("customers:read"))]
Write = Annotated[Principal, Depends(require_scope("customers:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def field_problem(field: str, message: str) -> Unprocessable:
    return Unprocessable(message, errors=[field_error(field, message, "invalid")])


@router.post("/subscriptions", status_code=status.HTTP_201_CREATED, response_model=Subscription)
async def create_subscription(body: SubscriptionCreate, principal: Write, session: Session) -> Subscription:
    """Subscribe an account (and a line of it) to a published plan in the account's currency."""
    account = await repo.get(session, repo.accounts, principal.tenant, body.account_id)
    if account is None:
        raise field_problem("account_id", f"account {body.account_id} not found")
    plan = await repo.get_plan(session, principal.tenant, body.plan_id)
    if plan is None:
        raise field_problem("plan_id", f"plan {body.plan_id} is not a published plan")
    if plan["currency"] != account["currency"]:
        raise Unprocessable(
            f"plan {plan['code']} is priced in {plan['currency']} but the account bills in "
            f"{account['currency']}",
            slug="currency-mismatch",
            title="Currency mismatch",
        )
    if body.line_id is not None:
        line = await repo.get(session, repo.lines, principal.tenant, body.line_id)
        if line is None or line["account_id"] != body.account_id:
            raise field_problem("line_id", f"line {body.line_id} is not a line of this account")
    now = utcnow()
    row = await repo.insert_row(
        session,
        repo.subscriptions,
        {
            "id": str(uuid.uuid4()),
            "tenant": principal.tenant,
            "account_id": body.account_id,
            "line_id": body.line_id,
            "plan_id": body.plan_id,
            "start_date": body.start_date,
            "status": "active",
            "created_at": now,
        },
    )
    sub = Subscription.model_validate(dict(row))
    payload = SubscriptionActivated(
        subscription_id=sub.id, account_id=sub.account_id, line_id=sub.line_id,
        plan_id=sub.plan_id, start_date=sub.start_date, activated_at=now,
    )
    await publish_in_transaction(
        session,
        new_event(service=SERVICE, type=SUBSCRIPTION_ACTIVATED, tenant=principal.tenant, subject=sub.id, data=payload),
    )
    return sub


@router.get("/subscriptions", response_model=SubscriptionPage)
async def list_subscriptions(
    principal: Read,
    session: Session,
    account_id: str | None = None,
    line_id: str | None = None,
    plan_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SubscriptionPage:
    rows, nxt = await repo.list_page(
        session, repo.subscriptions, principal.tenant, cursor=cursor, limit=limit,
        filters={"account_id": account_id, "line_id": line_id, "plan_id": plan_id},
    )
    return SubscriptionPage(items=[Subscription.model_validate(dict(r)) for r in rows], next_cursor=nxt)


@router.get("/subscriptions/{subscription_id}", response_model=Subscription)
async def get_subscription(subscription_id: str, principal: Read, session: Session) -> Subscription:
    row = await repo.get(session, repo.subscriptions, principal.tenant, subscription_id)
    if row is None:
        raise NotFound(f"subscription {subscription_id} not found")
    return Subscription.model_validate(dict(row))
