"""Routing and proxying against real upstream servers on real sockets: a small echo app per
service (uvicorn on a free port), a server that speaks garbage, and closed ports."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from rateline_gateway.app import create_app
from rateline_gateway.cli import create_client
from rateline_shared.logs import correlation_id

STREAM_FIRST = b"first-chunk;"
STREAM_REST = b"second-chunk;third-chunk"


@dataclass
class EchoState:
    requests: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)
    first_chunk_received: asyncio.Event = field(default_factory=asyncio.Event)
    release_stream: asyncio.Event = field(default_factory=asyncio.Event)
    release_hang: asyncio.Event = field(default_factory=asyncio.Event)
    stream_finished: bool = False


class Echo(BaseModel):
    service: str
    method: str
    path: str
    query: str
    headers: dict[str, str]


def echo_app(service: str, prefix: str, state: EchoState) -> FastAPI:
    app = FastAPI(title=f"echo {service}")

    async def echo(request: Request) -> JSONResponse:
        state.requests += 1
        seen = Echo(
            service=service,
            method=request.method,
            path=request.url.path,
            query=request.scope["query_string"].decode(),
            headers=dict(request.headers),
        )
        state.seen.append(seen.model_dump())
        return JSONResponse(
            seen.model_dump(), status_code=200,
            headers={"X-Upstream": service, "Location": f"{request.base_url}{prefix[1:]}/echo/1"},
        )

    app.get(f"{prefix}/echo", response_model=Echo)(echo)
    app.post(f"{prefix}/echo", response_model=Echo, operation_id=f"post_echo_{service}")(echo)

    @app.get(f"{prefix}/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield STREAM_FIRST
            await state.release_stream.wait()
            yield STREAM_REST
            state.stream_finished = True

        return StreamingResponse(body(), media_type="application/octet-stream")

    @app.post(f"{prefix}/upload")
    async def upload(request: Request) -> dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.stream():
            if chunk:
                state.first_chunk_received.set()
            digest.update(chunk)
            size += len(chunk)
        return {"bytes": size, "sha256": digest.hexdigest(),
                "content_type": request.headers.get("content-type")}

    @app.get(f"{prefix}/hang")
    async def hang() -> dict[str, str]:
        await state.release_hang.wait()
        return {"status": "late"}

    @app.post(f"{prefix}/conflict")
    async def conflict() -> JSONResponse:
        return JSONResponse(
            {"type": "https://rateline.dev/problems/conflict", "title": "Conflict",
             "status": 409, "detail": "taken"},
            status_code=409, media_type="application/problem+json",
            headers={"X-Upstream-Note": "kept"},
        )

    @app.get("/internal/secret")
    async def internal() -> dict[str, str]:
        return {"secret": "yes"}

    return app


@contextlib.asynccontextmanager
async def garbage_server() -> AsyncIterator[str]:
    """Accepts a request and answers with something that is not HTTP."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"THIS IS NOT HTTP\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Stack:
    http: httpx.AsyncClient
    customer: EchoState
    catalog: EchoState
    auth: dict[str, str]


@pytest.fixture(scope="module")
async def stack(gateway_settings, serve, migrate, token_for) -> AsyncIterator[Stack]:
    customer, catalog = EchoState(), EchoState()
    async with contextlib.AsyncExitStack() as stack:
        customer_url = await stack.enter_async_context(
            serve(echo_app("customer", "/v1/accounts", customer))
        )
        catalog_url = await stack.enter_async_context(
            serve(echo_app("catalog", "/v1/plans", catalog))
        )
        garbage_url = await stack.enter_async_context(garbage_server())
        settings = gateway_settings(
            customer_url=customer_url,
            catalog_url=catalog_url,
            invoicing_url=garbage_url,
            upstream_read_timeout=1.0,
        )
        await migrate(settings)
        gateway_url = await stack.enter_async_context(serve(create_app(settings)))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=gateway_url, timeout=10)
        )
        made = await create_client(settings, tenant="acme", scopes="admin", name="tests")
        bearer = await token_for(http, made["client_id"], made["client_secret"])
        try:
            yield Stack(http, customer, catalog, {"Authorization": f"Bearer {bearer}"})
        finally:
            customer.release_hang.set()
            customer.release_stream.set()


def assert_problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["type"] == f"https://rateline.dev/problems/{slug}"
    assert body["status"] == status
    return body


async def test_routes_by_prefix_and_passes_the_headers(stack: Stack) -> None:
    resp = await stack.http.get(
        "/v1/plans/echo?b=2&a=1&a=%2F",
        headers={**stack.auth, "Accept": "application/json", "Idempotency-Key": "idem-1",
                 "X-Correlation-ID": "corr-abc", "Cookie": "session=secret",
                 "X-Private": "no"},
    )
    assert resp.status_code == 200, resp.text
    seen = resp.json()
    assert seen["service"] == "catalog"
    assert seen["path"] == "/v1/plans/echo"
    assert seen["query"] == "b=2&a=1&a=%2F"
    assert seen["headers"]["authorization"] == stack.auth["Authorization"]
    assert seen["headers"]["accept"] == "application/json"
    assert seen["headers"]["idempotency-key"] == "idem-1"
    assert seen["headers"]["x-correlation-id"] == "corr-abc"
    assert "cookie" not in seen["headers"] and "x-private" not in seen["headers"]
    assert resp.headers.get_list("x-correlation-id") == ["corr-abc"]
    assert resp.headers["x-upstream"] == "catalog"
    assert resp.headers["location"] == "/v1/plans/echo/1"  # upstream's absolute URL made relative

    other = await stack.http.get("/v1/accounts/echo", headers=stack.auth)
    assert other.json()["service"] == "customer"


async def test_post_body_and_content_type_are_passed(stack: Stack) -> None:
    resp = await stack.http.post(
        "/v1/accounts/echo", json={"name": "x"}, headers=stack.auth
    )
    assert resp.status_code == 200
    assert resp.json()["method"] == "POST"
    assert resp.json()["headers"]["content-type"] == "application/json"


async def test_a_correlation_id_is_made_when_absent_and_logged(stack: Stack) -> None:
    logged: list[tuple[str, str | None]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append((record.getMessage(), correlation_id.get()))

    handler = Capture()
    proxy_logger = logging.getLogger("rateline.gateway.proxy")
    proxy_logger.addHandler(handler)
    try:
        resp = await stack.http.get("/v1/accounts/echo", headers=stack.auth)
    finally:
        proxy_logger.removeHandler(handler)
    cid = resp.headers["x-correlation-id"]
    assert len(cid) >= 16
    assert resp.json()["headers"]["x-correlation-id"] == cid
    assert any("/v1/accounts/echo -> customer 200" in msg and c == cid for msg, c in logged)


async def test_upstream_errors_pass_through(stack: Stack) -> None:
    resp = await stack.http.post("/v1/accounts/conflict", headers=stack.auth)
    body = assert_problem(resp, 409, "conflict")
    assert body["detail"] == "taken"
    assert resp.headers["x-upstream-note"] == "kept"


async def test_response_body_is_streamed(stack: Stack) -> None:
    async with stack.http.stream("GET", "/v1/accounts/stream", headers=stack.auth) as resp:
        assert resp.status_code == 200
        chunks = resp.aiter_raw()
        received = b""
        while len(received) < len(STREAM_FIRST):
            received += await asyncio.wait_for(anext(chunks), timeout=5)
        # The upstream is still holding back the rest: the gateway did not wait for it.
        assert received == STREAM_FIRST
        assert stack.customer.stream_finished is False
        stack.customer.release_stream.set()
        async for chunk in chunks:
            received += chunk
    assert received == STREAM_FIRST + STREAM_REST


async def test_request_body_is_streamed(stack: Stack) -> None:
    part = b"a" * 65536

    async def body() -> AsyncIterator[bytes]:
        yield part
        # Only a gateway that forwards while still receiving lets the upstream see this part
        # before the client sends the next one.
        await asyncio.wait_for(stack.customer.first_chunk_received.wait(), timeout=5)
        yield part.upper()

    resp = await stack.http.post(
        "/v1/accounts/upload", content=body(),
        headers={**stack.auth, "Content-Type": "application/octet-stream"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "bytes": 2 * len(part),
        "sha256": hashlib.sha256(part + part.upper()).hexdigest(),
        "content_type": "application/octet-stream",
    }


async def test_closed_upstream_port_is_503(stack: Stack) -> None:
    resp = await stack.http.get("/v1/usage/records", headers=stack.auth)
    body = assert_problem(resp, 503, "service-unavailable")
    assert "usage" in body["detail"]
    assert resp.headers["x-correlation-id"]


async def test_slow_upstream_is_504(stack: Stack) -> None:
    resp = await stack.http.get("/v1/accounts/hang", headers=stack.auth)
    assert_problem(resp, 504, "gateway-timeout")


async def test_upstream_speaking_garbage_is_502(stack: Stack) -> None:
    resp = await stack.http.get("/v1/invoices", headers=stack.auth)
    assert_problem(resp, 502, "bad-gateway")


async def test_v1_without_a_valid_token_is_401_and_never_forwarded(stack: Stack, test_keys) -> None:
    before = stack.customer.requests
    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic dXNlcjpwdw=="},
        test_keys.headers("acme", ["admin"]),  # right shape, signed by another key
    ):
        resp = await stack.http.get("/v1/accounts/echo", headers=headers)
        assert_problem(resp, 401, "unauthorized")
        assert resp.headers["www-authenticate"] == "Bearer"
    assert stack.customer.requests == before


async def test_unknown_v1_prefix_is_404(stack: Stack) -> None:
    assert_problem(await stack.http.get("/v1/nowhere", headers=stack.auth), 404, "not-found")
    assert_problem(await stack.http.get("/v1/accountsx", headers=stack.auth), 404, "not-found")
    assert_problem(await stack.http.get("/v1", headers=stack.auth), 404, "not-found")
    assert_problem(await stack.http.get("/v1/", headers=stack.auth), 404, "not-found")


async def test_wrong_method_on_a_gateway_route_is_405(stack: Stack) -> None:
    resp = await stack.http.delete("/v1/oauth-clients", headers=stack.auth)
    assert_problem(resp, 405, "method-not-allowed")


async def test_merged_openapi_has_every_reachable_service(stack: Stack) -> None:
    resp = await stack.http.get("/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    paths = doc["paths"]
    for path in ("/v1/accounts/echo", "/v1/accounts/upload", "/v1/plans/echo", "/oauth/token",
                 "/.well-known/jwks.json", "/v1/oauth-clients"):
        assert path in paths, path
    assert "/internal/secret" not in paths
    assert not any(p.startswith(("/healthz", "/docs", "/openapi")) for p in paths)
    assert doc["info"]["x-rateline-missing"] == ["invoicing", "payment", "usage", "webhooks"]
    assert "invoicing, payment, usage, webhooks" in doc["info"]["description"]
    # The two echo apps declare the same Echo model: merged into one schema.
    assert "Echo" in doc["components"]["schemas"]
    assert "OAuthClientCreated" in doc["components"]["schemas"]
    scheme = doc["components"]["securitySchemes"]["OAuth2ClientCredentials"]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    assert "admin" in scheme["flows"]["clientCredentials"]["scopes"]
    assert paths["/v1/plans/echo"]["get"]["security"] == [{"OAuth2ClientCredentials": []}]
    assert paths["/v1/plans/echo"]["get"]["x-rateline-service"] == "catalog"
    token_body = paths["/oauth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in token_body


async def test_swagger_ui_shows_the_merged_document(stack: Stack) -> None:
    resp = await stack.http.get("/docs")
    assert resp.status_code == 200
    assert "text/html" in resp.headers["content-type"]
    assert "/openapi.json" in resp.text and "swagger" in resp.text.lower()


async def test_readiness_can_require_the_upstreams(gateway_settings, serve, migrate) -> None:
    settings = gateway_settings(ready_requires_upstreams=True)
    await migrate(settings)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        resp = await http.get("/readyz")
        assert resp.status_code == 503
        checks = resp.json()["checks"]
        assert checks["database"] == "ok" and checks["signing_keys"] == "ok"
        assert checks["upstream:customer"].startswith("error")

