"""Rules for partner endpoints: which events partners may receive, URLs, signing secrets."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

# The subjects of docs/CONTRACTS.md that leave Rateline towards partners.
PARTNER_EVENT_TYPES: tuple[str, ...] = (
    "invoicing.invoice.finalized",
    "invoicing.invoice.paid",
    "payment.payment.succeeded",
    "payment.payment.failed",
    "usage.allowance.threshold_reached",
    "usage.spend.threshold_reached",
)
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
MAX_URL_LENGTH = 2048


class DomainError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_url(url: str) -> str:
    """An absolute ``http``/``https`` URL with a host."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise DomainError("url", f"the URL must have 1 to {MAX_URL_LENGTH} characters")
    if any(ch.isspace() for ch in url):
        raise DomainError("url", "the URL must not contain white space")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise DomainError("url", f"{url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise DomainError("url", "the URL must start with https:// (or http://)")
    if not parts.hostname:
        raise DomainError("url", "the URL has no host")
    return url


class EventTypesError(ValueError):
    """One or more unknown event types (one field error each)."""

    def __init__(self, errors: list[DomainError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


def check_event_types(event_types: Sequence[str]) -> list[str]:
    """Known partner event types, duplicates dropped, order kept; all errors at once."""
    if not event_types:
        raise EventTypesError([DomainError("event_types", "subscribe to at least one event type")])
    known = ", ".join(PARTNER_EVENT_TYPES)
    errors = [
        DomainError(f"event_types.{i}", f"{t!r} is not an event partners can receive ({known})")
        for i, t in enumerate(event_types)
        if t not in PARTNER_EVENT_TYPES
    ]
    if errors:
        raise EventTypesError(errors)
    return list(dict.fromkeys(event_types))


def new_secret() -> str:
    """``whsec_`` + base64 of 24 random bytes: the Standard Webhooks secret format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
