"""Event payload contracts (the ``data`` of each CloudEvent), shared by publisher and consumers.

Amounts are decimal strings with a currency; times are UTC ISO 8601. Adding an optional field
is compatible; anything else bumps the version in ``dataschema``.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from rateline_shared.money import DecimalString


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- customer -------------------------------------------------------------------------------
class AccountCreated(Payload):
    """``customer.account.created``"""

    account_id: str
    name: str
    currency: str
    timezone: str
    bill_cycle_day: int
    country: str
    created_at: datetime


class LineCreated(Payload):
    """``customer.line.created``"""

    line_id: str
    account_id: str
    msisdn: str
    status: str
    activated_at: datetime


class SubscriptionActivated(Payload):
    """``customer.subscription.activated``"""

    subscription_id: str
    account_id: str
    line_id: str | None
    plan_id: str
    start_date: date
    activated_at: datetime


# --- catalog --------------------------------------------------------------------------------
class UsageRate(Payload):
    """One usage charge of a plan: ``price`` per ``unit`` with rating increments (seconds)."""

    service: str  # voice | sms
    unit: str  # minute | message
    price: DecimalString
    first_increment: int = 1  # voice: the minimum billed seconds (60 in 60/60)
    increment: int = 1  # voice: the billing step after the first (60 in 60/60)


class PlanPublished(Payload):
    """``catalog.plan.published``"""

    plan_id: str
    code: str
    name: str
    currency: str
    recurring_fee: DecimalString
    billing_period: str  # monthly
    rates: list[UsageRate]
    published_at: datetime


# --- usage ----------------------------------------------------------------------------------
class RatedRecord(Payload):
    record_id: str
    source: str
    account_id: str
    line_id: str
    subscription_id: str
    plan_id: str
    service: str
    started_at: datetime
    quantity: DecimalString  # seconds or messages as measured
    billed_quantity: DecimalString  # after increments
    unit: str
    amount: DecimalString  # rated precision (4 decimals), not yet rounded to the minor unit
    currency: str


class RecordsRated(Payload):
    """``usage.records.rated``: a chunk of records rated together (at most 500)."""

    batch_id: str
    records: list[RatedRecord]


# --- invoicing ------------------------------------------------------------------------------
class InvoiceFinalized(Payload):
    """``invoicing.invoice.finalized``"""

    invoice_id: str
    number: str
    account_id: str
    period_start: date
    period_end: date
    total: DecimalString
    currency: str
    due_date: date
    finalized_at: datetime


class InvoicePaid(Payload):
    """``invoicing.invoice.paid``"""

    invoice_id: str
    number: str
    account_id: str
    amount_paid: DecimalString
    currency: str
    payment_id: str
    paid_at: datetime


# --- payment --------------------------------------------------------------------------------
class PaymentOutcome(Payload):
    """``payment.payment.succeeded`` and ``payment.payment.failed``"""

    payment_id: str
    invoice_id: str
    account_id: str
    amount: DecimalString
    currency: str
    status: str  # succeeded | failed
    provider: str
    provider_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    occurred_at: datetime


# --- catalog: tariff plans -------------------------------------------------------------------
class TariffImported(Payload):
    """``catalog.tariff.imported``: a tariff plan (e.g. CGRateS CSV) was imported and is in force."""

    import_id: str
    format: str
    currency: str
    counts: dict[str, int]
    imported_at: datetime
