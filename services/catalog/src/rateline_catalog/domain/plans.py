"""Plan validation as pure functions.

A plan has a recurring fee and at most one usage rate per service. Every rule lives here, so
the HTTP layer only maps :class:`PlanInvalid` to a 422 problem and the rules are unit-tested
on their own. The functions collect *all* issues of a draft instead of stopping at the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from rateline_shared.money import is_currency

# Which services can be rated, and the one unit each is priced in.
SERVICE_UNITS: dict[str, str] = {"voice": "minute", "sms": "message"}
# Services whose rates have rating increments (seconds). Others must keep the neutral 1/1.
SERVICES_WITH_INCREMENTS = frozenset({"voice"})
BILLING_PERIODS = frozenset({"monthly"})
STATUS_PUBLISHED = "published"

# Bounds of an amount (fee or price): at most 6 decimals (sub-cent prices such as 0.0125 per
# minute fit) and at most 14 digits before the point.
MAX_DECIMALS = 6
MAX_INTEGER_DIGITS = 14
MAX_INCREMENT_SECONDS = 3600
CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with a draft: where (dotted field path), a stable code, a message."""

    field: str
    code: str
    message: str


class PlanInvalid(ValueError):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{i.field}: {i.message}" for i in issues))
        self.issues = issues


@dataclass(frozen=True, slots=True)
class RateDraft:
    service: str
    unit: str
    price: Decimal
    first_increment: int = 1
    increment: int = 1


@dataclass(frozen=True, slots=True)
class PlanDraft:
    code: str
    name: str
    currency: str
    recurring_fee: Decimal
    billing_period: str
    rates: tuple[RateDraft, ...] = field(default_factory=tuple)


def check_amount(path: str, value: Decimal) -> list[Issue]:
    """An amount is a finite decimal >= 0 with at most MAX_DECIMALS decimals."""
    if not value.is_finite():
        return [Issue(path, "invalid-amount", "must be a finite decimal")]
    issues: list[Issue] = []
    if value < 0:
        issues.append(Issue(path, "negative-amount", "must be zero or more"))
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -MAX_DECIMALS and value != value.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):
        issues.append(Issue(path, "too-many-decimals", f"at most {MAX_DECIMALS} decimals"))
    if abs(value) >= Decimal(10) ** MAX_INTEGER_DIGITS:
        issues.append(
            Issue(path, "amount-too-large", f"at most {MAX_INTEGER_DIGITS} digits before the point")
        )
    return issues


def check_code(code: str) -> list[Issue]:
    if not CODE_PATTERN.match(code):
        return [
            Issue(
                "code",
                "invalid-code",
                "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        ]
    return []


def check_rate(index: int, rate: RateDraft) -> list[Issue]:
    path = f"rates.{index}"
    expected_unit = SERVICE_UNITS.get(rate.service)
    if expected_unit is None:
        known = ", ".join(sorted(SERVICE_UNITS))
        return [Issue(f"{path}.service", "unknown-service", f"must be one of: {known}")]
    issues: list[Issue] = []
    if rate.unit != expected_unit:
        issues.append(
            Issue(f"{path}.unit", "wrong-unit", f"{rate.service} is priced per {expected_unit}")
        )
    issues += check_amount(f"{path}.price", rate.price)
    for name in ("first_increment", "increment"):
        value: int = getattr(rate, name)
        if rate.service in SERVICES_WITH_INCREMENTS:
            if not 1 <= value <= MAX_INCREMENT_SECONDS:
                issues.append(
                    Issue(
                        f"{path}.{name}",
                        "invalid-increment",
                        f"must be between 1 and {MAX_INCREMENT_SECONDS} seconds",
                    )
                )
        elif value != 1:
            issues.append(
                Issue(f"{path}.{name}", "invalid-increment", f"{rate.service} has no increments")
            )
    return issues


def check_rates(rates: tuple[RateDraft, ...]) -> list[Issue]:
    """Each rate valid on its own, and each service at most once."""
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, rate in enumerate(rates):
        issues += check_rate(index, rate)
        if rate.service in seen:
            issues.append(
                Issue(
                    f"rates.{index}.service",
                    "duplicate-service",
                    f"the plan already has a {rate.service} rate",
                )
            )
        seen.add(rate.service)
    return issues


def check_plan(draft: PlanDraft) -> list[Issue]:
    """Every issue of a plan draft (empty when it can be published)."""
    issues = check_code(draft.code)
    if not draft.name.strip():
        issues.append(Issue("name", "blank", "must not be blank"))
    if not is_currency(draft.currency):
        issues.append(Issue("currency", "unknown-currency", "must be an ISO 4217 currency code"))
    issues += check_amount("recurring_fee", draft.recurring_fee)
    if draft.billing_period not in BILLING_PERIODS:
        allowed = ", ".join(sorted(BILLING_PERIODS))
        issues.append(Issue("billing_period", "unknown-period", f"must be one of: {allowed}"))
    issues += check_rates(draft.rates)
    return issues


def validate_plan(draft: PlanDraft) -> PlanDraft:
    """Return the draft when it is valid; raise :class:`PlanInvalid` with all issues otherwise."""
    issues = check_plan(draft)
    if issues:
        raise PlanInvalid(issues)
    return draft
