"""Scope names and the client-credentials scope rule (RFC 6749 §3.3), as pure functions.

A client is registered with a set of scopes. A token request may ask for fewer: every
requested scope must be *granted* by the client's scopes, with the same implication rule the
services apply (``admin`` grants everything, ``<area>:*`` grants ``<area>:read|write``). No
``scope`` parameter means "everything the client has".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rateline_shared.auth import ADMIN_SCOPE, SCOPE_AREAS, scope_granted

AREA_LABELS = {
    "customers": "accounts, lines and subscriptions",
    "catalog": "products, plans and tariffs",
    "usage": "usage records and rating",
    "invoices": "bill runs and invoices",
    "payments": "payment methods and payments",
    "webhooks": "webhook endpoints and deliveries",
}

SCOPE_DESCRIPTIONS: dict[str, str] = {ADMIN_SCOPE: "Everything, including OAuth client admin"}
for _area in SCOPE_AREAS:
    _label = AREA_LABELS.get(_area, _area)
    SCOPE_DESCRIPTIONS[f"{_area}:read"] = f"Read {_label}"
    SCOPE_DESCRIPTIONS[f"{_area}:write"] = f"Create and change {_label}"
    SCOPE_DESCRIPTIONS[f"{_area}:*"] = f"Read and change {_label}"

KNOWN_SCOPES: frozenset[str] = frozenset(SCOPE_DESCRIPTIONS)


class ScopeError(ValueError):
    """A scope list is malformed, names an unknown scope, or exceeds what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_scope(value: str | None) -> list[str]:
    """Split a space-separated ``scope`` parameter; order kept, duplicates dropped."""
    return unique((value or "").split())


def unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def check_scope_names(scopes: Iterable[str]) -> list[str]:
    """The scopes, de-duplicated, or :class:`ScopeError` naming the first unknown one."""
    result = unique(s.strip() for s in scopes)
    if not result:
        raise ScopeError("at least one scope is required")
    for scope in result:
        if scope not in KNOWN_SCOPES:
            raise ScopeError(f"unknown scope {scope!r}")
    return result


def granted_scopes(requested: str | None, client_scopes: Sequence[str]) -> list[str]:
    """The scopes a token gets: all of the client's when none are requested, else the
    requested ones, each of which must be known and granted by the client's scopes."""
    allowed = frozenset(client_scopes)
    wanted = parse_scope(requested)
    if not wanted:
        return unique(client_scopes)
    for scope in wanted:
        if scope not in KNOWN_SCOPES:
            raise ScopeError(f"unknown scope {scope}")
        if not scope_granted(allowed, scope):
            raise ScopeError(f"the client is not allowed the scope {scope}")
    return wanted
