"""Guiding: find the line, subscription and plan a usage record belongs to, then rate it.

The usage service rates from its own projections (lines, subscriptions, accounts, plans fed by
events). A :class:`Directory` is the slice of them a batch needs; :func:`guide` decides, for one
record, either a :class:`~rateline_usage.domain.rating.Charge` or a rejection with a stable
reason code. Rejected records are kept and can be re-processed once the missing data arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rateline_usage.domain.rating import Charge, Rate, RatingError, rate_usage

STATUS_RATED = "rated"
STATUS_REJECTED = "rejected"
STATUS_DUPLICATE = "duplicate"  # reported only; a duplicate is never stored twice

# Reason codes of rejected records (stable: clients and operators filter on them).
INVALID_MSISDN = "invalid-msisdn"
UNKNOWN_LINE = "unknown-line"
BEFORE_ACTIVATION = "before-activation"
NO_SUBSCRIPTION = "no-subscription"
UNKNOWN_PLAN = "unknown-plan"
NO_RATE = "no-rate"
UNRATABLE = "unratable"
MALFORMED = "malformed"  # a file-import row that is not a valid record (kept with its raw row)


@dataclass(frozen=True, slots=True)
class LineView:
    line_id: str
    account_id: str
    msisdn: str
    activated_at: datetime


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    subscription_id: str
    account_id: str
    line_id: str
    plan_id: str
    start_date: date
    activated_at: datetime


@dataclass(frozen=True, slots=True)
class PlanView:
    plan_id: str
    currency: str
    rates: Mapping[str, Rate]  # by service


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: str
    currency: str
    country: str
    timezone: str


@dataclass(frozen=True, slots=True)
class Directory:
    """What the projections know, indexed for guiding."""

    lines_by_msisdn: Mapping[str, Sequence[LineView]] = field(default_factory=dict)
    subscriptions_by_line: Mapping[str, Sequence[SubscriptionView]] = field(default_factory=dict)
    plans: Mapping[str, PlanView] = field(default_factory=dict)
    accounts: Mapping[str, AccountView] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """A well-formed record as guiding sees it."""

    service: str
    msisdn: str | None  # E.164, or None when the number could not be read
    started_at: datetime
    quantity: int
    raw_msisdn: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # rated | rejected
    reason: str | None = None
    message: str | None = None
    line_id: str | None = None
    account_id: str | None = None
    subscription_id: str | None = None
    plan_id: str | None = None
    charge: Charge | None = None
    currency: str | None = None

    @property
    def amount(self) -> Decimal | None:
        return self.charge.amount if self.charge else None


def _reject(reason: str, message: str, **context: str | None) -> Outcome:
    return Outcome(STATUS_REJECTED, reason, message, **context)  # type: ignore[arg-type]


def line_at(lines: Sequence[LineView], at: datetime) -> LineView | None:
    """The line that held the number at ``at``: the latest one activated at or before it."""
    active = [line for line in lines if line.activated_at <= at]
    return max(active, key=lambda line: line.activated_at) if active else None


def local_date(at: datetime, timezone: str | None) -> date:
    """The calendar day of ``at`` in the account's time zone (UTC when it is not known)."""
    if timezone:
        try:
            return at.astimezone(ZoneInfo(timezone)).date()
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return at.astimezone(UTC).date()


def subscription_on(subs: Sequence[SubscriptionView], day: date) -> SubscriptionView | None:
    """The subscription in force on ``day``: the latest started on or before it."""
    started = [s for s in subs if s.start_date <= day]
    return max(started, key=lambda s: (s.start_date, s.activated_at)) if started else None


def guide(usage: Usage, directory: Directory) -> Outcome:
    """Rate ``usage`` from ``directory``, or say precisely why it cannot be rated yet."""
    if usage.msisdn is None:
        return _reject(INVALID_MSISDN, f"{usage.raw_msisdn!r} is not a readable phone number")
    candidates = directory.lines_by_msisdn.get(usage.msisdn, ())
    if not candidates:
        return _reject(UNKNOWN_LINE, f"no line with number {usage.msisdn} is known")
    line = line_at(candidates, usage.started_at)
    if line is None:
        first = min(c.activated_at for c in candidates)
        return _reject(
            BEFORE_ACTIVATION,
            f"the record starts before the line {usage.msisdn} was activated ({first.isoformat()})",
        )
    context: dict[str, str | None] = {"line_id": line.line_id, "account_id": line.account_id}
    account = directory.accounts.get(line.account_id)
    day = local_date(usage.started_at, account.timezone if account else None)
    subscription = subscription_on(directory.subscriptions_by_line.get(line.line_id, ()), day)
    if subscription is None:
        return _reject(
            NO_SUBSCRIPTION, f"line {line.line_id} has no subscription in force on {day}", **context
        )
    context |= {"subscription_id": subscription.subscription_id, "plan_id": subscription.plan_id}
    plan = directory.plans.get(subscription.plan_id)
    if plan is None:
        return _reject(
            UNKNOWN_PLAN, f"plan {subscription.plan_id} has not been published to usage yet", **context
        )
    rate = plan.rates.get(usage.service)
    if rate is None:
        return _reject(
            NO_RATE, f"plan {plan.plan_id} has no rate for {usage.service}", **context
        )
    try:
        charge = rate_usage(usage.service, usage.quantity, rate)
    except RatingError as err:
        return _reject(UNRATABLE, str(err), **context)
    return Outcome(STATUS_RATED, charge=charge, currency=plan.currency, **context)
