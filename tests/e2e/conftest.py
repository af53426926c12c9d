"""Whole-system fixtures: every service and the gateway as real processes on embedded engines.

Tests here talk to the system only through the gateway's public HTTP API (plus process
control: killing and restarting a service to show nothing is lost or duplicated).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from rateline_devstack.stack import Stack
from rateline_shared.engines import EmbeddedNats, free_port

_stack_ids = itertools.count(1)


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    nats = EmbeddedNats(workdir / "nats").start()
    s = Stack(workdir=workdir, pg=pg_server, nats=nats, db_prefix=f"e2e{next(_stack_ids)}", log_dir=workdir / "logs")
    try:
        s.start()
        yield s
    finally:
        s.stop()
        nats.stop()


@dataclass
class Api:
    """A partner's view: a client id/secret, a token, and the gateway URL."""

    http: httpx.AsyncClient
    client_id: str
    client_secret: str
    tenant: str

    async def authenticate(self, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        resp = await self.http.post("/oauth/token", data=form, auth=(self.client_id, self.client_secret))
        assert resp.status_code == 200, resp.text
        token = resp.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        return str(token)

    async def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.http.post(path, json=body, **kw)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params)

    async def ok(self, method: str, path: str, body: Any = None, expect: int | tuple[int, ...] = (200, 201, 202)) -> Any:
        resp = await self.http.request(method, path, json=body)
        expected = (expect,) if isinstance(expect, int) else expect
        assert resp.status_code in expected, f"{method} {path} -> {resp.status_code} {resp.text}"
        return resp.json()


@pytest.fixture(scope="module")
async def api(stack: Stack) -> AsyncIterator[Api]:
    creds = stack.create_client(tenant="e2e-operator", scopes=["admin"], name="e2e admin")
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        a = Api(http, creds["client_id"], creds["client_secret"], creds["tenant"])
        await a.authenticate()
        yield a


@dataclass
class Receiver:
    """A partner's webhook endpoint: a real HTTP server on 127.0.0.1 recording what it gets."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    port = free_port()
    rec = Receiver(url=f"http://127.0.0.1:{port}/hooks")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                failing = rec.fail_first > 0
                if failing:
                    rec.fail_first -= 1
                rec.requests.append({"headers": dict(self.headers.items()), "body": body.decode(), "failed": failing})
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()


def body_json(request: dict[str, Any]) -> Any:
    return json.loads(request["body"])
