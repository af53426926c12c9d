"""Event subjects this service publishes and consumes (see docs/CONTRACTS.md)."""

SERVICE = "invoicing"

# published
INVOICE_FINALIZED = "invoicing.invoice.finalized"
INVOICE_PAID = "invoicing.invoice.paid"

# consumed
ACCOUNT_CREATED = "customer.account.created"
SUBSCRIPTION_ACTIVATED = "customer.subscription.activated"
PLAN_PUBLISHED = "catalog.plan.published"  # version 1 only; kept for older catalogs
PLAN_VERSION_PUBLISHED = "catalog.plan_version.published"
PLAN_MIGRATION_SCHEDULED = "catalog.plan_migration.scheduled"
RECORDS_RATED = "usage.records.rated"
RECORDS_RERATED = "usage.records.rerated"
PAYMENT_SUCCEEDED = "payment.payment.succeeded"
PAYMENT_FAILED = "payment.payment.failed"
