"""Invoice numbers and payment terms."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from rateline_invoicing.domain.periods import zone

NUMBER_PREFIX = "INV-"
NUMBER_DIGITS = 6


def format_invoice_number(sequence: int) -> str:
    """``1`` -> ``INV-000001``. The sequence is per tenant, gapless, starting at 1."""
    if sequence < 1:
        raise ValueError("invoice numbers start at 1")
    return f"{NUMBER_PREFIX}{sequence:0{NUMBER_DIGITS}d}"


def due_date(finalized_at: datetime, timezone: str, payment_terms_days: int) -> date:
    """The finalize date *in the account's time zone* plus the payment terms."""
    if finalized_at.tzinfo is None:
        raise ValueError("finalized_at must be an aware datetime")
    return finalized_at.astimezone(zone(timezone)).date() + timedelta(days=payment_terms_days)
