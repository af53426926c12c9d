"""Event subjects this service publishes and consumes (see docs/CONTRACTS.md)."""

SERVICE = "invoicing"

# published
INVOICE_FINALIZED = "invoicing.invoice.finalized"
INVOICE_PAID = "invoicing.invoice.paid"

# consumed
ACCOUNT_CREATED = "customer.account.created"
SUBSCRIPTION_ACTIVATED = "customer.subscription.activated"
PLAN_PUBLISHED = "catalog.plan.published"
RECORDS_RATED = "usage.records.rated"
PAYMENT_SUCCEEDED = "payment.payment.succeeded"
PAYMENT_FAILED = "payment.payment.failed"
