"""What the usage projections know about a number (for operators and for tests)."""

from __future__ import annotations

from fastapi import APIRouter

from rateline_shared.db import utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound
from rateline_usage import repository as repo
from rateline_usage.api.deps import Read, Session, Settings
from rateline_usage.api.schemas import Rate, Subscriber, TariffRefOut
from rateline_usage.domain.mediation import normalise_msisdn

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=PROBLEM_RESPONSES)


@router.get("/subscribers/{msisdn}", response_model=Subscriber, summary="Look up a number")
async def get_subscriber(msisdn: str, principal: Read, session: Session, settings: Settings) -> Subscriber:
    """The line, account, latest subscription and the plan version in force now for this number.

    404 when no line with this number has reached the usage service (records for it are
    rejected as ``unknown-line``). ``plan_code``/``currency`` stay null until the plan's
    publication has arrived, ``account_currency`` until the account's.
    """
    number = normalise_msisdn(msisdn, settings.default_country)
    found = await repo.find_subscriber(session, principal.tenant, number, utcnow()) if number else None
    if found is None:
        raise NotFound(f"no line with number {number or msisdn} is known to usage")
    line, sub, plan, account = found.line, found.subscription, found.plan, found.account
    return Subscriber(
        msisdn=line["msisdn"],
        line_id=line["id"],
        account_id=line["account_id"],
        activated_at=line["activated_at"],
        subscription_id=sub["id"] if sub else None,
        plan_id=sub["plan_id"] if sub else None,
        start_date=sub["start_date"] if sub else None,
        plan_code=plan.code if plan else None,
        plan_version=plan.version if plan else None,
        currency=plan.currency if plan else None,
        rates=[
            Rate(
                service=r.service, unit=r.unit, price=r.price, first_increment=r.first_increment,
                increment=r.increment, pricing=r.pricing,
                tariff=TariffRefOut(category=r.tariff.category, subject=r.tariff.subject) if r.tariff else None,
            )
            for r in plan.rates.values()
        ]
        if plan
        else [],
        account_currency=account["currency"] if account else None,
        timezone=account["timezone"] if account else None,
    )
