"""Conversions between request bodies, domain drafts, stored rows and the contract models.

A version's components are stored in the event contract's shape
(``rateline_shared.events.payloads``), so the row, the API response and the
``catalog.plan_version.published`` payload can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping

from rateline_catalog.api.schemas import ComponentsIn, Plan, PlanVersion
from rateline_catalog.domain.plans import (
    AllowanceDraft,
    Components,
    OneTimeChargeDraft,
    RateDraft,
    SpendCapDraft,
    TariffRefDraft,
    TierDraft,
)
from rateline_rating.versions import VersionRef, version_at_start
from rateline_shared.events.payloads import (
    Allowance,
    OneTimeCharge,
    PlanPublished,
    PlanVersionPublished,
    SpendCap,
    TariffRef,
    Tier,
    UsageRate,
)
from rateline_shared.money import MoneyModel


def components_draft(body: ComponentsIn) -> Components:
    return Components(
        recurring_fee=body.recurring_fee,
        billing_period=body.billing_period,
        billing_timing=body.billing_timing,
        one_time_charges=tuple(
            OneTimeChargeDraft(c.code, c.description, c.amount) for c in body.one_time_charges
        ),
        rates=tuple(
            RateDraft(
                service=r.service,
                unit=r.unit,
                price=r.price,
                first_increment=r.first_increment,
                increment=r.increment,
                pricing=r.pricing,
                tiers=tuple(TierDraft(t.up_to, t.unit_price, t.flat_fee) for t in r.tiers),
                package_size=r.package_size,
                minimum_charge=r.minimum_charge,
                tariff=TariffRefDraft(r.tariff.category, r.tariff.subject) if r.tariff else None,
            )
            for r in body.rates
        ),
        allowances=tuple(
            AllowanceDraft(
                code=a.code,
                service=a.service,
                quantity=a.quantity,
                unit=a.unit,
                destinations=tuple(a.destinations),
                pooled=a.pooled,
                rollover_cap=a.rollover_cap,
                thresholds=tuple(a.thresholds),
            )
            for a in body.allowances
        ),
        spend_cap=SpendCapDraft(body.spend_cap.amount, tuple(body.spend_cap.thresholds))
        if body.spend_cap
        else None,
    )


def usage_rate(r: RateDraft) -> UsageRate:
    return UsageRate(
        service=r.service,
        unit=r.unit,
        price=r.price if r.price is not None else Decimal(0),
        first_increment=r.first_increment,
        increment=r.increment,
        pricing=r.pricing,
        tiers=[Tier(up_to=t.up_to, unit_price=t.unit_price, flat_fee=t.flat_fee) for t in r.tiers],
        package_size=r.package_size,
        minimum_charge=r.minimum_charge,
        tariff=TariffRef(category=r.tariff.category, subject=r.tariff.subject) if r.tariff else None,
    )


def version_values(
    *,
    tenant: str,
    plan_id: str,
    version: int,
    effective_from: datetime,
    components: Components,
    now: datetime,
) -> dict[str, Any]:
    """The row of a new version (components as JSON in the contract's shape)."""
    c = components
    return {
        "plan_id": plan_id,
        "version": version,
        "tenant": tenant,
        "effective_from": effective_from,
        "recurring_fee": c.recurring_fee,
        "billing_period": c.billing_period,
        "billing_timing": c.billing_timing,
        "one_time_charges": [
            OneTimeCharge(code=o.code, description=o.description, amount=o.amount).model_dump(mode="json")
            for o in c.one_time_charges
        ],
        "rates": [usage_rate(r).model_dump(mode="json") for r in c.rates],
        "allowances": [
            Allowance(
                code=a.code,
                service=a.service,
                quantity=a.quantity,
                unit=a.unit,
                destinations=list(a.destinations),
                pooled=a.pooled,
                rollover_cap=a.rollover_cap,
                thresholds=list(a.thresholds),
            ).model_dump(mode="json")
            for a in c.allowances
        ],
        "spend_cap": SpendCap(amount=c.spend_cap.amount, thresholds=list(c.spend_cap.thresholds)).model_dump(
            mode="json"
        )
        if c.spend_cap
        else None,
        "published_at": now,
        "created_at": now,
    }


def rates_of(row: RowMapping) -> list[UsageRate]:
    return [UsageRate.model_validate(r) for r in row["rates"]]


def version_view(row: RowMapping, currency: str) -> PlanVersion:
    return PlanVersion(
        plan_id=row["plan_id"],
        version=row["version"],
        effective_from=row["effective_from"],
        currency=currency,
        recurring_fee=MoneyModel(amount=row["recurring_fee"], currency=currency),
        billing_period=row["billing_period"],
        billing_timing=row["billing_timing"],
        one_time_charges=[OneTimeCharge.model_validate(o) for o in row["one_time_charges"]],
        rates=rates_of(row),
        allowances=[Allowance.model_validate(a) for a in row["allowances"]],
        spend_cap=SpendCap.model_validate(row["spend_cap"]) if row["spend_cap"] else None,
        published_at=row["published_at"],
    )


def refs(rows: Sequence[RowMapping]) -> list[VersionRef]:
    return [VersionRef(r["version"], r["effective_from"]) for r in rows]


def current(rows: Sequence[RowMapping], now: datetime) -> RowMapping:
    """The version in force now (the latest started; the first while none has)."""
    number = version_at_start(refs(rows), now)
    return next(r for r in rows if r["version"] == number)


def plan_view(row: RowMapping, versions: Sequence[RowMapping], now: datetime) -> Plan:
    version = version_view(current(versions, now), row["currency"])
    return Plan(
        id=row["id"],
        code=row["code"],
        name=row["name"],
        product_id=row["product_id"],
        currency=row["currency"],
        recurring_fee=version.recurring_fee,
        billing_period=version.billing_period,
        rates=version.rates,
        status=row["status"],
        published_at=row["published_at"],
        created_at=row["created_at"],
        current_version=version,
    )


def version_published(plan: RowMapping, version: PlanVersion) -> PlanVersionPublished:
    return PlanVersionPublished(
        plan_id=plan["id"],
        code=plan["code"],
        name=plan["name"],
        product_id=plan["product_id"],
        currency=plan["currency"],
        version=version.version,
        effective_from=version.effective_from,
        recurring_fee=version.recurring_fee.amount,
        billing_period=version.billing_period,
        billing_timing=version.billing_timing,
        one_time_charges=version.one_time_charges,
        rates=version.rates,
        allowances=version.allowances,
        spend_cap=version.spend_cap,
        published_at=version.published_at,
    )


def plan_published(plan: RowMapping, version: PlanVersion) -> PlanPublished:
    return PlanPublished(
        plan_id=plan["id"],
        code=plan["code"],
        name=plan["name"],
        currency=plan["currency"],
        recurring_fee=version.recurring_fee.amount,
        billing_period=version.billing_period,
        rates=version.rates,
        published_at=version.published_at,
    )
