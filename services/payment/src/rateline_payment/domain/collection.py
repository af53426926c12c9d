"""Automatic collection of a finalised invoice: what to charge, under which payment id.

Pure functions; the event handler in ``rateline_payment.events`` applies them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from rateline_shared.money import Money, minor_units

# Fixed forever: changing it would give already-collected invoices new payment ids, and so new
# idempotency keys at the provider (a second charge).
PAYMENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-4a0e-5b8e-9c7d-2f3a1e0b9d41")

PaymentStatus = Literal["pending", "succeeded", "failed"]
PAYMENT_STATUSES: tuple[PaymentStatus, ...] = ("pending", "succeeded", "failed")

NO_PAYMENT_METHOD = "no_payment_method"
INVALID_AMOUNT = "invalid_amount"
NO_PROVIDER = "none"  # the ``provider`` of a payment that never reached one


def payment_id_for(tenant: str, invoice_id: str) -> str:
    """The id of the one payment that collects ``invoice_id``.

    It is derived, not random: if the transaction that charged the card rolls back after the
    provider answered, the retry computes the same id, sends the same idempotency key, and gets
    the first outcome back instead of a second charge.
    """
    return str(uuid.uuid5(PAYMENT_ID_NAMESPACE, f"{tenant}\x00{invoice_id}"))


def is_minor_unit_amount(amount: Decimal, currency: str) -> bool:
    """Whether ``amount`` can be charged as-is (no more decimals than the currency's minor unit)."""
    exp = Decimal(1).scaleb(-minor_units(currency))
    return amount == amount.quantize(exp)


def canonical_amount(amount: Decimal, currency: str) -> Decimal:
    """``amount`` written with the currency's minor unit (``12.5`` EUR -> ``12.50``), if that is
    exact; otherwise with its own significant decimals. Never rounds."""
    if is_minor_unit_amount(amount, currency):
        return amount.quantize(Decimal(1).scaleb(-minor_units(currency)))
    return amount.normalize()


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to collect (a zero or credit invoice)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Charge:
    """Charge this amount to the account's default payment method."""

    amount: Money


@dataclass(frozen=True, slots=True)
class Refuse:
    """Record a failed payment without asking a provider (the amount cannot be charged)."""

    amount: Money
    failure_code: str
    failure_message: str


CollectionDecision = Skip | Charge | Refuse


def plan_collection(total: Decimal, currency: str) -> CollectionDecision:
    """Decide what to do with a finalised invoice's total.

    * zero or negative total: no payment at all (credits are settled elsewhere);
    * more decimals than the currency's minor unit: a failed payment (``invalid_amount``),
      never a silent rounding of what the customer owes;
    * otherwise: charge exactly the total.
    """
    if total <= 0:
        return Skip(f"total {total} {currency} is not positive")
    money = Money(total, currency)
    if not is_minor_unit_amount(total, currency):
        return Refuse(
            money,
            INVALID_AMOUNT,
            f"{total} has more decimals than {currency} allows ({minor_units(currency)})",
        )
    return Charge(Money(canonical_amount(total, currency), currency))
