"""The usage service's tables (its own database; nobody else reads them).

``accounts``, ``lines``, ``subscriptions`` and ``plans`` are projections of other services'
events, keyed by (tenant, id) and written only by the consumers in ``events.py``.
``usage_records`` holds every accepted record, rated or rejected, exactly once per
(tenant, source, record_id). A malformed row of a file import is kept too (rejected
``malformed``, its ``raw`` row stored, the fields that could not be read left NULL until a
correction fills them). ``corrections`` audits every correction with the values it replaced.
``imports`` records each file import with its counts; ``column_mappings`` are saved layouts
of CSV files.

Quantities and amounts are unconstrained ``NUMERIC``: PostgreSQL stores the exact ``Decimal``
rating produced *with its scale* (a rated amount has 4 decimals, see
``domain.rating.RATED_PRECISION``), so "0.2000" is read back as "0.2000".
"""

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from rateline_shared.db import new_metadata

metadata = new_metadata()

# --- projections --------------------------------------------------------------------------
accounts = Table(
    "accounts",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("country", String(2), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "id", name="pk_accounts"),
)

lines = Table(
    "lines",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("msisdn", String(32), nullable=False),
    Column("status", String(20), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "id", name="pk_lines"),
    # Not unique: a number may pass from one line to another over time.
    Index("ix_lines_tenant_msisdn", "tenant", "msisdn"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("line_id", String(36), nullable=True),  # NULL: an account-level subscription
    Column("plan_id", String(36), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "id", name="pk_subscriptions"),
    Index("ix_subscriptions_tenant_line_id", "tenant", "line_id"),
)

plans = Table(
    "plans",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("code", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    # The UsageRate payloads of catalog.plan.published, as published (decimal strings).
    Column("rates", JSONB, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "id", name="pk_plans"),
)

# --- usage --------------------------------------------------------------------------------
usage_records = Table(
    "usage_records",
    metadata,
    Column("id", String(36), primary_key=True),  # time-ordered (UUIDv7), see ids.py
    Column("tenant", String(64), nullable=False),
    Column("source", String(100), nullable=False),
    Column("record_id", String(200), nullable=False),
    Column("service", String(20), nullable=True),
    Column("msisdn", String(40), nullable=True),  # E.164 when readable, else as received
    Column("destination", String(64), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("quantity", Numeric(asdecimal=True), nullable=True),
    Column("unit", String(20), nullable=True),
    Column("status", String(20), nullable=False),  # rated | rejected
    Column("reason", String(40), nullable=True),
    Column("reason_message", Text, nullable=True),
    Column("line_id", String(36), nullable=True),
    Column("account_id", String(36), nullable=True),
    Column("subscription_id", String(36), nullable=True),
    Column("plan_id", String(36), nullable=True),
    Column("billed_quantity", Numeric(asdecimal=True), nullable=True),
    Column("amount", Numeric(asdecimal=True), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("rated_at", DateTime(timezone=True), nullable=True),
    Column("raw", Text, nullable=True),  # the file row a record came from (imports)
    Column("import_id", String(36), nullable=True),
    # [{"at", "by", "original": {...}, "changes": {...}}, ...] oldest first
    Column("corrections", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # De-duplication forever: one record per (tenant, source, record_id).
    UniqueConstraint("tenant", "source", "record_id", name="uq_usage_records_tenant_source_record_id"),
    Index("ix_usage_records_tenant_created_at_id", "tenant", "created_at", "id"),
    Index("ix_usage_records_tenant_status_created_at", "tenant", "status", "created_at", "id"),
    Index("ix_usage_records_tenant_msisdn", "tenant", "msisdn"),
    Index("ix_usage_records_tenant_account_id", "tenant", "account_id"),
    Index("ix_usage_records_tenant_reason", "tenant", "reason"),
    Index("ix_usage_records_tenant_import_id", "tenant", "import_id"),
)

column_mappings = Table(
    "column_mappings",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("name", String(100), nullable=False),
    Column("header", Boolean, nullable=False),
    Column("columns", JSONB, nullable=False),  # {field: column name | 0-based index}
    Column("service", String(20), nullable=True),
    Column("time_format", String(64), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "id", name="pk_column_mappings"),
    UniqueConstraint("tenant", "name", name="uq_column_mappings_tenant_name"),
)

imports = Table(
    "imports",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("format", String(20), nullable=False),
    Column("source", String(100), nullable=False),
    Column("mapping_id", String(36), nullable=True),
    Column("timezone", String(64), nullable=False),
    Column("received", Integer, nullable=False),
    Column("rated", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("malformed", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "id", name="pk_imports"),
)
