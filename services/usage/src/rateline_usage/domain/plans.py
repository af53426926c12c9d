"""Plan versions as guiding reads them, from the catalog's payloads (``UsageRate``,
``Allowance``, ``SpendCap`` as stored in the projection). Pure: quantities are converted to the
service's base unit (seconds, messages, bytes) once, here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from rateline_rating.units import MEASURED_PER_UNIT, to_measured
from rateline_shared.events.payloads import Allowance, SpendCap, UsageRate
from rateline_usage.domain.allowances import AllowanceView
from rateline_usage.domain.guiding import PlanVersionView, SpendCapView
from rateline_usage.domain.rating import Rate, TariffRef


def rate_view(raw: Mapping[str, Any]) -> Rate:
    r = UsageRate.model_validate(raw)
    return Rate(
        service=r.service,
        unit=r.unit,
        price=r.price,
        first_increment=r.first_increment,
        increment=r.increment,
        pricing=r.pricing,
        tariff=TariffRef(r.tariff.category, r.tariff.subject) if r.tariff else None,
    )


def _base(quantity: Decimal, unit: str) -> Decimal:
    return to_measured(quantity, unit) if unit in MEASURED_PER_UNIT else quantity


def allowance_view(raw: Mapping[str, Any]) -> AllowanceView:
    a = Allowance.model_validate(raw)
    return AllowanceView(
        code=a.code,
        service=a.service,
        quantity=_base(a.quantity, a.unit),
        unit=a.unit,
        destinations=tuple(d.lstrip("+") for d in a.destinations),
        pooled=a.pooled,
        rollover_cap=_base(a.rollover_cap, a.unit) if a.rollover_cap is not None else None,
        thresholds=tuple(a.thresholds),
    )


def version_view(
    *,
    plan_id: str,
    version: int,
    effective_from: datetime,
    currency: str,
    code: str,
    rates: Iterable[Mapping[str, Any]],
    allowances: Iterable[Mapping[str, Any]] = (),
    spend_cap: Mapping[str, Any] | None = None,
) -> PlanVersionView:
    cap = SpendCap.model_validate(spend_cap) if spend_cap else None
    return PlanVersionView(
        plan_id=plan_id,
        version=version,
        effective_from=effective_from,
        currency=currency,
        code=code,
        rates={r.service: r for r in map(rate_view, rates)},
        allowances=tuple(map(allowance_view, allowances)),
        spend_cap=SpendCapView(cap.amount, tuple(cap.thresholds)) if cap else None,
    )
