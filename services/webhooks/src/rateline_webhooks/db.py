"""The webhooks service's tables (its own database; nobody else reads them)."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from rateline_shared.db import new_metadata

metadata = new_metadata()

# A partner's URL and the event types it wants. The signing secret must be kept in a form we
# can sign with (HMAC needs the key itself); it is shown to the partner once, at creation.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", String(500), nullable=True),
    Column("event_types", ARRAY(String(200)), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("status", String(20), nullable=False),  # enabled | disabled
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_endpoints_tenant_status", "tenant", "status"),
)

# One event for one endpoint. ``event_id`` is the Standard Webhooks ``webhook-id`` (the
# partner de-duplicates on it); ``payload`` is the exact JSON document that is signed and sent.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column(
        "endpoint_id",
        String(36),
        ForeignKey("webhook_endpoints.id", name="fk_webhook_deliveries_endpoint_id"),
        nullable=False,
    ),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("status", String(20), nullable=False),  # pending | sending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),  # all, ever
    # Attempts since the delivery was last queued (created or replayed): drives the back-off.
    Column("round_attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    Index("ix_webhook_deliveries_tenant_created", "tenant", "created_at", "id"),
    # What the delivery worker scans: due pending rows and expired leases.
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    Index(
        "ix_webhook_deliveries_leases",
        "lease_expires_at",
        postgresql_where=text("status = 'sending'"),
    ),
)

# Every HTTP attempt, written when it starts (so an attempt cut short by a dying process is
# still on the record) and completed with its outcome.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column(
        "delivery_id",
        String(36),
        ForeignKey("webhook_deliveries.id", name="fk_delivery_attempts_delivery_id"),
        nullable=False,
    ),
    Column("number", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    UniqueConstraint("delivery_id", "number", name="uq_delivery_attempts_delivery_number"),
)
