"""The catalog service's tables (its own database; nobody else reads them).

Amounts are unconstrained ``NUMERIC``: PostgreSQL keeps the exact value *and scale* that was
sent ("0.10" comes back as "0.10", never as a float). Their size and number of decimals are
bounded by the domain rules (``domain.plans``) before anything is written.
"""

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from rateline_shared.db import new_metadata

metadata = new_metadata()

products = Table(
    "products",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant", "code", name="uq_products_tenant_code"),
    Index("ix_products_tenant_created_at_id", "tenant", "created_at", "id"),
)

# A plan: identity and currency. What it charges lives in its versions. ``recurring_fee`` and
# ``billing_period`` keep version 1's values as created (the API shows the current version's).
plans = Table(
    "plans",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("product_id", String(36), ForeignKey("products.id"), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("recurring_fee", Numeric(asdecimal=True), nullable=False),
    Column("billing_period", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant", "code", name="uq_plans_tenant_code"),
    Index("ix_plans_tenant_created_at_id", "tenant", "created_at", "id"),
)

# Plan versions: every component of one version, written once and never updated (a trigger of
# migration 0003 refuses UPDATE). Components are JSONB in the event contract's shape
# (rateline_shared.events.payloads: OneTimeCharge, UsageRate, Allowance, SpendCap) with amounts
# as decimal strings, so they are read back exactly as published.
plan_versions = Table(
    "plan_versions",
    metadata,
    Column("plan_id", String(36), ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("recurring_fee", Numeric(asdecimal=True), nullable=False),
    Column("billing_period", String(20), nullable=False),
    Column("billing_timing", String(20), nullable=False),
    Column("one_time_charges", JSONB, nullable=False),
    Column("rates", JSONB, nullable=False),
    Column("allowances", JSONB, nullable=False),
    Column("spend_cap", JSONB, nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_plan_versions_tenant_plan_id", "tenant", "plan_id"),
)

plan_migrations = Table(
    "plan_migrations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("plan_id", String(36), nullable=False),
    Column("to_version", Integer, nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("subscription_ids", JSONB, nullable=True),  # null: every subscription of the plan
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["plan_id", "to_version"],
        ["plan_versions.plan_id", "plan_versions.version"],
        name="fk_plan_migrations_plan_version",
    ),
    Index("ix_plan_migrations_tenant_plan_id_created_at", "tenant", "plan_id", "created_at", "id"),
)

# Projection of the customer service's accounts (time zone only), lines and subscriptions
# (customer.account.created, customer.line.created, customer.subscription.activated), so that a
# quote can name a line. Only the customer service writes the originals; these rows are upserts
# of its events.
accounts = Table(
    "accounts",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("timezone", String(64), nullable=False),
)

lines = Table(
    "lines",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("msisdn", String(32), nullable=False),
    Column("status", String(20), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Index("ix_lines_tenant_msisdn", "tenant", "msisdn"),
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
    Index("ix_subscriptions_tenant_line_id", "tenant", "line_id"),
)

# Imported CGRateS tariff plans. An import keeps the six CSV files exactly as uploaded (they
# are re-parsed, cheaply and with the same rules, to rate); the tenant's latest import is the
# one in force. ``summary`` holds the counts per kind reported to the client.
tariff_imports = Table(
    "tariff_imports",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("format", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    # The IANA zone the plan's timings are read in (CGRateS's default_timezone).
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("summary", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_tariff_imports_tenant_created_at_id", "tenant", "created_at", "id"),
)

tariff_import_files = Table(
    "tariff_import_files",
    metadata,
    Column(
        "import_id",
        String(36),
        ForeignKey("tariff_imports.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(64), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("content", Text, nullable=False),
)
