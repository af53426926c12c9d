"""Plan, plan-version and migration validation as pure functions.

A plan is a code, a name and a currency; what it charges lives in its *versions*. Each version
holds every component (recurring fee, billing period and timing, one-time charges, usage rates
per service, allowances, a spend cap) and applies from its ``effective_from`` on. Versions are
never changed after creation: a new price is a new version.

Every rule lives here, so the HTTP layer only maps :class:`PlanInvalid` to a 422 problem and the
rules are unit-tested on their own. The functions collect *all* issues of a draft instead of
stopping at the first. Field paths are the request body's (``rates.0.tiers.1.up_to``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from rateline_rating.units import MEASURED_UNITS, PRICED_UNITS
from rateline_shared.money import is_currency

# Which services can be rated, and the units each may be priced in (minute | second, message,
# KB | MB | GB: data units are 1024-based, see rateline_rating.units).
SERVICES: tuple[str, ...] = tuple(sorted(PRICED_UNITS))
SERVICE_UNITS: dict[str, frozenset[str]] = PRICED_UNITS
# Services whose rating increments are in a measured unit (voice: seconds, data: bytes). The
# others (sms, mms) are counted per message and keep the neutral increments 1/1.
MAX_INCREMENT: dict[str, int] = {"voice": 3600, "data": 1024**3}
BILLING_PERIODS = frozenset({"monthly", "quarterly", "yearly"})
BILLING_TIMINGS = frozenset({"advance", "arrears"})
STATUS_PUBLISHED = "published"

PER_UNIT, TARIFF, GRADUATED, VOLUME, PACKAGE = "per_unit", "tariff", "graduated", "volume", "package"
PRICINGS = (PER_UNIT, TARIFF, GRADUATED, VOLUME, PACKAGE)
TIERED = frozenset({GRADUATED, VOLUME})
# Priced at invoice time over the period's quantity (a minimum charge makes sense only there).
INVOICE_TIME = frozenset({GRADUATED, VOLUME, PACKAGE})
LINE_SUBJECT = "*line"  # a TariffRef subject: the line's E.164 number without "+"

# Bounds of an amount (fee or price): at most 6 decimals (sub-cent prices such as 0.0125 per
# minute fit) and at most 14 digits before the point.
MAX_DECIMALS = 6
MAX_INTEGER_DIGITS = 14
MAX_INCREMENT_SECONDS = MAX_INCREMENT["voice"]
MAX_TIERS = 20
MAX_ALLOWANCES = 20
MAX_ONE_TIME_CHARGES = 20
MAX_DESTINATIONS = 200
MAX_SUBSCRIPTIONS_PER_MIGRATION = 10_000
# A new version or migration may start this long before "now" (clients' clocks drift); any
# earlier would rewrite what has already been rated or invoiced.
CLOCK_SKEW = timedelta(seconds=60)

CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DESTINATION_PATTERN = re.compile(r"^[0-9]{1,15}$")
TARIFF_NAME_PATTERN = re.compile(r"^[^\s,]{1,64}$")


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
class TierDraft:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class TariffRefDraft:
    category: str
    subject: str


@dataclass(frozen=True, slots=True)
class RateDraft:
    service: str
    unit: str
    price: Decimal | None = None
    first_increment: int = 1
    increment: int = 1
    pricing: str = PER_UNIT
    tiers: tuple[TierDraft, ...] = ()
    package_size: Decimal | None = None
    minimum_charge: Decimal | None = None
    tariff: TariffRefDraft | None = None


@dataclass(frozen=True, slots=True)
class AllowanceDraft:
    code: str
    service: str
    quantity: Decimal
    unit: str
    destinations: tuple[str, ...] = ()
    pooled: bool = False
    rollover_cap: Decimal | None = None
    thresholds: tuple[int, ...] = (80, 100)


@dataclass(frozen=True, slots=True)
class OneTimeChargeDraft:
    code: str
    description: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class SpendCapDraft:
    amount: Decimal
    thresholds: tuple[int, ...] = (80, 100)


@dataclass(frozen=True, slots=True)
class Components:
    """Everything one plan version charges."""

    recurring_fee: Decimal
    billing_period: str = "monthly"
    billing_timing: str = "advance"
    one_time_charges: tuple[OneTimeChargeDraft, ...] = ()
    rates: tuple[RateDraft, ...] = ()
    allowances: tuple[AllowanceDraft, ...] = ()
    spend_cap: SpendCapDraft | None = None


@dataclass(frozen=True, slots=True)
class PlanDraft:
    code: str
    name: str
    currency: str
    components: Components = field(default_factory=lambda: Components(Decimal(0)))


# --- single values ---------------------------------------------------------------------------
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


def check_positive(path: str, value: Decimal) -> list[Issue]:
    """An amount (as :func:`check_amount`) that must also be more than zero."""
    issues = check_amount(path, value)
    if not issues and value == 0:
        issues.append(Issue(path, "not-positive", "must be more than zero"))
    return issues


def _code_issue(path: str, code: str) -> list[Issue]:
    if not CODE_PATTERN.match(code):
        return [
            Issue(
                path,
                "invalid-code",
                "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        ]
    return []


def check_code(code: str) -> list[Issue]:
    return _code_issue("code", code)


def check_thresholds(path: str, thresholds: Sequence[int]) -> list[Issue]:
    """Percentages 1..100, strictly ascending (so each is unique)."""
    issues: list[Issue] = []
    for i, value in enumerate(thresholds):
        if not 1 <= value <= 100:
            issues.append(Issue(f"{path}.{i}", "invalid-threshold", "must be a percentage 1..100"))
    if any(b <= a for a, b in pairwise(thresholds)):
        issues.append(
            Issue(path, "thresholds-not-ascending", "must be strictly ascending (each at most once)")
        )
    return issues


# --- usage rates ------------------------------------------------------------------------------
def check_increments(path: str, rate: RateDraft) -> list[Issue]:
    """voice: seconds 1..3600; data: bytes 1..1 GiB; sms/mms: always 1."""
    issues: list[Issue] = []
    limit = MAX_INCREMENT.get(rate.service)
    measured = MEASURED_UNITS.get(rate.service, "unit")
    for name in ("first_increment", "increment"):
        value: int = getattr(rate, name)
        if limit is not None:
            if not 1 <= value <= limit:
                issues.append(
                    Issue(
                        f"{path}.{name}",
                        "invalid-increment",
                        f"must be between 1 and {limit} ({measured}s)",
                    )
                )
        elif value != 1:
            issues.append(
                Issue(f"{path}.{name}", "invalid-increment", f"{rate.service} has no increments (1)")
            )
    return issues


def check_tiers(path: str, tiers: Sequence[TierDraft]) -> list[Issue]:
    """Tiers of graduated/volume pricing: ``up_to`` strictly increasing, only the last open."""
    if not tiers:
        return [Issue(path, "missing-tiers", "graduated and volume pricing need at least one tier")]
    issues: list[Issue] = []
    if len(tiers) > MAX_TIERS:
        issues.append(Issue(path, "too-many-tiers", f"at most {MAX_TIERS} tiers"))
    previous: Decimal | None = None
    for i, tier in enumerate(tiers):
        tp = f"{path}.{i}"
        last = i == len(tiers) - 1
        issues += check_amount(f"{tp}.unit_price", tier.unit_price)
        issues += check_amount(f"{tp}.flat_fee", tier.flat_fee)
        if tier.up_to is None:
            if not last:
                issues.append(
                    Issue(f"{tp}.up_to", "open-tier-not-last", "only the last tier may be open (up_to null)")
                )
            continue
        if last:
            issues.append(
                Issue(f"{tp}.up_to", "last-tier-bounded", "the last tier must be open (up_to null)")
            )
        bound_issues = check_positive(f"{tp}.up_to", tier.up_to)
        issues += bound_issues
        if not bound_issues:
            if previous is not None and tier.up_to <= previous:
                issues.append(
                    Issue(
                        f"{tp}.up_to",
                        "tiers-not-increasing",
                        "up_to must be more than the previous tier's",
                    )
                )
            previous = tier.up_to
    return issues


def check_tariff_ref(path: str, ref: TariffRefDraft) -> list[Issue]:
    issues: list[Issue] = []
    for name in ("category", "subject"):
        value: str = getattr(ref, name)
        if not TARIFF_NAME_PATTERN.match(value):
            issues.append(
                Issue(f"{path}.{name}", "invalid-tariff-ref", "1-64 characters, no spaces or commas")
            )
    return issues


def _unused(path: str, name: str, pricing: str) -> Issue:
    return Issue(f"{path}.{name}", f"unused-{name.replace('_', '-')}", f"not used by {pricing} pricing")


def check_rate(index: int, rate: RateDraft) -> list[Issue]:
    """One usage rate on its own: service, unit, increments, and its pricing model's fields."""
    path = f"rates.{index}"
    units = SERVICE_UNITS.get(rate.service)
    if units is None:
        return [Issue(f"{path}.service", "unknown-service", f"must be one of: {', '.join(SERVICES)}")]
    issues: list[Issue] = []
    if rate.unit not in units:
        issues.append(
            Issue(
                f"{path}.unit",
                "wrong-unit",
                f"{rate.service} is priced per {' or '.join(sorted(units))}",
            )
        )
    issues += check_increments(path, rate)
    pricing = rate.pricing
    if pricing not in PRICINGS:
        issues.append(Issue(f"{path}.pricing", "unknown-pricing", f"must be one of: {', '.join(PRICINGS)}"))
        return issues
    # price: required by per_unit and package, meaningless otherwise
    if pricing in (PER_UNIT, PACKAGE):
        if rate.price is None:
            issues.append(Issue(f"{path}.price", "missing-price", f"{pricing} pricing needs a price"))
        else:
            issues += check_amount(f"{path}.price", rate.price)
    elif rate.price is not None and rate.price != 0:
        issues.append(_unused(path, "price", pricing))
    # tiers
    if pricing in TIERED:
        issues += check_tiers(f"{path}.tiers", rate.tiers)
    elif rate.tiers:
        issues.append(_unused(path, "tiers", pricing))
    # package size
    if pricing == PACKAGE:
        if rate.package_size is None:
            issues.append(
                Issue(f"{path}.package_size", "missing-package-size", "package pricing needs a package_size")
            )
        else:
            issues += check_positive(f"{path}.package_size", rate.package_size)
    elif rate.package_size is not None:
        issues.append(_unused(path, "package_size", pricing))
    # minimum charge: only where a period total is priced
    if rate.minimum_charge is not None:
        if pricing in INVOICE_TIME:
            issues += check_amount(f"{path}.minimum_charge", rate.minimum_charge)
        else:
            issues.append(_unused(path, "minimum_charge", pricing))
    # tariff reference
    if pricing == TARIFF:
        if rate.tariff is None:
            issues.append(Issue(f"{path}.tariff", "missing-tariff", "tariff pricing needs a tariff reference"))
        else:
            issues += check_tariff_ref(f"{path}.tariff", rate.tariff)
    elif rate.tariff is not None:
        issues.append(_unused(path, "tariff", pricing))
    return issues


def check_rates(rates: Sequence[RateDraft]) -> list[Issue]:
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


# --- allowances, one-time charges, spend cap ------------------------------------------------
def check_allowance(index: int, allowance: AllowanceDraft, rated_services: Iterable[str]) -> list[Issue]:
    path = f"allowances.{index}"
    issues = _code_issue(f"{path}.code", allowance.code)
    units = SERVICE_UNITS.get(allowance.service)
    if units is None:
        issues.append(
            Issue(f"{path}.service", "unknown-service", f"must be one of: {', '.join(SERVICES)}")
        )
    else:
        if allowance.service not in set(rated_services):
            issues.append(
                Issue(
                    f"{path}.service",
                    "no-rate-for-service",
                    f"the version has no {allowance.service} rate for the allowance to apply to",
                )
            )
        if allowance.unit not in units:
            issues.append(
                Issue(
                    f"{path}.unit",
                    "wrong-unit",
                    f"{allowance.service} is counted in {' or '.join(sorted(units))}",
                )
            )
    issues += check_positive(f"{path}.quantity", allowance.quantity)
    if len(allowance.destinations) > MAX_DESTINATIONS:
        issues.append(
            Issue(f"{path}.destinations", "too-many-destinations", f"at most {MAX_DESTINATIONS}")
        )
    seen: set[str] = set()
    for i, prefix in enumerate(allowance.destinations):
        if not DESTINATION_PATTERN.match(prefix):
            issues.append(
                Issue(
                    f"{path}.destinations.{i}",
                    "invalid-destination",
                    "an E.164 prefix: 1-15 digits, no '+'",
                )
            )
        elif prefix in seen:
            issues.append(Issue(f"{path}.destinations.{i}", "duplicate-destination", "listed twice"))
        seen.add(prefix)
    if allowance.rollover_cap is not None:
        issues += check_amount(f"{path}.rollover_cap", allowance.rollover_cap)
    issues += check_thresholds(f"{path}.thresholds", allowance.thresholds)
    return issues


def check_allowances(allowances: Sequence[AllowanceDraft], rates: Sequence[RateDraft]) -> list[Issue]:
    """Each allowance valid, codes unique within the version."""
    issues: list[Issue] = []
    if len(allowances) > MAX_ALLOWANCES:
        issues.append(Issue("allowances", "too-many-allowances", f"at most {MAX_ALLOWANCES}"))
    services = [r.service for r in rates]
    seen: set[str] = set()
    for index, allowance in enumerate(allowances):
        issues += check_allowance(index, allowance, services)
        if allowance.code in seen:
            issues.append(
                Issue(f"allowances.{index}.code", "duplicate-code", "another allowance has this code")
            )
        seen.add(allowance.code)
    return issues


def check_one_time_charges(charges: Sequence[OneTimeChargeDraft]) -> list[Issue]:
    issues: list[Issue] = []
    if len(charges) > MAX_ONE_TIME_CHARGES:
        issues.append(
            Issue("one_time_charges", "too-many-charges", f"at most {MAX_ONE_TIME_CHARGES}")
        )
    seen: set[str] = set()
    for index, charge in enumerate(charges):
        path = f"one_time_charges.{index}"
        issues += _code_issue(f"{path}.code", charge.code)
        if charge.code in seen:
            issues.append(Issue(f"{path}.code", "duplicate-code", "another one-time charge has this code"))
        seen.add(charge.code)
        if not charge.description.strip():
            issues.append(Issue(f"{path}.description", "blank", "must not be blank"))
        issues += check_amount(f"{path}.amount", charge.amount)
    return issues


def check_spend_cap(cap: SpendCapDraft | None) -> list[Issue]:
    if cap is None:
        return []
    return check_positive("spend_cap.amount", cap.amount) + check_thresholds(
        "spend_cap.thresholds", cap.thresholds
    )


def check_components(c: Components) -> list[Issue]:
    """Every issue of one version's components."""
    issues = check_amount("recurring_fee", c.recurring_fee)
    if c.billing_period not in BILLING_PERIODS:
        allowed = ", ".join(sorted(BILLING_PERIODS))
        issues.append(Issue("billing_period", "unknown-period", f"must be one of: {allowed}"))
    if c.billing_timing not in BILLING_TIMINGS:
        allowed = ", ".join(sorted(BILLING_TIMINGS))
        issues.append(Issue("billing_timing", "unknown-timing", f"must be one of: {allowed}"))
    issues += check_one_time_charges(c.one_time_charges)
    issues += check_rates(c.rates)
    issues += check_allowances(c.allowances, c.rates)
    issues += check_spend_cap(c.spend_cap)
    return issues


# --- plans, versions, migrations ------------------------------------------------------------
def check_plan(draft: PlanDraft) -> list[Issue]:
    """Every issue of a new plan (its version 1 included); empty when it can be published."""
    issues = check_code(draft.code)
    if not draft.name.strip():
        issues.append(Issue("name", "blank", "must not be blank"))
    if not is_currency(draft.currency):
        issues.append(Issue("currency", "unknown-currency", "must be an ISO 4217 currency code"))
    return issues + check_components(draft.components)


def validate_plan(draft: PlanDraft) -> PlanDraft:
    """Return the draft when it is valid; raise :class:`PlanInvalid` with all issues otherwise."""
    issues = check_plan(draft)
    if issues:
        raise PlanInvalid(issues)
    return draft


def check_aware(path: str, when: datetime) -> list[Issue]:
    if when.tzinfo is None or when.utcoffset() is None:
        return [Issue(path, "naive-datetime", "needs a UTC offset (e.g. 2030-01-01T00:00:00Z)")]
    return []


def check_not_in_past(path: str, when: datetime, now: datetime) -> list[Issue]:
    """``when`` may be at most CLOCK_SKEW before ``now``: history is never rewritten."""
    if when < now - CLOCK_SKEW:
        return [
            Issue(
                path,
                "in-the-past",
                "must not be in the past: what has been rated or invoiced is never re-priced",
            )
        ]
    return []


def check_effective_from(
    effective_from: datetime, *, now: datetime, previous: datetime | None
) -> list[Issue]:
    """A new version's start: aware, not in the past, after the previous version's start."""
    issues = check_aware("effective_from", effective_from)
    if issues:
        return issues
    issues += check_not_in_past("effective_from", effective_from, now)
    if previous is not None and effective_from <= previous:
        issues.append(
            Issue(
                "effective_from",
                "not-after-previous",
                f"must be after the previous version's effective_from ({previous.isoformat()})",
            )
        )
    return issues


def validate_new_version(
    components: Components,
    *,
    effective_from: datetime,
    now: datetime,
    previous_effective_from: datetime,
    plan_currency: str,
    currency: str | None = None,
) -> Components:
    """Check version N+1 of a plan; raise :class:`PlanInvalid` listing every issue."""
    issues = check_effective_from(effective_from, now=now, previous=previous_effective_from)
    if currency is not None and currency != plan_currency:
        issues.append(
            Issue("currency", "currency-changed", f"a plan's currency never changes (it is {plan_currency})")
        )
    issues += check_components(components)
    if issues:
        raise PlanInvalid(issues)
    return components


@dataclass(frozen=True, slots=True)
class MigrationDraft:
    to_version: int
    effective_from: datetime
    subscription_ids: tuple[str, ...] | None = None


def check_migration(
    draft: MigrationDraft, *, versions: dict[int, datetime], now: datetime
) -> list[Issue]:
    """A migration moves subscriptions to an existing version, from a moment not in the past,
    no earlier than that version's own ``effective_from``."""
    issues = check_aware("effective_from", draft.effective_from)
    target = versions.get(draft.to_version)
    if target is None:
        known = ", ".join(str(v) for v in sorted(versions))
        issues.append(Issue("to_version", "unknown-version", f"the plan has versions {known}"))
    if not issues:
        issues += check_not_in_past("effective_from", draft.effective_from, now)
        assert target is not None
        if draft.effective_from < target:
            issues.append(
                Issue(
                    "effective_from",
                    "before-version-effective",
                    f"version {draft.to_version} applies only from {target.isoformat()}",
                )
            )
    ids = draft.subscription_ids
    if ids is not None:
        if not ids:
            issues.append(
                Issue("subscription_ids", "empty", "list at least one subscription, or null for all")
            )
        if len(ids) > MAX_SUBSCRIPTIONS_PER_MIGRATION:
            issues.append(
                Issue(
                    "subscription_ids",
                    "too-many-subscriptions",
                    f"at most {MAX_SUBSCRIPTIONS_PER_MIGRATION}",
                )
            )
        seen: set[str] = set()
        for i, sid in enumerate(ids):
            if not sid.strip() or len(sid) > 64:
                issues.append(Issue(f"subscription_ids.{i}", "invalid-id", "1-64 characters"))
            elif sid in seen:
                issues.append(Issue(f"subscription_ids.{i}", "duplicate-subscription", "listed twice"))
            seen.add(sid)
    return issues


def validate_migration(
    draft: MigrationDraft, *, versions: dict[int, datetime], now: datetime
) -> MigrationDraft:
    issues = check_migration(draft, versions=versions, now=now)
    if issues:
        raise PlanInvalid(issues)
    return draft
