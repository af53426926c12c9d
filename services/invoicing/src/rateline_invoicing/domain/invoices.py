"""Invoice building: from what invoicing knows of an account to the lines of one invoice.

Pure: the caller loads the account, its subscriptions, the plan versions and migrations, the
period's usage (already summed per group), the pending adjustments and what was invoiced
before, and writes the result. Rules (docs/architecture.md, "Money, time, numbers"):

* **Versions.** A subscription starts at local midnight of its ``start_date`` (account zone).
  The version of its plan that applies at an instant is
  :func:`rateline_rating.versions.version_in_force`; recurring fees use the version in force at
  the start of the term they cover, usage uses the version the record was rated on
  (``plan_version``) or, when it is unknown, the one in force at the start of its period.
* **Recurring** lines: monthly, quarterly or yearly fees, in advance or in arrears, on the
  cycles :mod:`rateline_invoicing.domain.schedule` says, with the covered dates in the
  description. :func:`recurring_fraction` is the proration seam (today always the full fee).
* **One-time** charges of the version a subscription started on, on its first invoice only;
  the draft lists the subscriptions it is the first invoice of, and the caller records them.
* **Usage** lines per (subscription, service) for records rated one by one (``per_unit``,
  ``tariff``): the sum of their rated amounts. Components priced on the period's total
  (``graduated``, ``volume``, ``package``) get one line per (subscription, service, version):
  the chargeable quantity summed, converted to the priced unit and priced by
  :mod:`rateline_rating.pricing`, raised to the ``minimum_charge`` (which is also charged for
  an active subscription's component without usage).
* **Late usage** lines per (subscription, service): records that started in an earlier period
  that is already invoiced. Per-record amounts add up; a quantity-priced component is charged
  the difference its extra quantity makes on that earlier period's price.
* **Usage adjustment** lines per (subscription, service): the re-rating deltas of records
  already on an invoice (may be negative), and for quantity-priced components the difference a
  changed chargeable quantity makes on the price of the record's period.
* Every line is rounded **once** by :func:`round_invoice_line`; subtotal and total are the sum
  of the rounded lines, so the total always equals what a reader adds up on the invoice.
* Everything is in the account's currency; a plan, usage or adjustment in another currency
  makes the account unbillable for this period (:class:`CurrencyMismatch`).
"""

from __future__ import annotations

import decimal
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from rateline_invoicing.domain.errors import (
    BillingError,
    CurrencyMismatch,
    UnknownPlan,
    UnsupportedBillingPeriod,
)
from rateline_invoicing.domain.periods import BillingPeriod, zone
from rateline_invoicing.domain.schedule import (
    PERIOD_MONTHS,
    PERIOD_UNITS,
    TIMINGS,
    CycleClock,
    Term,
    advance_term,
    arrears_term,
    start_instant,
    term_months,
)
from rateline_rating import pricing
from rateline_rating.pricing import INVOICE_TIME_PRICING, PriceTier, PricingError
from rateline_rating.units import MEASURED_PER_UNIT, MEASURED_UNITS
from rateline_rating.versions import Migration, VersionRef, version_at_start, version_in_force
from rateline_shared.money import Money, minor_units


class LineKind(StrEnum):
    RECURRING = "recurring"
    ONE_TIME = "one_time"
    USAGE = "usage"
    LATE_USAGE = "late_usage"
    ADJUSTMENT = "adjustment"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AccountTerms:
    account_id: str
    currency: str
    timezone: str
    bill_cycle_day: int = 1


@dataclass(frozen=True, slots=True)
class RateTerms:
    """One usage component of a plan version (``UsageRate``)."""

    service: str
    unit: str  # the priced unit: minute, second, message, KB, MB, GB
    pricing: str = "per_unit"
    price: Decimal = Decimal(0)
    tiers: tuple[PriceTier, ...] = ()
    package_size: Decimal | None = None
    minimum_charge: Decimal | None = None

    @property
    def invoice_time(self) -> bool:
        return self.pricing in INVOICE_TIME_PRICING

    def per(self, measured_unit: str) -> tuple[Decimal, Decimal]:
        """(factor, per): a quantity in ``measured_unit`` times ``factor`` is in base measured
        units, of which ``per`` make one priced unit. Exact integers, no division."""
        try:
            return (
                Decimal(MEASURED_PER_UNIT[measured_unit]),
                Decimal(MEASURED_PER_UNIT[self.unit]),
            )
        except KeyError as exc:
            raise BillingError(
                f"{self.service} usage in {measured_unit!r} cannot be priced per {self.unit!r}"
            ) from exc

    def plain_charge(self, quantity: Decimal, measured_unit: str) -> Decimal:
        """The component's price for a period's chargeable quantity, before the minimum."""
        factor, per = self.per(measured_unit)
        try:
            amount: Decimal = pricing.price(
                self.pricing,
                _EXACT.multiply(quantity, factor),
                tiers=self.tiers,
                unit_price=self.price,
                package_size=self.package_size,
                per=per,
            )
        except PricingError as exc:
            raise BillingError(f"{self.service} ({self.pricing}): {exc}") from exc
        return amount

    def charge(self, quantity: Decimal, measured_unit: str) -> Decimal:
        """The component's price for a period's chargeable quantity, minimum included."""
        charged: Decimal = pricing.with_minimum(self.plain_charge(quantity, measured_unit), self.minimum_charge)
        return charged

    def priced_quantity(self, quantity: Decimal, measured_unit: str) -> Decimal:
        """The quantity shown on the line, in the priced unit (display, 6 decimals at most)."""
        factor, per = self.per(measured_unit)
        return _display(_WIDE.divide(_EXACT.multiply(quantity, factor), per))


@dataclass(frozen=True, slots=True)
class OneTimeTerms:
    code: str
    description: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """One version of a plan, as far as invoicing needs it."""

    plan_id: str
    name: str
    currency: str
    recurring_fee: Decimal
    billing_period: str = "monthly"
    code: str = ""
    version: int = 1
    effective_from: datetime = EPOCH
    billing_timing: str = "advance"
    one_time_charges: tuple[OneTimeTerms, ...] = ()
    rates: tuple[RateTerms, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.code or self.plan_id} v{self.version}"

    def rate_for(self, service: str) -> RateTerms | None:
        return next((r for r in self.rates if r.service == service), None)


@dataclass(frozen=True, slots=True)
class PlanHistory:
    """Every known version of one plan and its scheduled migrations."""

    plan_id: str
    versions: tuple[PlanTerms, ...]
    migrations: tuple[Migration, ...] = ()

    @classmethod
    def of(cls, *versions: PlanTerms, migrations: Iterable[Migration] = ()) -> PlanHistory:
        if not versions:
            raise ValueError("a plan history needs at least one version")
        ordered = tuple(sorted(versions, key=lambda v: v.version))
        return cls(ordered[0].plan_id, ordered, tuple(migrations))

    @property
    def latest(self) -> PlanTerms:
        return self.versions[-1]

    def version(self, number: int) -> PlanTerms | None:
        return next((v for v in self.versions if v.version == number), None)

    def _refs(self) -> list[VersionRef]:
        return [VersionRef(v.version, v.effective_from) for v in self.versions]

    def in_force(self, subscription_id: str, started: datetime, at: datetime) -> PlanTerms:
        number = version_in_force(
            self._refs(), self.migrations, subscription_id=subscription_id, started=started, at=at
        )
        found = self.version(number) if number is not None else None
        return found or self.latest

    def at_instant(self, at: datetime) -> PlanTerms:
        """The version a subscription starting at ``at`` would be on."""
        number = version_at_start(self._refs(), at)
        found = self.version(number) if number is not None else None
        return found or self.latest


@dataclass(frozen=True, slots=True)
class SubscriptionTerms:
    subscription_id: str
    plan_id: str
    start_date: date


@dataclass(frozen=True, slots=True)
class CoveredPeriod:
    """The earlier invoice whose period a late record or an adjusted record belongs to."""

    invoice_id: str
    start_utc: datetime
    end_utc: datetime


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Rated records of one subscription, service and component, summed (``covered`` is None
    for records of this period, else the earlier invoiced period the late records are from)."""

    subscription_id: str
    plan_id: str
    service: str
    unit: str  # the records' billed unit: second, message, byte
    currency: str
    records: int
    amount: Decimal  # sum of rated amounts (0 for quantity-priced components)
    billed_quantity: Decimal
    chargeable_quantity: Decimal  # after allowances, in ``unit``
    pricing: str = "per_unit"
    plan_version: int | None = None
    covered: CoveredPeriod | None = None
    first_started: datetime | None = None
    last_started: datetime | None = None


@dataclass(frozen=True, slots=True)
class AdjustmentGroup:
    """Pending re-rating adjustments of invoiced records, summed per component and period."""

    subscription_id: str
    plan_id: str
    service: str
    unit: str
    currency: str
    records: int
    delta: Decimal  # sum of new - old rated amounts
    quantity_delta: Decimal = Decimal(0)  # sum of new - old chargeable quantities, in ``unit``
    pricing: str = "per_unit"
    plan_version: int | None = None
    covered: CoveredPeriod | None = None


# (covered invoice id, subscription id, service, plan_version as stored): the chargeable
# quantity of that component already invoiced for that period.
InvoicedKey = tuple[str, str, str, int | None]


@dataclass(frozen=True, slots=True)
class DisplayUnit:
    """How a service's billed quantity is shown on an invoice line."""

    measured: str
    unit: str
    per: Decimal  # measured units per display unit (60 seconds per minute)


DISPLAY_UNITS: Mapping[str, DisplayUnit] = {
    "voice": DisplayUnit("second", "minute", Decimal(60)),
    "sms": DisplayUnit("message", "message", Decimal(1)),
    "mms": DisplayUnit("message", "message", Decimal(1)),
    "data": DisplayUnit("byte", "MB", Decimal(1024**2)),
}
SERVICE_LABELS: Mapping[str, str] = {"voice": "Voice", "sms": "SMS", "mms": "MMS", "data": "Data"}
# Display quantities (not money) are capped at 6 decimals: 61 s is 1.016667 minutes.
QUANTITY_EXPONENT = Decimal("0.000001")
# Sums run in a wide context so that adding many 12-decimal amounts (or an exact tier price
# with a long quotient) never rounds silently; the one division has its own context.
_EXACT = decimal.Context(prec=200, rounding=ROUND_HALF_UP, traps=[decimal.Inexact])
_WIDE = decimal.Context(prec=80, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class DraftLine:
    kind: LineKind
    description: str
    amount: Money  # rounded to the currency's minor unit (invoice line rounding)
    unrounded_amount: Decimal  # the exact sum the line was rounded from, kept for audit
    quantity: Decimal
    unit: str
    service: str | None = None
    subscription_id: str | None = None
    plan_id: str | None = None
    record_count: int = 0


@dataclass(frozen=True, slots=True)
class FirstInvoice:
    """This invoice is the first of a subscription; ``charges`` are the one-time codes billed."""

    subscription_id: str
    charges: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    account_id: str
    currency: str
    period: BillingPeriod
    lines: tuple[DraftLine, ...]
    subtotal: Money
    total: Money
    first_invoices: tuple[FirstInvoice, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        """Nothing to bill: no charge, no usage, no adjustment in the period."""
        return not self.lines


def round_invoice_line(amount: Money) -> Money:
    """The named step **invoice line rounding**: one rounding per invoice line, to the
    currency's minor unit with the platform's invoice rule (``Money.round_minor``, half up).
    Rated amounts and tier prices are never rounded before this step."""
    return amount.round_minor()


def in_minor_units(amount: Decimal, currency: str) -> Decimal:
    """An invoice amount (rounded when it was built) written with exactly the currency's minor
    unit, ``10.100000`` -> ``10.10``. Not a rounding step: it raises if a digit would be lost."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, context=_EXACT)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Sum without any rounding (raises ``decimal.Inexact`` rather than lose a digit)."""
    total = Decimal(0)
    for value in values:
        total = _EXACT.add(total, value)
    return total


def _display(quantity: Decimal) -> Decimal:
    capped = quantity.quantize(QUANTITY_EXPONENT, rounding=ROUND_HALF_UP, context=_WIDE)
    return quantity if capped == quantity else capped


def is_active(subscription: SubscriptionTerms, period: BillingPeriod) -> bool:
    """A subscription is billed for a period it has started before the end of."""
    return subscription.start_date < period.end


def recurring_fraction(subscription: SubscriptionTerms, term: Term) -> Decimal:
    """Share of the recurring fee charged for ``term``: **the proration seam**.

    Today every charged term costs the full fee, whatever the subscription's start date within
    it. Proration (a subscription starting or ending inside a term, plan changes) will return
    the fraction of the term it covers here; callers already multiply by it.
    """
    return Decimal(1)


def display_quantity(service: str, billed: Decimal, unit: str) -> tuple[Decimal, str]:
    """Billed quantity in the unit shown on the invoice (voice: seconds -> minutes)."""
    shown = DISPLAY_UNITS.get(service)
    if shown is None or shown.measured != unit:
        return billed, unit
    return _display(_WIDE.divide(billed, shown.per)), shown.unit


def _label(service: str) -> str:
    return SERVICE_LABELS.get(service, service.capitalize())


def _line(
    kind: LineKind,
    description: str,
    raw: Decimal,
    currency: str,
    quantity: Decimal,
    unit: str,
    *,
    service: str | None = None,
    subscription_id: str | None = None,
    plan_id: str | None = None,
    record_count: int = 0,
) -> DraftLine:
    return DraftLine(
        kind=kind,
        description=description,
        amount=round_invoice_line(Money(raw, currency)),
        unrounded_amount=raw,
        quantity=quantity,
        unit=unit,
        service=service,
        subscription_id=subscription_id,
        plan_id=plan_id,
        record_count=record_count,
    )


class _Builder:
    """One invoice being built (keeps the inputs at hand for the rules below)."""

    def __init__(
        self,
        account: AccountTerms,
        period: BillingPeriod,
        subscriptions: Iterable[SubscriptionTerms],
        plans: Mapping[str, PlanHistory],
        invoiced_quantities: Mapping[InvoicedKey, Decimal],
    ) -> None:
        self.account = account
        self.currency = account.currency
        self.period = period
        self.plans = plans
        self.invoiced = invoiced_quantities
        self.subscriptions = {s.subscription_id: s for s in subscriptions}
        self.lines: list[DraftLine] = []

    # --- plans and versions ---------------------------------------------------------------
    def history(self, plan_id: str, subscription_id: str) -> PlanHistory:
        history = self.plans.get(plan_id)
        if history is None:
            raise UnknownPlan(
                f"subscription {subscription_id} is on plan {plan_id}, "
                "which invoicing has not seen published"
            )
        return history

    def started(self, sub: SubscriptionTerms) -> datetime:
        return start_instant(sub.start_date, self.account.timezone)

    def check_currency(self, plan: PlanTerms, subscription_id: str) -> PlanTerms:
        if plan.currency != self.currency:
            raise CurrencyMismatch(
                f"plan {plan.label} of subscription {subscription_id} is priced in "
                f"{plan.currency} but the account bills in {self.currency}"
            )
        return plan

    def version_at(self, subscription_id: str, plan_id: str, at: datetime) -> PlanTerms:
        """The subscription's version at ``at`` (a subscription invoicing does not know: the
        version a subscription starting then would be on)."""
        history = self.history(plan_id, subscription_id)
        sub = self.subscriptions.get(subscription_id)
        if sub is None:
            return history.at_instant(at)
        return history.in_force(subscription_id, self.started(sub), at)

    def component(
        self, subscription_id: str, plan_id: str, service: str, version: int | None, at: datetime
    ) -> tuple[PlanTerms, RateTerms]:
        """The version and quantity-priced rate that price a usage group."""
        if version is None:
            plan = self.version_at(subscription_id, plan_id, at)
        else:
            found = self.history(plan_id, subscription_id).version(version)
            if found is None:
                raise UnknownPlan(
                    f"usage of subscription {subscription_id} was rated on version {version} of "
                    f"plan {plan_id}, which invoicing has not seen published"
                )
            plan = found
        self.check_currency(plan, subscription_id)
        rate = plan.rate_for(service)
        if rate is None or not rate.invoice_time:
            raise BillingError(
                f"plan {plan.label} has no graduated, volume or package rate for {service}, "
                f"but usage of subscription {subscription_id} was rated for one"
            )
        return plan, rate

    def plan_name(self, plan_id: str) -> str | None:
        history = self.plans.get(plan_id)
        return history.latest.name if history is not None else None

    def described(self, text: str, plan_id: str) -> str:
        name = self.plan_name(plan_id)
        return f"{text} ({name})" if name else text

    # --- recurring and one-time charges ---------------------------------------------------
    def subscription_charges(self, sub: SubscriptionTerms, first_invoice: bool) -> FirstInvoice | None:
        history = self.history(sub.plan_id, sub.subscription_id)
        started = self.started(sub)
        clock = CycleClock.of(started, self.account.bill_cycle_day, self.account.timezone)
        index = clock.index_of(self.period.start_utc)
        if index >= 0:
            for months in sorted(set(PERIOD_MONTHS.values())):
                self.recurring(sub, history, clock, index, months, started)
        if not first_invoice:
            return None
        plan = self.check_currency(history.in_force(sub.subscription_id, started, started), sub.subscription_id)
        for charge in plan.one_time_charges:
            self.lines.append(
                _line(
                    LineKind.ONE_TIME, f"{charge.description} ({plan.name})", charge.amount,
                    self.currency, Decimal(1), "charge",
                    subscription_id=sub.subscription_id, plan_id=plan.plan_id,
                )
            )
        return FirstInvoice(sub.subscription_id, tuple(c.code for c in plan.one_time_charges))

    def recurring(
        self,
        sub: SubscriptionTerms,
        history: PlanHistory,
        clock: CycleClock,
        index: int,
        months: int,
        started: datetime,
    ) -> None:
        """Charge the advance term starting now and the arrears term just ended, each if the
        version in force at the term's start bills every ``months`` months that way."""
        for timing, first in (("arrears", arrears_term(index, months)), ("advance", advance_term(index, months))):
            if first is None:
                continue
            term = clock.term(first, months)
            plan = history.in_force(sub.subscription_id, started, max(term.start_utc, started))
            if plan.billing_timing not in TIMINGS:
                raise UnsupportedBillingPeriod(
                    f"plan {plan.label} bills {plan.billing_timing!r}; invoicing knows advance and arrears"
                )
            if plan.billing_timing != timing or term_months(plan.billing_period, plan.label) != months:
                continue
            self.check_currency(plan, sub.subscription_id)
            fraction = recurring_fraction(sub, term)
            raw = _EXACT.multiply(plan.recurring_fee, fraction)
            self.lines.append(
                _line(
                    LineKind.RECURRING,
                    f"{plan.name} {plan.billing_period} fee {term.label()}",
                    raw, self.currency, fraction, PERIOD_UNITS[plan.billing_period],
                    subscription_id=sub.subscription_id, plan_id=plan.plan_id,
                )
            )

    # --- usage ----------------------------------------------------------------------------
    def check_usage_currency(self, currency: str, subscription_id: str, what: str) -> None:
        if currency != self.currency:
            raise CurrencyMismatch(
                f"{what} of subscription {subscription_id} is rated in {currency} "
                f"but the account bills in {self.currency}"
            )

    def usage(self, groups: Sequence[UsageGroup], active: Sequence[SubscriptionTerms]) -> None:
        per_record: dict[tuple[str, str], list[UsageGroup]] = {}
        priced: dict[tuple[str, str, int], tuple[PlanTerms, RateTerms, list[UsageGroup]]] = {}
        for group in groups:
            if group.pricing in INVOICE_TIME_PRICING:
                plan, rate = self.component(
                    group.subscription_id, group.plan_id, group.service, group.plan_version,
                    self.period.start_utc,
                )
                key = (group.subscription_id, group.service, plan.version)
                priced.setdefault(key, (plan, rate, []))[2].append(group)
            else:
                per_record.setdefault((group.subscription_id, group.service), []).append(group)

        lines: list[tuple[tuple[str, str, int], DraftLine]] = []
        for (sub_id, service), items in per_record.items():
            raw = exact_sum(g.amount for g in items)
            quantity, unit = display_quantity(service, exact_sum(g.billed_quantity for g in items), items[0].unit)
            lines.append(((sub_id, service, -1), _line(
                LineKind.USAGE, self.described(f"{_label(service)} usage", items[0].plan_id),
                raw, self.currency, quantity, unit, service=service, subscription_id=sub_id,
                plan_id=items[0].plan_id, record_count=sum(g.records for g in items),
            )))
        for (sub_id, service, version), (plan, rate, items) in priced.items():
            measured = items[0].unit
            if any(g.unit != measured for g in items):
                raise BillingError(f"{service} usage of subscription {sub_id} comes in several units")
            quantity = exact_sum(g.chargeable_quantity for g in items)
            lines.append(((sub_id, service, version), self.priced_line(
                LineKind.USAGE, plan, rate, quantity, measured, sub_id, sum(g.records for g in items)
            )))

        # A quantity-priced component with a minimum charge costs at least that in a period the
        # subscription is active, used or not.
        for sub in active:
            history = self.history(sub.plan_id, sub.subscription_id)
            plan = history.in_force(sub.subscription_id, self.started(sub), self.period.start_utc)
            for rate in plan.rates:
                used = any(k[0] == sub.subscription_id and k[1] == rate.service for k in priced)
                if rate.invoice_time and rate.minimum_charge and not used:
                    self.check_currency(plan, sub.subscription_id)
                    lines.append(((sub.subscription_id, rate.service, plan.version), self.priced_line(
                        LineKind.USAGE, plan, rate, Decimal(0), MEASURED_UNITS.get(rate.service, rate.unit),
                        sub.subscription_id, 0,
                    )))
        self.lines.extend(line for _, line in sorted(lines, key=lambda kl: kl[0]))

    def priced_line(
        self,
        kind: LineKind,
        plan: PlanTerms,
        rate: RateTerms,
        quantity: Decimal,
        measured_unit: str,
        subscription_id: str,
        records: int,
    ) -> DraftLine:
        plain = rate.plain_charge(quantity, measured_unit)
        raw: Decimal = pricing.with_minimum(plain, rate.minimum_charge)
        text = f"{_label(rate.service)} usage ({plan.name})"
        if raw > plain:
            text += ", minimum charge"
        return _line(
            kind, text, raw, self.currency, rate.priced_quantity(quantity, measured_unit), rate.unit,
            service=rate.service, subscription_id=subscription_id, plan_id=plan.plan_id,
            record_count=records,
        )

    # --- corrections of earlier periods -----------------------------------------------------
    def correction_component(
        self, subscription_id: str, plan_id: str, service: str, version: int | None, covered: CoveredPeriod | None
    ) -> tuple[PlanTerms, RateTerms]:
        at = covered.start_utc if covered is not None else self.period.start_utc
        return self.component(subscription_id, plan_id, service, version, at)

    def base(self, covered: CoveredPeriod | None, subscription_id: str, service: str, version: int | None) -> Decimal:
        if covered is None:
            return Decimal(0)
        return self.invoiced.get((covered.invoice_id, subscription_id, service, version), Decimal(0))

    def corrections(self, late: Sequence[UsageGroup], adjustments: Sequence[AdjustmentGroup]) -> None:
        # Extra quantity of quantity-priced components per earlier period, late records first.
        extra: dict[tuple[str | None, str, str, int | None], Decimal] = {}
        late_lines: dict[tuple[str, str], list[Decimal]] = {}
        late_meta: dict[tuple[str, str], list[UsageGroup]] = {}
        for group in late:
            self.check_usage_currency(group.currency, group.subscription_id, "usage")
            key = (group.subscription_id, group.service)
            late_meta.setdefault(key, []).append(group)
            if group.pricing in INVOICE_TIME_PRICING:
                _, rate = self.correction_component(
                    group.subscription_id, group.plan_id, group.service, group.plan_version, group.covered
                )
                cov = group.covered.invoice_id if group.covered else None
                ekey = (cov, group.subscription_id, group.service, group.plan_version)
                base = self.base(group.covered, group.subscription_id, group.service, group.plan_version)
                before = _EXACT.add(base, extra.get(ekey, Decimal(0)))
                after = _EXACT.add(before, group.chargeable_quantity)
                extra[ekey] = _EXACT.subtract(after, base)
                late_lines.setdefault(key, []).append(
                    _EXACT.subtract(rate.charge(after, group.unit), rate.charge(before, group.unit))
                )
            else:
                late_lines.setdefault(key, []).append(group.amount)
        for key in sorted(late_lines):
            sub_id, service = key
            items = late_meta[key]
            quantity, unit = display_quantity(service, exact_sum(g.billed_quantity for g in items), items[0].unit)
            self.lines.append(_line(
                LineKind.LATE_USAGE,
                self.described(f"Late usage: {_label(service)}", items[0].plan_id) + self._dates(items),
                exact_sum(late_lines[key]), self.currency, quantity, unit, service=service,
                subscription_id=sub_id, plan_id=items[0].plan_id, record_count=sum(g.records for g in items),
            ))

        adjusted: dict[tuple[str, str], list[Decimal]] = {}
        adjusted_meta: dict[tuple[str, str], list[AdjustmentGroup]] = {}
        for adj in adjustments:
            self.check_usage_currency(adj.currency, adj.subscription_id, "a usage adjustment")
            key = (adj.subscription_id, adj.service)
            adjusted_meta.setdefault(key, []).append(adj)
            amounts = adjusted.setdefault(key, [])
            amounts.append(adj.delta)
            if adj.pricing in INVOICE_TIME_PRICING and adj.quantity_delta:
                _, rate = self.correction_component(
                    adj.subscription_id, adj.plan_id, adj.service, adj.plan_version, adj.covered
                )
                cov = adj.covered.invoice_id if adj.covered else None
                ekey = (cov, adj.subscription_id, adj.service, adj.plan_version)
                base = self.base(adj.covered, adj.subscription_id, adj.service, adj.plan_version)
                before = _EXACT.add(base, extra.get(ekey, Decimal(0)))
                after = _EXACT.add(before, adj.quantity_delta)
                if after < 0:
                    raise BillingError(
                        f"adjustments would leave a negative {adj.service} quantity for "
                        f"subscription {adj.subscription_id}"
                    )
                extra[ekey] = _EXACT.subtract(after, base)
                amounts.append(_EXACT.subtract(rate.charge(after, adj.unit), rate.charge(before, adj.unit)))
        for key in sorted(adjusted):
            sub_id, service = key
            items_a = adjusted_meta[key]
            self.lines.append(_line(
                LineKind.ADJUSTMENT,
                self.described(f"Usage adjustment: {_label(service)}", items_a[0].plan_id),
                exact_sum(adjusted[key]), self.currency, Decimal(sum(a.records for a in items_a)), "record",
                service=service, subscription_id=sub_id, plan_id=items_a[0].plan_id,
                record_count=sum(a.records for a in items_a),
            ))

    def _dates(self, items: Sequence[UsageGroup]) -> str:
        firsts = [g.first_started for g in items if g.first_started is not None]
        lasts = [g.last_started for g in items if g.last_started is not None]
        if not firsts or not lasts:
            return ""
        tz = zone(self.account.timezone)
        first, last = min(firsts).astimezone(tz).date(), max(lasts).astimezone(tz).date()
        return f", {first.isoformat()}" if first == last else f", {first.isoformat()} to {last.isoformat()}"


def build_invoice(
    *,
    account: AccountTerms,
    period: BillingPeriod,
    subscriptions: Iterable[SubscriptionTerms],
    plans: Mapping[str, PlanHistory],
    usage: Iterable[UsageGroup] = (),
    adjustments: Iterable[AdjustmentGroup] = (),
    invoiced_quantities: Mapping[InvoicedKey, Decimal] | None = None,
    already_invoiced: Collection[str] = (),
) -> InvoiceDraft:
    """Build the invoice of ``account`` for ``period`` (see the module docstring).

    ``usage`` holds this period's groups (``covered`` None) and late groups of earlier invoiced
    periods; ``invoiced_quantities`` the chargeable quantity already invoiced for the
    quantity-priced components those late groups and ``adjustments`` correct (see
    :func:`correction_keys`); ``already_invoiced`` the subscriptions that had an invoice before
    (no one-time charges any more).

    Raises :class:`UnknownPlan`, :class:`CurrencyMismatch`, :class:`UnsupportedBillingPeriod`
    or another :class:`BillingError` when the account cannot be billed.
    """
    builder = _Builder(account, period, subscriptions, plans, invoiced_quantities or {})
    active = sorted(
        (s for s in builder.subscriptions.values() if is_active(s, period)),
        key=lambda s: (s.start_date, s.subscription_id),
    )
    firsts: list[FirstInvoice] = []
    for sub in active:
        first = builder.subscription_charges(sub, sub.subscription_id not in already_invoiced)
        if first is not None:
            firsts.append(first)

    current: list[UsageGroup] = []
    late: list[UsageGroup] = []
    for group in usage:
        builder.check_usage_currency(group.currency, group.subscription_id, "usage")
        (current if group.covered is None else late).append(group)
    builder.usage(current, active)
    builder.corrections(
        sorted(late, key=_group_order),
        sorted(adjustments, key=lambda a: (a.subscription_id, a.service, a.covered.start_utc if a.covered else EPOCH)),
    )

    lines = builder.lines
    subtotal = Money.zero(account.currency)
    for line in lines:
        subtotal = subtotal + line.amount
    # Taxes and discounts will go between subtotal and total; today they are equal.
    total = subtotal
    return InvoiceDraft(
        account_id=account.account_id,
        currency=account.currency,
        period=period,
        lines=tuple(lines),
        subtotal=subtotal,
        total=total,
        first_invoices=tuple(firsts),
    )


def _group_order(group: UsageGroup) -> tuple[str, str, datetime]:
    return (group.subscription_id, group.service, group.covered.start_utc if group.covered else EPOCH)


def correction_keys(
    usage: Iterable[UsageGroup], adjustments: Iterable[AdjustmentGroup]
) -> set[InvoicedKey]:
    """The (covered invoice, subscription, service, version) whose already invoiced quantity
    :func:`build_invoice` needs to price late records and adjustments of quantity-priced
    components."""
    keys: set[InvoicedKey] = set()
    items: list[UsageGroup | AdjustmentGroup] = [*usage, *adjustments]
    for item in items:
        if item.pricing in INVOICE_TIME_PRICING and item.covered is not None:
            keys.add((item.covered.invoice_id, item.subscription_id, item.service, item.plan_version))
    return keys
