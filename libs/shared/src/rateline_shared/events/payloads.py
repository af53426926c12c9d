"""Event payload contracts (the ``data`` of each CloudEvent), shared by publisher and consumers.

Amounts are decimal strings with a currency; times are UTC ISO 8601. Adding an optional field
is compatible; anything else bumps the version in ``dataschema``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

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
class Tier(Payload):
    """One tier of graduated or volume pricing, in the component's priced unit."""

    up_to: DecimalString | None = None  # inclusive upper bound; None: the last, open tier
    unit_price: DecimalString
    flat_fee: DecimalString = Decimal(0)  # charged once when any quantity falls in the tier


class TariffRef(Payload):
    """Which imported (CGRateS) rating profile prices a usage component."""

    category: str  # the profile's Category, e.g. "call", "sms", "data"
    subject: str  # the profile's Subject; "*line" means the line's E.164 number without "+"


class UsageRate(Payload):
    """One usage charge of a plan version, per service.

    ``pricing``:

    * ``per_unit``: ``price`` per ``unit`` with rating increments, rated record by record;
    * ``tariff``: destination-based, by the imported tariff plan's rating profile ``tariff``,
      rated record by record (``price`` unused);
    * ``graduated`` / ``volume``: ``tiers`` over the period's chargeable quantity, priced at
      invoice time (records carry amount 0 and their chargeable quantity);
    * ``package``: ``price`` per started block of ``package_size`` units, at invoice time.

    ``minimum_charge`` (invoice-time models) is the least charged for the component in a
    period in which the subscription is active. Increments are in the measured unit: seconds
    for voice, bytes for data; 1 for sms/mms.
    """

    service: str  # voice | sms | mms | data
    unit: str  # voice: minute | second; sms/mms: message; data: KB | MB | GB (1024-based)
    price: DecimalString = Decimal(0)
    first_increment: int = 1
    increment: int = 1
    pricing: str = "per_unit"  # per_unit | tariff | graduated | volume | package
    tiers: list[Tier] = []
    package_size: DecimalString | None = None
    minimum_charge: DecimalString | None = None
    tariff: TariffRef | None = None


class Allowance(Payload):
    """A bundle: ``quantity`` of ``unit`` per billing cycle, consumed before overage is charged."""

    code: str
    service: str  # voice | sms | mms | data
    quantity: DecimalString
    unit: str  # minute | second | message | KB | MB | GB
    destinations: list[str] = []  # E.164 prefixes (digits, no "+") covered; empty: all
    pooled: bool = False  # one balance shared by all of the account's subscriptions on this plan
    rollover_cap: DecimalString | None = None  # in ``unit``; None: unused quantity expires
    thresholds: list[int] = [80, 100]  # percentages that emit usage.allowance.threshold_reached


class OneTimeCharge(Payload):
    """Charged once, on the first invoice of a subscription (activation, equipment)."""

    code: str
    description: str
    amount: DecimalString


class SpendCap(Payload):
    """A per-cycle spend limit of one subscription's rated usage; thresholds emit events."""

    amount: DecimalString
    thresholds: list[int] = [80, 100]


class PlanPublished(Payload):
    """``catalog.plan.published``"""

    plan_id: str
    code: str
    name: str
    currency: str
    recurring_fee: DecimalString
    billing_period: str  # monthly | quarterly | yearly
    rates: list[UsageRate]
    published_at: datetime


class PlanVersionPublished(Payload):
    """``catalog.plan_version.published``: one version of a plan with every component.

    Published for version 1 when a plan is created and for each later version. A version
    applies to subscriptions that start on or after ``effective_from`` (until a later version);
    subscriptions keep the version they started on unless a migration moves them.
    """

    plan_id: str
    code: str
    name: str
    product_id: str | None = None
    currency: str
    version: int
    effective_from: datetime
    recurring_fee: DecimalString
    billing_period: str  # monthly | quarterly | yearly
    billing_timing: str = "advance"  # advance | arrears
    one_time_charges: list[OneTimeCharge] = []
    rates: list[UsageRate] = []
    allowances: list[Allowance] = []
    spend_cap: SpendCap | None = None
    published_at: datetime


class PlanMigrationScheduled(Payload):
    """``catalog.plan_migration.scheduled``: subscriptions of a plan move to ``to_version``.

    From ``effective_from`` on, the listed subscriptions (``None``: every subscription of the
    plan that started before ``effective_from``) are on ``to_version``.
    """

    migration_id: str
    plan_id: str
    to_version: int
    effective_from: datetime
    subscription_ids: list[str] | None = None
    created_at: datetime


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
    destination: str | None = None
    plan_version: int | None = None
    pricing: str = "per_unit"  # the component's pricing; graduated/volume/package: amount 0
    # billed_quantity minus the allowance used (same unit); None means billed_quantity.
    chargeable_quantity: DecimalString | None = None
    allowance_code: str | None = None
    allowance_used: DecimalString = Decimal(0)  # in the billed unit (seconds, messages, bytes)
    rating_plan: str | None = None  # tariff pricing: the CGRateS rating plan that priced it


class RecordsRated(Payload):
    """``usage.records.rated``: a chunk of records rated together (at most 500)."""

    batch_id: str
    records: list[RatedRecord]


class AllowanceThresholdReached(Payload):
    """``usage.allowance.threshold_reached``: once per (balance, cycle, threshold)."""

    account_id: str
    subscription_id: str | None  # None: a pooled balance of the account
    allowance_code: str
    service: str
    plan_id: str
    period_start: date  # the account's billing cycle, local dates, end exclusive
    period_end: date
    threshold: int  # percent
    granted: DecimalString  # in the allowance's base unit (seconds, messages, bytes)
    used: DecimalString
    unit: str  # second | message | byte
    reached_at: datetime


class SpendThresholdReached(Payload):
    """``usage.spend.threshold_reached``: once per (subscription, cycle, threshold)."""

    account_id: str
    subscription_id: str
    plan_id: str
    period_start: date
    period_end: date
    threshold: int
    cap: DecimalString
    spent: DecimalString
    currency: str
    reached_at: datetime


class Adjustment(Payload):
    """One record whose rated amount a re-rating changed (``delta`` = new - old)."""

    source: str
    record_id: str
    account_id: str
    subscription_id: str
    plan_id: str
    service: str
    started_at: datetime
    old_amount: DecimalString
    new_amount: DecimalString
    delta: DecimalString
    currency: str
    chargeable_quantity: DecimalString | None = None


class RecordsRerated(Payload):
    """``usage.records.rerated``: a chunk (at most 500) of adjustments of one re-rating job."""

    job_id: str
    reason: str
    adjustments: list[Adjustment]


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
    # The imported CSV files: base64 of gzip of a JSON object {file name: text}, so that the
    # usage service compiles the same plan into its own projection (no HTTP on the hot path).
    files_gzip_b64: str = ""
    # The IANA zone the plan's timings (time bands, days, holidays) are read in (CGRateS's
    # ``default_timezone``); ``get_cost(..., timezone=...)``.
    timezone: str = "UTC"


def encode_tariff_files(files: Mapping[str, str]) -> str:
    """``TariffImported.files_gzip_b64`` of ``{file name: CSV text}``: base64 of gzip of the
    JSON object, deterministic (sorted names, gzip mtime 0)."""
    raw = json.dumps(dict(files), sort_keys=True, ensure_ascii=False).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii")


def decode_tariff_files(files_gzip_b64: str) -> dict[str, str]:
    """The inverse of :func:`encode_tariff_files`; ``ValueError`` when it is not such a text."""
    try:
        files = json.loads(gzip.decompress(base64.b64decode(files_gzip_b64, validate=True)))
    except (binascii.Error, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"the tariff files cannot be decoded: {exc}") from exc
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ValueError("the tariff files are not a JSON object of file name -> text")
    return files
