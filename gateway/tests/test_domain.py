"""Pure logic: scope rules, secret hashing, routing table, OpenAPI merge."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_gateway.domain.credentials import hash_secret, valid_client_id, verify_secret
from rateline_gateway.domain.openapi import SECURITY_SCHEME, merge_openapi
from rateline_gateway.domain.routing import PREFIXES, owner_of
from rateline_gateway.domain.scopes import (
    KNOWN_SCOPES,
    ScopeError,
    check_scope_names,
    granted_scopes,
    parse_scope,
)
from rateline_shared.auth import scope_granted

# -- scopes -------------------------------------------------------------------------------


def test_no_requested_scope_means_all_of_the_clients() -> None:
    assert granted_scopes(None, ["customers:*", "usage:read"]) == ["customers:*", "usage:read"]
    assert granted_scopes("  ", ["admin"]) == ["admin"]


def test_requested_scope_narrows_the_token() -> None:
    assert granted_scopes("usage:read", ["customers:*", "usage:read"]) == ["usage:read"]
    assert granted_scopes("customers:read customers:write", ["customers:*"]) == [
        "customers:read",
        "customers:write",
    ]
    assert granted_scopes("invoices:read catalog:*", ["admin"]) == ["invoices:read", "catalog:*"]
    assert granted_scopes("usage:read usage:read", ["usage:read"]) == ["usage:read"]


@pytest.mark.parametrize(
    ("requested", "client"),
    [
        ("invoices:read", ["customers:*"]),
        ("customers:*", ["customers:read", "customers:write"]),
        ("admin", ["customers:*", "catalog:*"]),
        ("customers:write", ["customers:read"]),
        ("nonsense", ["admin"]),
        ("customers:delete", ["admin"]),
    ],
)
def test_scope_beyond_the_clients_is_refused(requested: str, client: list[str]) -> None:
    with pytest.raises(ScopeError):
        granted_scopes(requested, client)


@given(
    client=st.lists(st.sampled_from(sorted(KNOWN_SCOPES)), min_size=1, max_size=6),
    wanted=st.lists(st.sampled_from(sorted(KNOWN_SCOPES)), min_size=1, max_size=6),
)
def test_granted_scopes_never_exceed_the_clients(client: list[str], wanted: list[str]) -> None:
    allowed = frozenset(client)
    try:
        granted = granted_scopes(" ".join(wanted), client)
    except ScopeError:
        assert any(not scope_granted(allowed, s) for s in wanted)
        return
    assert granted == parse_scope(" ".join(wanted))
    assert all(scope_granted(allowed, s) for s in granted)


@given(st.lists(st.sampled_from(sorted(KNOWN_SCOPES)), min_size=1, max_size=5))
def test_a_literal_subset_is_always_granted(client: list[str]) -> None:
    subset = client[: max(1, len(client) // 2)]
    assert granted_scopes(" ".join(subset), client) == parse_scope(" ".join(subset))


def test_scope_names_are_checked_on_registration() -> None:
    assert check_scope_names(["admin", "admin", "usage:*"]) == ["admin", "usage:*"]
    with pytest.raises(ScopeError, match="unknown scope"):
        check_scope_names(["customers:read", "root"])
    with pytest.raises(ScopeError, match="at least one"):
        check_scope_names([])


# -- secrets ------------------------------------------------------------------------------


def test_secret_hash_round_trip_and_salt() -> None:
    first = hash_secret("s3cret")
    second = hash_secret("s3cret")
    assert first != second  # per-client salt
    assert first.startswith("scrypt$")
    assert "s3cret" not in first
    assert verify_secret("s3cret", first)
    assert verify_secret("s3cret", second)
    assert not verify_secret("s3cret!", first)
    assert not verify_secret("", first)


@pytest.mark.parametrize("encoded", ["", "plain", "scrypt$x$8$1$AA==$AA==", "bcrypt$1$2$3$4$5"])
def test_malformed_hash_never_verifies(encoded: str) -> None:
    assert verify_secret("anything", encoded) is False


def test_client_id_alphabet() -> None:
    assert valid_client_id("dev-admin")
    assert valid_client_id("rl_0123abcd.x~y")
    assert not valid_client_id("ab")
    assert not valid_client_id("has:colon")
    assert not valid_client_id("has space")


# -- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "service"), PREFIXES)
def test_every_prefix_routes_to_its_owner(prefix: str, service: str) -> None:
    assert owner_of(prefix) == service
    assert owner_of(prefix + "/some-id/sub") == service


@pytest.mark.parametrize("path", ["/v1/plansx", "/v1/unknown", "/v1", "/v1/admin", "/plans"])
def test_unknown_paths_have_no_owner(path: str) -> None:
    assert owner_of(path) is None


def test_routing_examples() -> None:
    assert owner_of("/v1/accounts/42/lines") == "customer"
    assert owner_of("/v1/invoices/7/finalize") == "invoicing"
    assert owner_of("/v1/admin/webhooks/dead-letters") == "webhooks"
    assert owner_of("/v1/oauth-clients") == "gateway"


# -- OpenAPI merge ------------------------------------------------------------------------

PROBLEM = {"type": "object", "properties": {"detail": {"type": "string"}}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def op(op_id: str, schema: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "responses": {"404": {"content": {"application/problem+json": {"schema": ref("Problem")}}}},
    }
    if schema:
        operation["responses"]["200"] = {"content": {"application/json": {"schema": ref(schema)}}}
    return operation


def gateway_doc() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "gw", "version": "1"},
        "paths": {
            "/oauth/token": {"post": {"operationId": "issue_token", "responses": {}}},
            "/v1/oauth-clients": {"get": op("list_clients", "ClientPage")},
        },
        "components": {
            "schemas": {
                "ClientPage": {"type": "object", "properties": {"items": {"type": "array"}}},
                "Problem": PROBLEM,
            }
        },
    }


def customer_doc() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "customer", "version": "1"},
        "paths": {
            "/v1/accounts": {"get": op("list_accounts", "Page"), "post": op("create", "Item")},
            "/healthz": {"get": {"operationId": "healthz", "responses": {}}},
            "/internal/thing": {"get": op("internal", "Internal")},
        },
        "components": {
            "schemas": {
                "Problem": PROBLEM,
                "Item": {"type": "object", "properties": {"msisdn": {"type": "string"}}},
                "Page": {"type": "object", "properties": {"items": {"items": ref("Item")}}},
                "Internal": {"type": "object"},
                "Unused": {"type": "string"},
            }
        },
    }


def catalog_doc() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "catalog", "version": "1"},
        "paths": {"/v1/plans": {"get": op("list_plans", "Page"), "post": op("create", "Item")}},
        "components": {
            "schemas": {
                "Problem": PROBLEM,
                "Item": {"type": "object", "properties": {"code": {"type": "string"}}},
                "Page": {"type": "object", "properties": {"items": {"items": ref("Item")}}},
            }
        },
    }


def merged(**upstreams: dict[str, Any] | None) -> dict[str, Any]:
    return merge_openapi(
        gateway=gateway_doc(),
        upstreams=upstreams,
        token_url="/oauth/token",
        scopes={"admin": "everything"},
        description="Rateline",
    )


def test_only_public_paths_and_gateway_paths_are_kept() -> None:
    doc = merged(customer=customer_doc(), catalog=catalog_doc())
    assert set(doc["paths"]) == {"/oauth/token", "/v1/oauth-clients", "/v1/accounts", "/v1/plans"}
    assert "Internal" not in doc["components"]["schemas"]
    assert "Unused" not in doc["components"]["schemas"]


def test_identical_schemas_merge_and_differing_ones_are_prefixed() -> None:
    doc = merged(customer=customer_doc(), catalog=catalog_doc())
    schemas = doc["components"]["schemas"]
    assert schemas["Problem"] == PROBLEM
    assert "customer_Problem" not in schemas
    assert schemas["customer_Item"]["properties"] == {"msisdn": {"type": "string"}}
    assert schemas["catalog_Item"]["properties"] == {"code": {"type": "string"}}
    assert "Item" not in schemas
    # Page had equal text in both, but it refers to Item, which differs: prefixed too.
    assert schemas["customer_Page"]["properties"]["items"]["items"] == ref("customer_Item")
    assert schemas["catalog_Page"]["properties"]["items"]["items"] == ref("catalog_Item")
    accounts = doc["paths"]["/v1/accounts"]["get"]["responses"]["200"]
    assert accounts["content"]["application/json"]["schema"] == ref("customer_Page")
    plans = doc["paths"]["/v1/plans"]["post"]["responses"]["200"]
    assert plans["content"]["application/json"]["schema"] == ref("catalog_Item")
    # Every $ref in the result resolves.
    text = str(doc)
    for name in schemas:
        assert name in text

    for target in re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text):
        assert target in schemas, target


def test_security_applies_to_v1_operations_only() -> None:
    doc = merged(customer=customer_doc())
    scheme = doc["components"]["securitySchemes"][SECURITY_SCHEME]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    assert doc["paths"]["/v1/accounts"]["post"]["security"] == [{SECURITY_SCHEME: []}]
    assert doc["paths"]["/v1/oauth-clients"]["get"]["security"] == [{SECURITY_SCHEME: []}]
    assert "security" not in doc["paths"]["/oauth/token"]["post"]


def test_duplicate_operation_ids_are_prefixed() -> None:
    doc = merged(customer=customer_doc(), catalog=catalog_doc())
    ids = [
        operation["operationId"]
        for item in doc["paths"].values()
        for operation in item.values()
    ]
    assert len(ids) == len(set(ids))
    assert doc["paths"]["/v1/accounts"]["post"]["operationId"] == "create"
    assert doc["paths"]["/v1/plans"]["post"]["operationId"] == "catalog_create"


def test_missing_upstreams_are_named_not_fatal() -> None:
    doc = merged(customer=customer_doc(), catalog=None, usage=None)
    assert doc["info"]["x-rateline-missing"] == ["catalog", "usage"]
    assert "catalog, usage" in doc["info"]["description"]
    assert doc["info"]["description"].startswith("Rateline")
    assert "/v1/accounts" in doc["paths"] and "/v1/plans" not in doc["paths"]
    # With one service only, its schemas keep their own names.
    assert {"Item", "Page", "Problem"} <= set(doc["components"]["schemas"])


def test_nothing_missing_means_no_marker() -> None:
    doc = merged(customer=customer_doc())
    assert "x-rateline-missing" not in doc["info"]
    assert doc["info"]["description"] == "Rateline"


def test_merge_does_not_mutate_its_inputs() -> None:
    customer, catalog = customer_doc(), catalog_doc()
    before = copy.deepcopy((customer, catalog))
    merge_openapi(
        gateway=gateway_doc(), upstreams={"customer": customer, "catalog": catalog},
        token_url="/oauth/token", scopes={},
    )
    assert (customer, catalog) == before


# -- settings -----------------------------------------------------------------------------


def test_settings_come_from_gateway_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    from rateline_gateway.settings import GatewaySettings

    monkeypatch.setenv("RATELINE_GATEWAY_CUSTOMER_URL", "http://customer:8101")
    monkeypatch.setenv("RATELINE_GATEWAY_TOKEN_TTL", "600")
    monkeypatch.setenv("RATELINE_GATEWAY_ENVIRONMENT", "production")  # no JWKS URL needed
    settings = GatewaySettings()
    assert settings.port == 8100
    assert settings.token_ttl == 600
    assert settings.jwt_issuer == "rateline-gateway"
    assert settings.upstream_urls()["customer"] == "http://customer:8101"
    assert list(settings.upstream_urls()) == [
        "customer", "catalog", "usage", "invoicing", "payment", "webhooks"
    ]
