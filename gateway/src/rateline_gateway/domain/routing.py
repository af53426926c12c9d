"""Which service owns a public path (the prefix table of docs/CONTRACTS.md)."""

from __future__ import annotations

GATEWAY = "gateway"

PREFIXES: tuple[tuple[str, str], ...] = (
    ("/v1/accounts", "customer"),
    ("/v1/lines", "customer"),
    ("/v1/subscriptions", "customer"),
    ("/v1/admin/customer", "customer"),
    ("/v1/plans", "catalog"),
    ("/v1/products", "catalog"),
    ("/v1/tariff-imports", "catalog"),
    ("/v1/rating", "catalog"),
    ("/v1/admin/catalog", "catalog"),
    ("/v1/usage", "usage"),
    ("/v1/admin/usage", "usage"),
    ("/v1/bill-runs", "invoicing"),
    ("/v1/invoices", "invoicing"),
    ("/v1/billable-usage", "invoicing"),
    ("/v1/admin/invoicing", "invoicing"),
    ("/v1/payment-methods", "payment"),
    ("/v1/payments", "payment"),
    ("/v1/admin/payment", "payment"),
    ("/v1/webhook-endpoints", "webhooks"),
    ("/v1/webhook-deliveries", "webhooks"),
    ("/v1/admin/webhooks", "webhooks"),
    ("/v1/oauth-clients", GATEWAY),
)

SERVICES: tuple[str, ...] = tuple(
    dict.fromkeys(service for _, service in PREFIXES if service != GATEWAY)
)


def owner_of(path: str) -> str | None:
    """The service owning ``path`` (whole path segments only: ``/v1/plansx`` matches nothing)."""
    for prefix, service in PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None
