"""pytest fixtures: embedded engines started once per test session on free ports, fresh
databases per service under test, signed test tokens, and running services in-process.

Enabled by ``pytest_plugins = ["rateline_shared.testing"]`` in the root ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey

from rateline_shared.auth import claims_for
from rateline_shared.engines import EmbeddedNats, EmbeddedPostgres
from rateline_shared.migrations import upgrade_async
from rateline_shared.settings import ServiceSettings

T = TypeVar("T")
_db_counter = itertools.count(1)


@dataclass
class TestKeys:
    __test__ = False  # a fixture helper, not a test class

    key: RSAKey
    issuer: str = "rateline-gateway"
    audience: str = "rateline"

    @property
    def jwks_json(self) -> str:
        return json.dumps({"keys": [self.key.as_dict(private=False)]})

    def token(self, tenant: str = "acme", scopes: list[str] | None = None, ttl: int = 600) -> str:
        claims = claims_for(
            client_id="test-client",
            tenant=tenant,
            scopes=scopes if scopes is not None else ["admin"],
            issuer=self.issuer,
            audience=self.audience,
            ttl=ttl,
        )
        header = {"alg": "RS256", "kid": str(self.key.kid)}
        return str(jwt.encode(header, claims, self.key))

    def headers(self, tenant: str = "acme", scopes: list[str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(tenant, scopes)}"}


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("engines") / "pg" / "data").start()
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A fresh NATS per test module, so streams and durable consumers never leak across."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_keys() -> TestKeys:
    key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
    return TestKeys(key)


def fresh_database(pg: EmbeddedPostgres, prefix: str) -> str:
    name = f"t_{prefix}_{next(_db_counter)}_{int(time.time() * 1000) % 100000}"
    pg.ensure_database(name)
    return pg.url(name)


@asynccontextmanager
async def running_service(
    create_app: Callable[[Any], FastAPI],
    settings: ServiceSettings,
    migrations_dir: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    """Migrate, start the app's lifespan (relay, consumers, workers) and give a client."""
    await upgrade_async(migrations_dir, settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def service_settings(
    settings_cls: type[ServiceSettings],
    pg: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    keys: TestKeys,
    prefix: str,
    **overrides: Any,
) -> ServiceSettings:
    return settings_cls(
        database_url=fresh_database(pg, prefix),
        nats_url=nats_server.url,
        jwks_json=keys.jwks_json,
        log_json=False,
        **overrides,
    )


async def wait_until(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def shared_data_dir() -> Path:
    """``shared/data`` beside the project root (read-only design notes and sample data), or
    ``$RATELINE_SHARED_DATA`` when set."""
    override = os.environ.get("RATELINE_SHARED_DATA")
    if override:
        return Path(override)
    root = Path(__file__).resolve().parents[4]  # libs/shared/src/rateline_shared/testing.py
    return root.parent / "shared" / "data"
