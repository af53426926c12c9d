"""The catalog service's tables (its own database; nobody else reads them).

Amounts are unconstrained ``NUMERIC``: PostgreSQL keeps the exact value *and scale* that was
sent ("0.10" comes back as "0.10", never as a float). Their size and number of decimals are
bounded by the domain rules (``domain.plans``) before anything is written.
"""

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
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

plans = Table(
    "plans",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("recurring_fee", Numeric(asdecimal=True), nullable=False),
    Column("billing_period", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant", "code", name="uq_plans_tenant_code"),
    Index("ix_plans_tenant_created_at_id", "tenant", "created_at", "id"),
)

# Usage charges of a plan: one row per service (voice, sms) for now. Destination-based tariffs
# (prefixes, time bands) will get their own tables next to this one.
plan_rates = Table(
    "plan_rates",
    metadata,
    Column("plan_id", String(36), ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True),
    Column("service", String(20), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("unit", String(20), nullable=False),
    Column("price", Numeric(asdecimal=True), nullable=False),
    Column("first_increment", Integer, nullable=False),
    Column("increment", Integer, nullable=False),
    Column("position", Integer, nullable=False),
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
