"""The payment service's tables (its own database; nobody else reads them).

Amounts are ``NUMERIC(28, 12)`` beside a currency column: wide enough for every decimal string
the API and the event payloads accept (15 integer digits, 12 decimals), so storing an amount
never rounds it. Floats never touch money.
"""

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

from rateline_shared.db import new_metadata

metadata = new_metadata()

AMOUNT = Numeric(28, 12)

# Projection of customer.account.created: which accounts exist, and their billing currency.
accounts = Table(
    "accounts",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "id", name="pk_accounts"),
)

# A card (or other instrument) held at a provider: we keep the provider's token, never a PAN.
payment_methods = Table(
    "payment_methods",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("token", String(200), nullable=False),
    Column("brand", String(32), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_payment_methods_tenant_account", "tenant", "account_id"),
    # At most one default method per account, whatever happens concurrently.
    Index(
        "uq_payment_methods_one_default",
        "tenant",
        "account_id",
        unique=True,
        postgresql_where=text("is_default"),
    ),
)

# One collection of one invoice. ``id`` is derived from (tenant, invoice_id) and doubles as
# the provider's idempotency key (see domain/collection.py).
payments = Table(
    "payments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("invoice_id", String(36), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),  # pending | succeeded | failed
    Column("payment_method_id", String(36), nullable=True),
    Column("provider", String(32), nullable=True),
    Column("provider_reference", String(120), nullable=True),
    Column("failure_code", String(64), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant", "invoice_id", name="uq_payments_tenant_invoice_id"),
    Index("ix_payments_tenant_account_id", "tenant", "account_id"),
    Index("ix_payments_tenant_created", "tenant", "created_at", "id"),
)

# The sandbox provider's own books: what a real processor keeps on its side. One row per
# (merchant, idempotency key); a repeated charge with the same key returns this row.
sandbox_charges = Table(
    "sandbox_charges",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("idempotency_key", String(120), nullable=False),
    Column("reference", String(64), nullable=False, unique=True),
    Column("token", String(200), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),  # succeeded | failed
    Column("failure_code", String(64), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "idempotency_key", name="pk_sandbox_charges"),
)
