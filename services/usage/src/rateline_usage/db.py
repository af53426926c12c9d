"""The usage service's tables (its own database; nobody else reads them).

``accounts``, ``lines``, ``subscriptions``, ``plan_versions``, ``plan_migrations`` and
``tariff_imports`` are projections of other services' events, written only by the consumers in
``events.py``. ``allowance_balances`` (per owner, plan, allowance code and billing cycle),
``spend_totals`` (per subscription and cycle) and ``threshold_marks`` (one row per threshold
ever reached: the unique key makes each threshold event exactly once) are the rating state.
``usage_records`` holds every accepted record, rated or rejected, exactly once per
(tenant, source, record_id). A malformed row of a file import is kept too (rejected
``malformed``, its ``raw`` row stored, the fields that could not be read left NULL until a
correction fills them). ``corrections`` audits every correction with the values it replaced.
``imports`` records each file import with its counts; ``column_mappings`` are saved layouts
of CSV files. ``rerating_jobs`` and ``rerating_adjustments`` are the re-rating jobs and the
record changes they made (see ``rerating.py``).

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
    text,
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
    Column("bill_cycle_day", Integer, nullable=False, server_default="1"),
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

plan_versions = Table(
    "plan_versions",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("plan_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("code", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    # The UsageRate / Allowance / SpendCap payloads of catalog.plan_version.published, as
    # published (decimal strings).
    Column("rates", JSONB, nullable=False),
    Column("allowances", JSONB, nullable=False),
    Column("spend_cap", JSONB, nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "plan_id", "version", name="pk_plan_versions"),
)

plan_migrations = Table(
    "plan_migrations",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("plan_id", String(36), nullable=False),
    Column("to_version", Integer, nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("subscription_ids", JSONB, nullable=True),  # NULL: every subscription of the plan
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "id", name="pk_plan_migrations"),
    Index("ix_plan_migrations_tenant_plan_id", "tenant", "plan_id"),
)

tariff_imports = Table(
    "tariff_imports",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("format", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("counts", JSONB, nullable=False),
    Column("files_gzip_b64", Text, nullable=False),  # compiled once per process and import
    Column("imported_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "id", name="pk_tariff_imports"),
    # The tenant's latest import is in force.
    Index("ix_tariff_imports_tenant_imported_at", "tenant", "imported_at"),
)

# --- rating state -------------------------------------------------------------------------
allowance_balances = Table(
    "allowance_balances",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("owner_kind", String(20), nullable=False),  # subscription | account (pooled)
    Column("owner_id", String(36), nullable=False),
    Column("plan_id", String(36), nullable=False),
    Column("allowance_code", String(64), nullable=False),
    Column("period_start", Date, nullable=False),  # the account's cycle, local dates
    Column("period_end", Date, nullable=False),  # exclusive
    Column("account_id", String(36), nullable=False),
    Column("subscription_id", String(36), nullable=True),  # NULL when pooled
    Column("service", String(20), nullable=False),
    Column("unit", String(20), nullable=False),  # second | message | byte
    Column("granted", Numeric(asdecimal=True), nullable=False),  # quantity + rollover
    Column("rollover", Numeric(asdecimal=True), nullable=False),
    Column("used", Numeric(asdecimal=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint(
        "tenant", "owner_kind", "owner_id", "plan_id", "allowance_code", "period_start",
        name="pk_allowance_balances",
    ),
    Index("ix_allowance_balances_tenant_account_id", "tenant", "account_id", "period_start"),
)

spend_totals = Table(
    "spend_totals",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("subscription_id", String(36), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("plan_id", String(36), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Numeric(asdecimal=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "subscription_id", "period_start", name="pk_spend_totals"),
)

threshold_marks = Table(
    "threshold_marks",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("kind", String(20), nullable=False),  # allowance | spend
    Column("owner_kind", String(20), nullable=False),
    Column("owner_id", String(36), nullable=False),
    Column("plan_id", String(36), nullable=False),
    Column("code", String(64), nullable=False),  # the allowance code; "" for spend
    Column("period_start", Date, nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("reached_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint(
        "tenant", "kind", "owner_kind", "owner_id", "plan_id", "code", "period_start", "threshold",
        name="pk_threshold_marks",
    ),
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
    Column("plan_version", Integer, nullable=True),
    Column("pricing", String(20), nullable=True),  # per_unit | tariff | graduated | volume | package
    Column("chargeable_quantity", Numeric(asdecimal=True), nullable=True),  # billed - allowance used
    Column("allowance_code", String(64), nullable=True),
    Column("allowance_used", Numeric(asdecimal=True), nullable=True),
    Column("rating_plan", String(100), nullable=True),  # tariff: the CGRateS rating plan
    Column("tariff_intervals", JSONB, nullable=True),  # tariff: the engine's intervals
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

# --- re-rating ----------------------------------------------------------------------------
# A re-rating job: one scope (a line, an account, a plan, or every tariff-priced record) over a
# period of record starts. ``until_id`` bounds the job to the records in scope when it was
# created (records rated later were rated with the projections it would use); ``cursor`` is the
# last record id processed (keyset over ``usage_records.id``). Progress, per-currency deltas
# (``{"EUR": "-0.2000"}``) and skip reasons (``{"unknown-destination": 2}``) advance in the same
# transaction as each chunk of records.
rerating_jobs = Table(
    "rerating_jobs",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("status", String(20), nullable=False),  # queued | running | completed | failed
    Column("scope_kind", String(20), nullable=False),  # line | account | plan | tariff
    Column("scope_id", String(36), nullable=True),  # NULL for tariff
    Column("started_from", DateTime(timezone=True), nullable=False),
    Column("started_before", DateTime(timezone=True), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("total", Integer, nullable=False),
    Column("until_id", String(36), nullable=True),  # NULL: nothing in scope at creation
    Column("cursor", String(36), nullable=True),
    Column("processed", Integer, nullable=False, server_default="0"),
    Column("changed", Integer, nullable=False, server_default="0"),
    Column("skipped", Integer, nullable=False, server_default="0"),
    Column("skipped_reasons", JSONB, nullable=False, server_default="{}"),
    Column("deltas", JSONB, nullable=False, server_default="{}"),
    Column("attempts", Integer, nullable=False, server_default="0"),  # failures of the next chunk
    Column("error", Text, nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "id", name="pk_rerating_jobs"),
    Index("ix_rerating_jobs_tenant_created_at", "tenant", "created_at", "id"),
    # The workers' claim: open jobs, least recently advanced first (any tenant).
    Index(
        "ix_rerating_jobs_open", "updated_at", "id",
        postgresql_where=text("status IN ('queued', 'running')"),
    ),
)

# One row per record a job changed (amount or chargeable quantity), with the values it replaced
# (``previous``: billed quantity, plan version, rating plan, tariff intervals). The key makes a
# record's adjustment exist at most once per job.
rerating_adjustments = Table(
    "rerating_adjustments",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("job_id", String(36), nullable=False),
    Column("usage_id", String(36), nullable=False),  # usage_records.id
    Column("source", String(100), nullable=False),
    Column("record_id", String(200), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("subscription_id", String(36), nullable=False),
    Column("plan_id", String(36), nullable=False),
    Column("service", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("old_amount", Numeric(asdecimal=True), nullable=False),
    Column("new_amount", Numeric(asdecimal=True), nullable=False),
    Column("delta", Numeric(asdecimal=True), nullable=False),
    Column("old_chargeable_quantity", Numeric(asdecimal=True), nullable=False),
    Column("new_chargeable_quantity", Numeric(asdecimal=True), nullable=False),
    Column("previous", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "job_id", "usage_id", name="pk_rerating_adjustments"),
)
