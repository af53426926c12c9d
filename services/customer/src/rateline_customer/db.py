"""The customer service's tables (its own database; nobody else reads them)."""

from sqlalchemy import Column, Date, DateTime, Integer, String, Table, UniqueConstraint, func

from rateline_shared.db import new_metadata

metadata = new_metadata()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("bill_cycle_day", Integer, nullable=False),
    Column("country", String(2), nullable=False),
    Column("status", String(20), nullable=False),
    Column("external_ref", String(120), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant", "external_ref", name="uq_accounts_tenant_external_ref"),
)

lines = Table(
    "lines",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("account_id", String(36), nullable=False, index=True),
    Column("msisdn", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant", "msisdn", name="uq_lines_tenant_msisdn"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("account_id", String(36), nullable=False, index=True),
    Column("line_id", String(36), nullable=True, index=True),
    Column("plan_id", String(36), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Projection of catalog.plan.published: which plans exist, in which currency.
plans = Table(
    "plans",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
)
