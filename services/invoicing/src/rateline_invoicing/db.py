"""The invoicing service's tables (its own database; nobody else reads them).

Projections fed by other services' events (``accounts``, ``plans`` with their
``plan_versions`` and ``plan_migrations``, ``subscriptions``, ``rated_usage`` and the re-rating
``usage_adjustments``), and what invoicing owns (bill runs, invoices, numbering, payments seen,
the first invoice of each subscription).
Rated amounts keep the precision they arrive with (NUMERIC(28, 12) never rounds a
``DecimalString``); invoice amounts are already rounded to the currency's minor unit.
"""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from rateline_shared.db import new_metadata

metadata = new_metadata()

RATED = Numeric(28, 12)  # exact for every DecimalString (15 digits . 12 digits)
INVOICED = Numeric(20, 6)  # invoice amounts, rounded to the minor unit (<= 3 decimals)
QUANTITY = Numeric(24, 6)


def _created_at() -> Column[datetime]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


# --- projections ------------------------------------------------------------------------------
accounts = Table(
    "accounts",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("bill_cycle_day", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The plan's header: code, name and terms of its latest known version (for listings).
plans = Table(
    "plans",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("recurring_fee", RATED, nullable=False),
    Column("billing_period", String(20), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
)

# Every version of every plan (catalog.plan_version.published; a catalog.plan.published alone
# gives version 1 with ``source`` 'plan' until the version event replaces it).
plan_versions = Table(
    "plan_versions",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("plan_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("recurring_fee", RATED, nullable=False),
    Column("billing_period", String(20), nullable=False),
    Column("billing_timing", String(20), nullable=False),
    Column("one_time_charges", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("rates", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("source", String(20), nullable=False),  # version | plan
    CheckConstraint("source IN ('version', 'plan')", name="source"),
)

plan_migrations = Table(
    "plan_migrations",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("plan_id", String(64), nullable=False),
    Column("to_version", Integer, nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("subscription_ids", JSONB, nullable=True),  # null: every subscription of the plan
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_plan_migrations_tenant_plan_id", "tenant", "plan_id"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("line_id", String(64), nullable=True),
    Column("plan_id", String(64), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Index("ix_subscriptions_tenant_account_id", "tenant", "account_id"),
)

rated_usage = Table(
    "rated_usage",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("source", String(100), nullable=False),
    Column("record_id", String(200), nullable=False),
    Column("batch_id", String(64), nullable=True),
    Column("account_id", String(64), nullable=False),
    Column("line_id", String(64), nullable=True),
    Column("subscription_id", String(64), nullable=False),
    Column("plan_id", String(64), nullable=False),
    Column("service", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("quantity", RATED, nullable=False),
    Column("billed_quantity", RATED, nullable=False),
    Column("unit", String(20), nullable=False),
    Column("amount", RATED, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("invoice_id", String(36), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("plan_version", Integer, nullable=True),
    # per_unit | tariff (amount rated per record) | graduated | volume | package (priced at
    # invoice time on the period's chargeable quantity; amount 0)
    Column("pricing", String(20), nullable=False, server_default=text("'per_unit'")),
    Column("chargeable_quantity", RATED, nullable=True),  # null: the billed quantity
    UniqueConstraint("tenant", "source", "record_id", name="uq_rated_usage_tenant_source_record"),
    Index("ix_rated_usage_tenant_account_started", "tenant", "account_id", "started_at"),
    Index("ix_rated_usage_invoice_id", "invoice_id"),
    # What a bill run takes (this period and late records): only the uninvoiced rows.
    Index(
        "ix_rated_usage_uninvoiced",
        "tenant",
        "account_id",
        "started_at",
        postgresql_where=text("invoice_id IS NULL"),
    ),
)

# Re-rating adjustments (usage.records.rerated), one per (job, record). A record not invoiced
# yet is changed in place (status 'applied'); one already on an invoice keeps what was invoiced
# and the adjustment waits ('pending') for the account's next invoice ('invoiced').
usage_adjustments = Table(
    "usage_adjustments",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("job_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", String(100), nullable=False),
    Column("record_id", String(200), nullable=False),
    Column("usage_id", BigInteger, ForeignKey("rated_usage.id"), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("subscription_id", String(64), nullable=False),
    Column("plan_id", String(64), nullable=False),
    Column("plan_version", Integer, nullable=True),
    Column("service", String(20), nullable=False),
    Column("pricing", String(20), nullable=False),
    Column("unit", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("old_amount", RATED, nullable=False),
    Column("new_amount", RATED, nullable=False),
    Column("delta", RATED, nullable=False),
    Column("chargeable_quantity", RATED, nullable=True),  # the new one, if the job gave it
    Column("quantity_delta", RATED, nullable=False, server_default=text("0")),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("invoice_id", String(36), nullable=True),
    _created_at(),
    UniqueConstraint("tenant", "job_id", "source", "record_id", name="uq_usage_adjustments_job_record"),
    CheckConstraint("status IN ('applied', 'pending', 'invoiced')", name="status"),
    CheckConstraint("(invoice_id IS NULL) = (status <> 'invoiced')", name="invoice_iff_invoiced"),
    Index(
        "ix_usage_adjustments_pending",
        "tenant",
        "account_id",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_usage_adjustments_usage_id", "usage_id"),
    Index("ix_usage_adjustments_invoice_id", "invoice_id"),
)

# --- bill runs --------------------------------------------------------------------------------
bill_runs = Table(
    "bill_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("status", String(30), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("bill_cycle_day", Integer, nullable=True),
    Column("auto_finalize", Boolean, nullable=False),
    Column("accounts_total", Integer, nullable=False, server_default=text("0")),
    Column("accounts_done", Integer, nullable=False, server_default=text("0")),
    Column("invoices_created", Integer, nullable=False, server_default=text("0")),
    Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _created_at(),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        "status IN ('pending', 'running', 'completed', 'completed_with_errors')", name="status"
    ),
    CheckConstraint("period_end > period_start", name="period"),
    Index("ix_bill_runs_tenant_created", "tenant", "created_at", "id"),
    Index("ix_bill_runs_open", "created_at", postgresql_where=text("status IN ('pending', 'running')")),
)

# One row per account a run covers, taken when the run starts: the run's resumable to-do list.
bill_run_items = Table(
    "bill_run_items",
    metadata,
    Column("bill_run_id", String(36), ForeignKey("bill_runs.id"), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("tenant", String(64), nullable=False),
    # pending | invoiced | skipped (invoice exists) | nothing_to_bill | error
    Column("status", String(20), nullable=False),
    Column("invoice_id", String(36), nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_bill_run_items_pending", "bill_run_id", postgresql_where=text("status = 'pending'")),
)

# --- invoices ---------------------------------------------------------------------------------
invoices = Table(
    "invoices",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("bill_run_id", String(36), nullable=True),
    Column("status", String(20), nullable=False),
    Column("number", String(32), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("period_start_utc", DateTime(timezone=True), nullable=False),
    Column("period_end_utc", DateTime(timezone=True), nullable=False),
    Column("subtotal", INVOICED, nullable=False),
    Column("total", INVOICED, nullable=False),
    Column("amount_paid", INVOICED, nullable=False, server_default=text("0")),
    Column("issued_at", DateTime(timezone=True), nullable=True),
    Column("due_date", Date, nullable=True),
    Column("paid_at", DateTime(timezone=True), nullable=True),
    Column("last_payment_error", Text, nullable=True),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # One invoice per account and period, whatever runs, replicas or restarts happen.
    UniqueConstraint("tenant", "account_id", "period_start", name="uq_invoices_tenant_account_period"),
    UniqueConstraint("tenant", "number", name="uq_invoices_tenant_number"),
    CheckConstraint("status IN ('draft', 'finalized', 'paid')", name="status"),
    CheckConstraint("(number IS NULL) = (status = 'draft')", name="number_iff_final"),
    Index("ix_invoices_tenant_created", "tenant", "created_at", "id"),
    Index("ix_invoices_tenant_bill_run", "tenant", "bill_run_id"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("invoice_id", String(36), ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("description", String(300), nullable=False),
    Column("subscription_id", String(64), nullable=True),
    Column("plan_id", String(64), nullable=True),
    Column("service", String(20), nullable=True),
    Column("quantity", QUANTITY, nullable=False),
    Column("unit", String(20), nullable=False),
    Column("amount", INVOICED, nullable=False),
    Column("unrounded_amount", RATED, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("record_count", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_invoice_position"),
    CheckConstraint(
        "kind IN ('recurring', 'one_time', 'usage', 'late_usage', 'adjustment')", name="kind"
    ),
)

# The first invoice of each subscription, with the one-time charges it carried: a subscription
# listed here is never charged its one-time charges again.
subscription_first_invoices = Table(
    "subscription_first_invoices",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("subscription_id", String(64), primary_key=True),
    Column("invoice_id", String(36), nullable=False),
    Column("one_time_charges", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _created_at(),
)

# The per-tenant invoice number counter, locked FOR UPDATE by each finalize (gapless).
invoice_number_counters = Table(
    "invoice_number_counters",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("last_number", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Payment outcomes applied to invoices (a payment id counts once per outcome).
invoice_payments = Table(
    "invoice_payments",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("payment_id", String(64), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("invoice_id", String(36), nullable=False, index=True),
    Column("amount", RATED, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("failure_code", String(100), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
