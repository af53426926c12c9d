"""Fixtures of the gateway tests: settings on a fresh database, apps served by a real uvicorn
on a free port (streaming and closed ports need real sockets), and token helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from rateline_gateway.app import MIGRATIONS
from rateline_gateway.settings import GatewaySettings
from rateline_shared.engines import EmbeddedPostgres, free_port
from rateline_shared.migrations import upgrade_async
from rateline_shared.testing import fresh_database, wait_until

Serve = Callable[..., AbstractAsyncContextManager[str]]
TokenFor = Callable[..., Awaitable[str]]


def closed_url() -> str:
    """A base URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def gateway_settings(pg_server: EmbeddedPostgres) -> Callable[..., GatewaySettings]:
    """A factory: GatewaySettings on a fresh database, every upstream closed unless given."""

    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "database_url": fresh_database(pg_server, "gateway"),
            "log_json": False,
            "openapi_cache_ttl": 0,
            **{f"{s}_url": closed_url() for s in
               ("customer", "catalog", "usage", "invoicing", "payment", "webhooks")},
        }
        values.update(overrides)
        return GatewaySettings(**values)

    return make


@asynccontextmanager
async def serve_app(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Run ``app`` (lifespan included) under uvicorn in this event loop; yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_config=None,
        access_log=False, timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            raise AssertionError(f"server on port {port} exited during startup")
        return server.started

    await wait_until(started, timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=15)


@pytest.fixture(scope="session")
def serve() -> Serve:
    return serve_app


@pytest.fixture(scope="session")
def migrate() -> Callable[[GatewaySettings], Awaitable[None]]:
    async def run(settings: GatewaySettings) -> None:
        await upgrade_async(MIGRATIONS, settings.database_url)

    return run


async def request_token(
    client: httpx.AsyncClient, client_id: str, secret: str, scope: str | None = None
) -> httpx.Response:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return await client.post("/oauth/token", data=data, auth=(client_id, secret))


@pytest.fixture(scope="session")
def token_for() -> TokenFor:
    async def get(
        client: httpx.AsyncClient, client_id: str, secret: str, scope: str | None = None
    ) -> str:
        resp = await request_token(client, client_id, secret, scope)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    return get
