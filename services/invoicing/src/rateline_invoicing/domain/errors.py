"""Errors of the pure invoicing rules. The API and the bill run map them to problems/reports."""

from __future__ import annotations


class DomainError(ValueError):
    """A rule was broken; ``code`` is stable (used in bill-run error reports)."""

    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PeriodError(DomainError):
    """A bad billing period (``field`` names the offending input)."""

    code = "invalid-period"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class BillingError(DomainError):
    """An account cannot be invoiced for the period; nothing is written for it."""

    code = "billing-error"


class CurrencyMismatch(BillingError):
    code = "currency-mismatch"


class UnknownPlan(BillingError):
    code = "unknown-plan"


class UnsupportedBillingPeriod(BillingError):
    code = "unsupported-billing-period"
