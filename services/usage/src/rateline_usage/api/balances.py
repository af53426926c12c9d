"""Allowance balances: what is granted, used and left in the billing cycle containing an instant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from rateline_rating.units import MEASURED_PER_UNIT
from rateline_shared.db import utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound, Unprocessable, field_error
from rateline_usage import repository as repo
from rateline_usage.api.deps import Read, Session
from rateline_usage.api.schemas import AllowanceBalance, BalanceDisplay, BalanceList
from rateline_usage.domain.allowances import OWNER_ACCOUNT, AllowanceView, BalanceKey, balance_now, in_unit
from rateline_usage.domain.guiding import (
    Directory,
    PlanVersionView,
    SubscriptionView,
    balance_key,
    previous_cycle_of,
    subscription_start,
)
from rateline_usage.domain.rating import QUANTITY_UNITS

router = APIRouter(prefix="/v1/usage", tags=["usage balances"], responses=PROBLEM_RESPONSES)


@router.get("/balances", response_model=BalanceList, summary="Allowance balances")
async def get_balances(
    principal: Read,
    session: Session,
    account_id: Annotated[str | None, Query(max_length=36, description="Every subscription of the account")] = None,
    subscription_id: Annotated[str | None, Query(max_length=36)] = None,
    line_id: Annotated[str | None, Query(max_length=36, description="The line's subscriptions")] = None,
    at: Annotated[
        AwareDatetime | None, Query(description="An instant (with offset) of the cycle to show; default now")
    ] = None,
) -> BalanceList:
    """The allowance balances of the account's billing cycle that contains ``at`` (default now).

    Give ``account_id``, ``subscription_id`` and/or ``line_id`` (all given must agree). Each
    allowance of the plan version in force at ``at`` is listed once per owner: the subscription,
    or the account for a ``pooled`` allowance (shared by the account's lines on that plan). A
    balance not touched yet in that cycle is listed with ``used`` 0 and the ``granted`` it will
    have (quantity + rollover from the previous cycle, up to the rollover cap). Quantities are in
    the service's base unit (``second``, ``message``, ``byte``); ``display`` repeats them in the
    allowance's own unit (minute, MB, ...). 404 when a given account, subscription or line is
    unknown; 422 without any filter.
    """
    if account_id is None and subscription_id is None and line_id is None:
        raise Unprocessable(
            "give account_id, subscription_id or line_id",
            errors=[field_error("account_id", "one of account_id, subscription_id, line_id is required",
                                "missing", "query")],
            slug="validation-error",
            title="Validation failed",
        )
    tenant = principal.tenant
    instant: datetime = at or utcnow()
    found = await repo.subscriptions_for_balances(
        session, tenant, account_id=account_id, subscription_id=subscription_id, line_id=line_id
    )
    for name, value, known in (
        ("account", account_id, found.account_known),
        ("subscription", subscription_id, found.subscription_known),
        ("line", line_id, found.line_known),
    ):
        if value is not None and not known:
            raise NotFound(f"{name} {value} is not known to usage")
    plans = await repo.load_plans(session, tenant, {s["plan_id"] for s in found.subscriptions})
    directory = Directory(plans=plans, accounts=found.accounts)
    wanted: dict[BalanceKey, tuple[AllowanceView, PlanVersionView, SubscriptionView]] = {}
    cycles = {}
    for found_row in found.subscriptions:
        sub = SubscriptionView(
            found_row["id"], found_row["account_id"], found_row["line_id"] or "", found_row["plan_id"],
            found_row["start_date"], found_row["activated_at"],
        )
        account = found.accounts.get(sub.account_id)
        book = plans.get(sub.plan_id)
        if account is None or book is None or subscription_start(sub, account) > instant:
            continue
        version = directory.version_for(book, sub, account, instant)
        if version is None:
            continue
        cycle = directory.cycle_of(account, instant)
        for allowance in version.allowances:
            key = balance_key(allowance, sub, cycle)
            if key not in wanted:
                wanted[key] = (allowance, version, sub)
                cycles[key] = (cycle, previous_cycle_of(account, cycle))
    previous = {key: key._replace(period_start=cycles[key][1].start) for key in wanted}
    rows = await repo.select_balances(session, tenant, [*wanted, *previous.values()])
    items = []
    for key, (allowance, version, sub) in wanted.items():
        row, before = rows.get(key), rows.get(previous[key])
        granted, rollover, used = balance_now(
            allowance,
            (row["granted"], row["rollover"], row["used"]) if row else None,
            (before["granted"], before["used"]) if before else None,
        )
        remaining = max(granted - used, granted * 0)
        per = MEASURED_PER_UNIT.get(allowance.unit, 1)
        pooled = key.owner_kind == OWNER_ACCOUNT
        items.append(
            AllowanceBalance(
                allowance_code=allowance.code,
                service=allowance.service,
                pooled=pooled,
                owner="account" if pooled else "subscription",
                subscription_id=None if pooled else sub.subscription_id,
                account_id=sub.account_id,
                plan_id=sub.plan_id,
                plan_version=version.version,
                period_start=cycles[key][0].start,
                period_end=cycles[key][0].end,
                granted=granted,
                rollover=rollover,
                used=used,
                remaining=remaining,
                unit=QUANTITY_UNITS[allowance.service],
                display=BalanceDisplay(
                    unit=allowance.unit,
                    granted=in_unit(granted, per),
                    rollover=in_unit(rollover, per),
                    used=in_unit(used, per),
                    remaining=in_unit(remaining, per),
                ),
            )
        )
    return BalanceList(at=instant, items=items)
