"""Invoice building: from what invoicing knows of an account to the lines of one invoice.

Pure: the caller loads the account, its subscriptions, the plans and the uninvoiced rated
usage, and writes the result. Rules (docs/architecture.md, "Money, time, numbers"):

* One **recurring** line per subscription active in the period (``start_date`` before the
  period's end date) with the plan's recurring fee. The share of the fee charged is decided by
  :func:`recurring_fraction`, today always the full fee: it is the seam where proration goes.
* **Usage** lines grouped by (subscription, service): the quantity is the sum of the billed
  quantities shown in the service's display unit (voice in minutes = seconds / 60, SMS in
  messages); the amount is the sum of the rated amounts (which keep the tariff's sub-cent
  precision) rounded **once per line** by :func:`round_invoice_line`.
* Subtotal and total are the sum of the rounded lines (taxes and discounts will sit between
  them later), so the total always equals what a reader adds up on the invoice.
* Only usage that started inside the UTC period and is not on an invoice yet counts.
* Everything is in the account's currency; any plan or usage in another currency makes the
  account unbillable for this period (:class:`CurrencyMismatch`), nothing is half-built.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from rateline_invoicing.domain.errors import (
    CurrencyMismatch,
    UnknownPlan,
    UnsupportedBillingPeriod,
)
from rateline_invoicing.domain.periods import BillingPeriod
from rateline_shared.money import Money, minor_units


class LineKind(StrEnum):
    RECURRING = "recurring"
    USAGE = "usage"


@dataclass(frozen=True, slots=True)
class AccountTerms:
    account_id: str
    currency: str
    timezone: str


@dataclass(frozen=True, slots=True)
class PlanTerms:
    plan_id: str
    name: str
    currency: str
    recurring_fee: Decimal
    billing_period: str = "monthly"
    code: str = ""


@dataclass(frozen=True, slots=True)
class SubscriptionTerms:
    subscription_id: str
    plan_id: str
    start_date: date


@dataclass(frozen=True, slots=True)
class UsageItem:
    """One rated record as invoicing stores it (``usage_id`` is the local row id)."""

    usage_id: int
    subscription_id: str
    plan_id: str
    service: str
    started_at: datetime
    billed_quantity: Decimal
    unit: str
    amount: Decimal
    currency: str
    invoice_id: str | None = None


@dataclass(frozen=True, slots=True)
class DisplayUnit:
    """How a service's billed quantity is shown on an invoice line."""

    unit: str
    per: Decimal  # billed units per display unit (60 seconds per minute)


DISPLAY_UNITS: Mapping[str, DisplayUnit] = {
    "voice": DisplayUnit("minute", Decimal(60)),
    "sms": DisplayUnit("message", Decimal(1)),
}
SERVICE_LABELS: Mapping[str, str] = {"voice": "Voice", "sms": "SMS"}
# Display quantities (not money) are capped at 6 decimals: 61 s is 1.016667 minutes.
QUANTITY_EXPONENT = Decimal("0.000001")
# Sums run in a wide context so that adding many 12-decimal amounts never rounds silently.
_EXACT = decimal.Context(prec=60, rounding=ROUND_HALF_UP, traps=[decimal.Inexact])


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
class InvoiceDraft:
    account_id: str
    currency: str
    period: BillingPeriod
    lines: tuple[DraftLine, ...]
    subtotal: Money
    total: Money
    usage_ids: tuple[int, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        """Nothing to bill: no active subscription and no usage in the period."""
        return not self.lines


def round_invoice_line(amount: Money) -> Money:
    """The named step **invoice line rounding**: one rounding per invoice line, to the
    currency's minor unit with the platform's invoice rule (``Money.round_minor``, half up).
    Rated amounts are never rounded one by one before this step."""
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


def is_active(subscription: SubscriptionTerms, period: BillingPeriod) -> bool:
    """A subscription is billed for a period it has started before the end of."""
    return subscription.start_date < period.end


def recurring_fraction(subscription: SubscriptionTerms, period: BillingPeriod) -> Decimal:
    """Share of the recurring fee charged for ``period``: **the proration seam**.

    Today every active subscription pays the full fee for the period, whatever its start
    date. Proration (a subscription starting or ending inside the period, plan changes) will
    return the fraction of the period it covers here; callers already multiply by it.
    """
    return Decimal(1)


def recurring_line(
    subscription: SubscriptionTerms, plan: PlanTerms, period: BillingPeriod
) -> DraftLine:
    if plan.billing_period != "monthly":
        raise UnsupportedBillingPeriod(
            f"plan {plan.code or plan.plan_id} bills {plan.billing_period!r}; "
            "only monthly plans can be invoiced yet"
        )
    fraction = recurring_fraction(subscription, period)
    raw = plan.recurring_fee * fraction
    return DraftLine(
        kind=LineKind.RECURRING,
        description=f"{plan.name} monthly fee {period.label()}",
        amount=round_invoice_line(Money(raw, plan.currency)),
        unrounded_amount=raw,
        quantity=fraction,
        unit="month",
        subscription_id=subscription.subscription_id,
        plan_id=plan.plan_id,
    )


def display_quantity(service: str, billed: Decimal, unit: str) -> tuple[Decimal, str]:
    """Billed quantity in the unit shown on the invoice (voice: seconds -> minutes)."""
    shown = DISPLAY_UNITS.get(service)
    if shown is None:
        return billed, unit
    quantity = billed / shown.per
    capped = quantity.quantize(QUANTITY_EXPONENT, rounding=ROUND_HALF_UP)
    return (quantity if capped == quantity else capped), shown.unit


def usage_line(
    subscription_id: str,
    service: str,
    items: Sequence[UsageItem],
    currency: str,
    plan: PlanTerms | None,
) -> DraftLine:
    raw = exact_sum(i.amount for i in items)
    quantity, unit = display_quantity(service, exact_sum(i.billed_quantity for i in items), items[0].unit)
    label = SERVICE_LABELS.get(service, service.capitalize())
    description = f"{label} usage ({plan.name})" if plan is not None else f"{label} usage"
    return DraftLine(
        kind=LineKind.USAGE,
        description=description,
        amount=round_invoice_line(Money(raw, currency)),
        unrounded_amount=raw,
        quantity=quantity,
        unit=unit,
        service=service,
        subscription_id=subscription_id,
        plan_id=items[0].plan_id,
        record_count=len(items),
    )


def billable_usage(usage: Iterable[UsageItem], period: BillingPeriod) -> list[UsageItem]:
    """Usage that counts for ``period``: started inside the UTC range, not yet invoiced."""
    return [u for u in usage if u.invoice_id is None and period.contains(u.started_at)]


def build_invoice(
    *,
    account: AccountTerms,
    period: BillingPeriod,
    subscriptions: Iterable[SubscriptionTerms],
    plans: Mapping[str, PlanTerms],
    usage: Iterable[UsageItem],
) -> InvoiceDraft:
    """Build the invoice of ``account`` for ``period`` (see the module docstring).

    Raises :class:`UnknownPlan`, :class:`CurrencyMismatch` or
    :class:`UnsupportedBillingPeriod` when the account cannot be billed.
    """
    currency = account.currency
    lines: list[DraftLine] = []

    active = sorted(
        (s for s in subscriptions if is_active(s, period)),
        key=lambda s: (s.start_date, s.subscription_id),
    )
    for sub in active:
        plan = plans.get(sub.plan_id)
        if plan is None:
            raise UnknownPlan(
                f"subscription {sub.subscription_id} is on plan {sub.plan_id}, "
                "which invoicing has not seen published"
            )
        if plan.currency != currency:
            raise CurrencyMismatch(
                f"plan {plan.code or plan.plan_id} of subscription {sub.subscription_id} is "
                f"priced in {plan.currency} but the account bills in {currency}"
            )
        lines.append(recurring_line(sub, plan, period))

    counted = billable_usage(usage, period)
    groups: dict[tuple[str, str], list[UsageItem]] = {}
    for item in counted:
        if item.currency != currency:
            raise CurrencyMismatch(
                f"usage of subscription {item.subscription_id} is rated in {item.currency} "
                f"but the account bills in {currency}"
            )
        groups.setdefault((item.subscription_id, item.service), []).append(item)
    for (sub_id, service), items in sorted(groups.items()):
        items.sort(key=lambda i: (i.started_at, i.usage_id))
        lines.append(usage_line(sub_id, service, items, currency, plans.get(items[0].plan_id)))

    subtotal = Money.zero(currency)
    for line in lines:
        subtotal = subtotal + line.amount
    # Taxes and discounts will go between subtotal and total; today they are equal.
    total = subtotal
    return InvoiceDraft(
        account_id=account.account_id,
        currency=currency,
        period=period,
        lines=tuple(lines),
        subtotal=subtotal,
        total=total,
        usage_ids=tuple(sorted(i.usage_id for i in counted)),
    )
