"""Merging the services' OpenAPI documents into the one public document (pure functions).

Rules:
- from each upstream only the public ``/v1`` paths are kept (plus every path of the gateway's
  own document), and only the component schemas those paths reach;
- a schema name used by several documents with identical content is kept once; when the
  contents differ, every variant is renamed ``<service>_<Name>`` and the ``$ref`` s of that
  service are rewritten (repeated until stable, since a rename changes the content of the
  schemas that refer to it);
- every ``/v1`` operation gets the OAuth2 client-credentials security requirement;
- an upstream whose document could not be fetched is listed in ``info.x-rateline-missing``
  and named in ``info.description`` instead of failing the whole document.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

SCHEMA_REF = "#/components/schemas/"
SECURITY_SCHEME = "OAuth2ClientCredentials"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
GATEWAY = "gateway"


def is_public_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    """A deep copy of ``node`` with ``#/components/schemas/<old>`` refs pointing at new names."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_REF):
                name = value[len(SCHEMA_REF):]
                out[key] = SCHEMA_REF + renames.get(name, name)
            else:
                out[key] = rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [rewrite_refs(item, renames) for item in node]
    return node


def schema_refs(node: Any) -> set[str]:
    """Names of the component schemas ``node`` refers to directly."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
                found.add(ref[len(SCHEMA_REF):])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def reachable_schemas(paths: Mapping[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``schemas`` reachable from ``paths`` (transitively)."""
    todo = list(schema_refs(paths))
    keep: dict[str, Any] = {}
    while todo:
        name = todo.pop()
        if name in keep or name not in schemas:
            continue
        keep[name] = schemas[name]
        todo.extend(schema_refs(schemas[name]) - keep.keys())
    return {name: schemas[name] for name in sorted(keep)}


def _canonical(node: Any) -> str:
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def resolve_schema_names(
    schemas_by_service: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, str]]:
    """Per service, ``{original name: merged name}`` for the schemas that must be renamed."""
    renames: dict[str, dict[str, str]] = {service: {} for service in schemas_by_service}
    while True:
        variants: dict[str, dict[str, str]] = {}
        for service, schemas in schemas_by_service.items():
            for name, schema in schemas.items():
                if name not in renames[service]:
                    content = _canonical(rewrite_refs(schema, renames[service]))
                    variants.setdefault(name, {})[service] = content
        changed = False
        for name, per_service in variants.items():
            if len(set(per_service.values())) > 1:
                for service in per_service:
                    renames[service][name] = f"{service}_{name}"
                changed = True
        if not changed:
            return renames


def _operations(path_item: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [op for method, op in path_item.items() if method in HTTP_METHODS and isinstance(op, dict)]


def merge_openapi(
    *,
    gateway: Mapping[str, Any],
    upstreams: Mapping[str, Mapping[str, Any] | None],
    token_url: str,
    scopes: Mapping[str, str],
    title: str = "Rateline API",
    version: str = "0.1.0",
    description: str = "",
) -> dict[str, Any]:
    """One OpenAPI 3.1 document from the gateway's own and each upstream's (None = missing)."""
    missing = sorted(service for service, doc in upstreams.items() if doc is None)
    sources: dict[str, Mapping[str, Any]] = {GATEWAY: gateway}
    sources.update({s: doc for s, doc in upstreams.items() if doc is not None})

    paths_by_service: dict[str, dict[str, Any]] = {}
    schemas_by_service: dict[str, dict[str, Any]] = {}
    for service, doc in sources.items():
        paths = {
            path: item
            for path, item in (doc.get("paths") or {}).items()
            if service == GATEWAY or is_public_path(path)
        }
        paths_by_service[service] = paths
        all_schemas = (doc.get("components") or {}).get("schemas") or {}
        schemas_by_service[service] = reachable_schemas(paths, all_schemas)

    renames = resolve_schema_names(schemas_by_service)
    merged_paths: dict[str, Any] = {}
    merged_schemas: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    operation_ids: set[str] = set()
    for service, doc in sources.items():
        for name, schema in schemas_by_service[service].items():
            merged_schemas[renames[service].get(name, name)] = rewrite_refs(
                schema, renames[service]
            )
        for path, item in paths_by_service[service].items():
            target = merged_paths.setdefault(path, {})
            for key, value in rewrite_refs(item, renames[service]).items():
                target.setdefault(key, value)
            for op in _operations(target):
                op_id = op.get("operationId")
                if isinstance(op_id, str) and op.get("x-rateline-service") is None:
                    if op_id in operation_ids:
                        op["operationId"] = f"{service}_{op_id}"
                    operation_ids.add(op["operationId"])
                op.setdefault("x-rateline-service", service)
                if is_public_path(path):
                    op["security"] = [{SECURITY_SCHEME: []}]
        for tag in doc.get("tags") or []:
            if isinstance(tag, dict) and "name" in tag:
                tags.setdefault(tag["name"], copy.deepcopy(tag))

    text = description
    if missing:
        note = (
            "Currently unavailable, so their paths are missing from this document: "
            + ", ".join(missing)
            + "."
        )
        text = f"{text}\n\n{note}" if text else note
    info: dict[str, Any] = {"title": title, "version": version, "description": text}
    if missing:
        info["x-rateline-missing"] = missing

    result: dict[str, Any] = {
        "openapi": str(gateway.get("openapi", "3.1.0")),
        "info": info,
        "paths": {path: merged_paths[path] for path in sorted(merged_paths)},
        "components": {
            "schemas": {name: merged_schemas[name] for name in sorted(merged_schemas)},
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "oauth2",
                    "description": "OAuth2 client credentials; send the token as a Bearer.",
                    "flows": {
                        "clientCredentials": {"tokenUrl": token_url, "scopes": dict(scopes)}
                    },
                }
            },
        },
    }
    if tags:
        result["tags"] = list(tags.values())
    return result
