"""Applying a payment to an invoice (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from rateline_invoicing.domain.errors import CurrencyMismatch
from rateline_shared.money import Money


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"


@dataclass(frozen=True, slots=True)
class Settlement:
    amount_paid: Decimal
    becomes_paid: bool  # this payment settles the invoice (emit invoicing.invoice.paid)


def settle(status: InvoiceStatus, total: Money, paid_so_far: Money, payment: Money) -> Settlement:
    """Add ``payment`` to what was paid; a finalized invoice is paid once nothing is due."""
    if payment.currency != total.currency:
        raise CurrencyMismatch(
            f"payment in {payment.currency} for an invoice in {total.currency}"
        )
    paid = paid_so_far + payment
    return Settlement(
        amount_paid=paid.amount,
        becomes_paid=status == InvoiceStatus.FINALIZED and paid.amount >= total.amount,
    )
