"""Guiding and rating of one record from the projections. Pure: no I/O.

The usage service rates from its own projections (lines, subscriptions, accounts, plan versions,
plan migrations, the tenant's tariff plan, fed by events). A :class:`Directory` is the slice of
them a batch needs. :func:`guide` finds the line, the subscription, the plan version in force at
the record's start, the usage rate and the applicable allowance balances, or says precisely why
the record cannot be rated yet (a stable reason code). :func:`price` rates a guided record,
consuming allowances from a :class:`~rateline_usage.domain.allowances.Ledger`.
:func:`rate_record` is both in one call: the one function that rates a record given the
projections (intake uses it; re-rating, ``domain/rerating.py``, guides the same way and prices
with the allowance use the record already has).

Plan version in force: ``rateline_rating.versions.version_in_force`` with the subscription's
start at local midnight (the account's time zone) of its ``start_date`` and the plan's
migrations, at the record's start. Billing cycle: the account's cycle containing the record's
start (``rateline_rating.cycles.cycle_containing``, the account's bill-cycle day and zone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from rateline_rating.cycles import Cycle, cycle_containing, known_zone, local_midnight_utc, previous_cycle
from rateline_rating.tariffs.engine import RatingProfileNotFound, TariffError, UnauthorizedDestination
from rateline_rating.versions import Migration, VersionRef, version_in_force
from rateline_usage.domain.allowances import (
    OWNER_ACCOUNT,
    OWNER_SUBSCRIPTION,
    AllowanceView,
    BalanceKey,
    Ledger,
    choose,
)
from rateline_usage.domain.rating import TARIFF, Charge, Rate, RatingError, rate_per_unit
from rateline_usage.domain.tariffing import TariffBook, rate_tariff, tariff_destination

STATUS_RATED = "rated"
STATUS_REJECTED = "rejected"
STATUS_DUPLICATE = "duplicate"  # reported only; a duplicate is never stored twice

# Reason codes of rejected records (stable: clients and operators filter on them).
INVALID_MSISDN = "invalid-msisdn"
UNKNOWN_LINE = "unknown-line"
BEFORE_ACTIVATION = "before-activation"
NO_SUBSCRIPTION = "no-subscription"
UNKNOWN_PLAN = "unknown-plan"
UNKNOWN_ACCOUNT = "unknown-account"  # allowances/spend caps need the account's billing cycle
NO_RATE = "no-rate"
NO_DESTINATION = "no-destination"  # tariff pricing needs a destination
UNKNOWN_DESTINATION = "unknown-destination"  # the tariff has no rate for it
NO_TARIFF = "no-tariff"  # tariff pricing, but no tariff plan was imported (or it is unusable)
NO_RATING_PROFILE = "no-rating-profile"  # the tariff has no profile for the rate's category/subject
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
class AccountView:
    account_id: str
    currency: str
    country: str
    timezone: str
    bill_cycle_day: int = 1


@dataclass(frozen=True, slots=True)
class SpendCapView:
    amount: Decimal
    thresholds: tuple[int, ...] = (80, 100)


@dataclass(frozen=True, slots=True)
class PlanVersionView:
    """One published version of a plan (``catalog.plan_version.published``)."""

    plan_id: str
    version: int
    effective_from: datetime
    currency: str
    code: str = ""
    rates: Mapping[str, Rate] = field(default_factory=dict)  # by service
    allowances: tuple[AllowanceView, ...] = ()
    spend_cap: SpendCapView | None = None


@dataclass(frozen=True, slots=True)
class PlanBook:
    """Every known version of a plan and its scheduled migrations."""

    plan_id: str
    versions: Mapping[int, PlanVersionView]
    migrations: tuple[Migration, ...] = ()
    refs: tuple[VersionRef, ...] = ()

    @classmethod
    def of(cls, versions: Sequence[PlanVersionView], migrations: Sequence[Migration] = ()) -> PlanBook:
        ordered = sorted(versions, key=lambda v: (v.effective_from, v.version))
        return cls(
            plan_id=ordered[0].plan_id if ordered else "",
            versions={v.version: v for v in ordered},
            migrations=tuple(migrations),
            refs=tuple(VersionRef(v.version, v.effective_from) for v in ordered),
        )


@dataclass(frozen=True, slots=True)
class Directory:
    """What the projections know, indexed for guiding."""

    lines_by_msisdn: Mapping[str, Sequence[LineView]] = field(default_factory=dict)
    subscriptions_by_line: Mapping[str, Sequence[SubscriptionView]] = field(default_factory=dict)
    plans: Mapping[str, PlanBook] = field(default_factory=dict)
    accounts: Mapping[str, AccountView] = field(default_factory=dict)
    tariff: TariffBook | None = None
    tariff_problem: str | None = None  # why the tenant's tariff is unusable, if it is
    # memos (values derived from the fields above only)
    _cycles: dict[str, Cycle] = field(default_factory=dict, compare=False, repr=False)
    _versions: dict[str, int | None] = field(default_factory=dict, compare=False, repr=False)
    _subs: dict[str, list[tuple[datetime, SubscriptionView]]] = field(default_factory=dict, compare=False, repr=False)

    def subscription_at(self, line: LineView, account: AccountView | None, at: datetime) -> SubscriptionView | None:
        """The line's subscription in force at ``at``: the latest started (local midnight of its
        start date in the account's zone) at or before it (memoised per line)."""
        entries = self._subs.get(line.line_id)
        if entries is None:
            subs = sorted(
                self.subscriptions_by_line.get(line.line_id, ()), key=lambda s: (s.start_date, s.activated_at)
            )
            entries = self._subs[line.line_id] = [(subscription_start(s, account), s) for s in subs]
        found = None
        for start, sub in entries:
            if start <= at:
                found = sub
        return found

    def cycle_of(self, account: AccountView, at: datetime) -> Cycle:
        """The account's billing cycle containing ``at`` (memoised per account)."""
        last = self._cycles.get(account.account_id)
        if last is not None and last.start_utc <= at < last.end_utc:
            return last
        cycle = cycle_containing(at, account.bill_cycle_day, known_zone(account.timezone))
        self._cycles[account.account_id] = cycle
        return cycle

    def version_for(
        self, book: PlanBook, subscription: SubscriptionView, account: AccountView | None, at: datetime
    ) -> PlanVersionView | None:
        """The plan version pricing ``subscription``'s usage at ``at``."""
        sub_id = subscription.subscription_id
        if not book.migrations and sub_id in self._versions:
            number = self._versions[sub_id]
        else:
            started = subscription_start(subscription, account)
            number = version_in_force(
                book.refs, book.migrations, subscription_id=sub_id, started=started, at=at
            )
            if not book.migrations:
                self._versions[sub_id] = number
        return book.versions.get(number) if number is not None else None


@dataclass(frozen=True, slots=True)
class Usage:
    """A well-formed record as guiding sees it."""

    service: str
    msisdn: str | None  # E.164, or None when the number could not be read
    started_at: datetime
    quantity: int  # base unit: seconds, messages, bytes
    raw_msisdn: str = ""
    destination: str | None = None


@dataclass(slots=True)  # not frozen: built per record, frozen init is slower
class Outcome:
    status: str  # rated | rejected
    reason: str | None = None
    message: str | None = None
    line_id: str | None = None
    account_id: str | None = None
    subscription_id: str | None = None
    plan_id: str | None = None
    plan_version: int | None = None
    charge: Charge | None = None
    currency: str | None = None
    balance_key: BalanceKey | None = None  # the balance the record consumed from, if any
    cycle: Cycle | None = None  # the account's billing cycle of the record (when known)
    spend_cap: SpendCapView | None = None

    @property
    def amount(self) -> Decimal | None:
        return self.charge.amount if self.charge else None


@dataclass(slots=True)  # not frozen: built per record, frozen init is slower
class Guided:
    """A record whose line, subscription, plan version and rate are known."""

    usage: Usage
    line: LineView
    subscription: SubscriptionView
    account: AccountView | None
    version: PlanVersionView
    rate: Rate
    destination: str | None  # digits, as tariffs and allowance prefixes read it
    cycle: Cycle | None
    candidates: tuple[tuple[AllowanceView, BalanceKey], ...] = ()


def _reject(reason: str, message: str, **context: str | int | None) -> Outcome:
    return Outcome(STATUS_REJECTED, reason, message, **context)  # type: ignore[arg-type]


def line_at(lines: Sequence[LineView], at: datetime) -> LineView | None:
    """The line that held the number at ``at``: the latest one activated at or before it."""
    active = [line for line in lines if line.activated_at <= at]
    return max(active, key=lambda line: line.activated_at) if active else None


def local_date(at: datetime, timezone: str | None) -> date:
    """The calendar day of ``at`` in the account's time zone (UTC when it is not known)."""
    return at.astimezone(ZoneInfo(known_zone(timezone))).date()


def subscription_start(subscription: SubscriptionView, account: AccountView | None) -> datetime:
    """Local midnight of the subscription's start date in the account's zone, as UTC."""
    zone = ZoneInfo(known_zone(account.timezone if account else None))
    start: datetime = local_midnight_utc(subscription.start_date, zone)
    return start


def previous_cycle_of(account: AccountView, cycle: Cycle) -> Cycle:
    """The account's cycle before ``cycle`` (rollover reads what was left of it)."""
    return previous_cycle(cycle, account.bill_cycle_day, known_zone(account.timezone))


def balance_key(allowance: AllowanceView, subscription: SubscriptionView, cycle: Cycle) -> BalanceKey:
    if allowance.pooled:
        return BalanceKey(OWNER_ACCOUNT, subscription.account_id, subscription.plan_id, allowance.code, cycle.start)
    return BalanceKey(
        OWNER_SUBSCRIPTION, subscription.subscription_id, subscription.plan_id, allowance.code, cycle.start
    )


def guide(usage: Usage, directory: Directory) -> Guided | Outcome:
    """Find what rates ``usage``, or say precisely why it cannot be rated yet (an Outcome)."""
    if usage.msisdn is None:
        return _reject(INVALID_MSISDN, f"{usage.raw_msisdn!r} is not a readable phone number")
    candidates = directory.lines_by_msisdn.get(usage.msisdn, ())
    if not candidates:
        return _reject(UNKNOWN_LINE, f"no line with number {usage.msisdn} is known")
    line = candidates[0] if len(candidates) == 1 else line_at(candidates, usage.started_at)
    if line is None or line.activated_at > usage.started_at:
        first = min(c.activated_at for c in candidates)
        return _reject(
            BEFORE_ACTIVATION,
            f"the record starts before the line {usage.msisdn} was activated ({first.isoformat()})",
        )
    account = directory.accounts.get(line.account_id)
    subscription = directory.subscription_at(line, account, usage.started_at)
    if subscription is None:
        day = local_date(usage.started_at, account.timezone if account else None)
        return _reject(
            NO_SUBSCRIPTION, f"line {line.line_id} has no subscription in force on {day}",
            line_id=line.line_id, account_id=line.account_id,
        )
    book = directory.plans.get(subscription.plan_id)
    version = directory.version_for(book, subscription, account, usage.started_at) if book else None
    if book is None or version is None:
        return _reject(
            UNKNOWN_PLAN, f"plan {subscription.plan_id} has not been published to usage yet",
            **_context(line, subscription),
        )
    rate = version.rates.get(usage.service)
    if rate is None:
        return _reject(
            NO_RATE, f"plan {version.plan_id} version {version.version} has no rate for {usage.service}",
            **_context(line, subscription, version),
        )
    destination = None
    keys: tuple[tuple[AllowanceView, BalanceKey], ...] = ()
    cycle = None
    if rate.pricing == TARIFF or any(a.destinations for a in version.allowances):
        destination = tariff_destination(usage.destination)
    applicable = (
        [a for a in version.allowances if a.applies_to(usage.service, destination)] if version.allowances else ()
    )
    if applicable or version.spend_cap is not None:
        if account is None:
            return _reject(
                UNKNOWN_ACCOUNT,
                f"account {line.account_id} is not known to usage yet (its billing cycle decides "
                "allowances and spend caps)",
                **_context(line, subscription, version),
            )
        cycle = directory.cycle_of(account, usage.started_at)
        keys = tuple((a, balance_key(a, subscription, cycle)) for a in applicable)
    return Guided(usage, line, subscription, account, version, rate, destination, cycle, keys)


def _context(
    line: LineView, subscription: SubscriptionView, version: PlanVersionView | None = None
) -> dict[str, str | int | None]:
    return {
        "line_id": line.line_id,
        "account_id": line.account_id,
        "subscription_id": subscription.subscription_id,
        "plan_id": subscription.plan_id,
        "plan_version": version.version if version else None,
    }


def price(guided: Guided, directory: Directory, ledger: Ledger | None = None) -> Outcome:
    """Rate a guided record; its allowance (if any) is consumed from ``ledger``."""
    usage, version, rate = guided.usage, guided.version, guided.rate
    chosen = choose(guided.candidates, ledger) if ledger is not None and guided.candidates else None
    remaining = chosen[1].remaining if chosen else None
    code = chosen[0].code if chosen else None
    try:
        if rate.pricing == TARIFF:
            charge_or_reason = tariff_charge(guided, directory, remaining, code)
            if isinstance(charge_or_reason, tuple):
                reason, message = charge_or_reason
                return _reject(reason, message, **_context(guided.line, guided.subscription, version))
            charge = charge_or_reason
        else:
            charge = rate_per_unit(
                usage.service, usage.quantity, rate, allowance_remaining=remaining, allowance_code=code
            )
    except RatingError as err:
        return _reject(UNRATABLE, str(err), **_context(guided.line, guided.subscription, version))
    key = None
    if chosen is not None and charge.allowance_used > 0:
        assert ledger is not None
        key = chosen[1].key
        ledger.consume(key, charge.allowance_used)
    sub = guided.subscription
    return Outcome(
        STATUS_RATED, None, None, guided.line.line_id, guided.line.account_id, sub.subscription_id, sub.plan_id,
        version.version, charge, version.currency, key, guided.cycle, version.spend_cap,
    )


def tariff_charge(
    guided: Guided, directory: Directory, remaining: Decimal | None, code: str | None
) -> Charge | tuple[str, str]:
    """A tariff-priced record's charge (``remaining`` of allowance ``code`` covering its first
    increments), or ``(reason, message)`` when the tariff in force cannot price it."""
    usage, rate = guided.usage, guided.rate
    assert rate.tariff is not None and usage.msisdn is not None
    book = directory.tariff
    if book is None:
        return NO_TARIFF, directory.tariff_problem or "no tariff plan has been imported for this tenant"
    if book.currency != guided.version.currency:
        return UNRATABLE, (
            f"the tariff plan is in {book.currency}, plan version {guided.version.version} in "
            f"{guided.version.currency}"
        )
    if guided.destination is None:
        return NO_DESTINATION, f"{usage.service} is priced by destination, and the record has none"
    try:
        return rate_tariff(
            book,
            rate.tariff,
            msisdn=usage.msisdn,
            destination=guided.destination,
            start=usage.started_at,
            service=usage.service,
            quantity=usage.quantity,
            allowance_remaining=remaining,
            allowance_code=code,
        )
    except UnauthorizedDestination as err:
        return UNKNOWN_DESTINATION, f"the tariff has no rate for destination {guided.destination}: {err}"
    except RatingProfileNotFound as err:
        return NO_RATING_PROFILE, str(err)
    except TariffError as err:
        return UNRATABLE, str(err)


def rate_record(usage: Usage, directory: Directory, ledger: Ledger | None = None) -> Outcome:
    """Guide and rate one record from the projections (allowances from ``ledger``, if given)."""
    guided = guide(usage, directory)
    if isinstance(guided, Outcome):
        return guided
    return price(guided, directory, ledger)

