"""The services behind the gateway: one pooled HTTP client, streaming proxying, and their
OpenAPI documents (cached for a short while).

Transport failures map to problem+json: connection refused -> 503 ``service-unavailable``,
timeout -> 504 ``gateway-timeout``, any other transport error -> 502 ``bad-gateway``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import StreamingResponse

from rateline_gateway.settings import GatewaySettings
from rateline_shared.errors import Problem, ServiceUnavailable
from rateline_shared.logs import CORRELATION_HEADER, current_correlation_id

logger = logging.getLogger("rateline.gateway.proxy")

# Request headers passed to the service (everything else, cookies included, stays here).
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "content-length",
        "content-encoding",
        "accept",
        "accept-encoding",
        "accept-language",
        "idempotency-key",
        "if-match",
        "if-none-match",
    }
)
# Response headers not passed back: hop-by-hop ones (RFC 9110 §7.6.1), the ones the gateway's
# own server sets, and the correlation id (the gateway's middleware adds the same id).
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "date",
        "server",
        CORRELATION_HEADER,
    }
)


class BadGateway(Problem):
    status, slug, title = 502, "bad-gateway", "Bad gateway"


class GatewayTimeout(Problem):
    status, slug, title = 504, "gateway-timeout", "Gateway timeout"


def build_client(settings: GatewaySettings) -> httpx.AsyncClient:
    """The one pooled client for every upstream call (limits and timeouts from settings)."""
    return httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_keepalive,
            keepalive_expiry=settings.upstream_keepalive_expiry,
        ),
        timeout=httpx.Timeout(
            connect=settings.upstream_connect_timeout,
            read=settings.upstream_read_timeout,
            write=settings.upstream_write_timeout,
            pool=settings.upstream_pool_timeout,
        ),
        follow_redirects=False,
        trust_env=False,
        # Without this httpx would ask for gzip on the client's behalf; the body is relayed
        # raw, so only what the client itself accepts may come back.
        headers={"accept-encoding": "identity", "user-agent": "rateline-gateway"},
    )


def _target(base_url: str, request: Request) -> str:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    target = base_url.rstrip("/") + raw_path.decode("latin-1")
    query = request.scope.get("query_string") or b""
    return f"{target}?{query.decode('latin-1')}" if query else target


def _request_headers(request: Request) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in request.headers.items() if k in FORWARDED_REQUEST_HEADERS]
    headers.append((CORRELATION_HEADER, current_correlation_id()))
    client = request.client
    if client is not None:
        prior = request.headers.get("x-forwarded-for")
        headers.append(("x-forwarded-for", f"{prior}, {client.host}" if prior else client.host))
    headers.append(("x-forwarded-proto", request.url.scheme))
    if "host" in request.headers:
        headers.append(("x-forwarded-host", request.headers["host"]))
    return headers


def _response_headers(response: httpx.Response, base_url: str) -> list[tuple[bytes, bytes]]:
    """The upstream's headers minus the dropped ones; an absolute ``Location`` pointing at the
    upstream itself becomes relative, so internal addresses never reach the client."""
    base = base_url.rstrip("/").encode("latin-1")
    headers: list[tuple[bytes, bytes]] = []
    for name, value in response.headers.raw:
        lower = name.decode("latin-1").lower()
        if lower in DROPPED_RESPONSE_HEADERS:
            continue
        if lower == "location" and value.startswith(base + b"/"):
            value = value[len(base):]
        headers.append((name, value))
    return headers


class Upstreams:
    """Holds the pooled client and the upstream base URLs; closed with the app."""

    def __init__(self, settings: GatewaySettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.urls = settings.upstream_urls()
        self.client = client or build_client(settings)
        self._docs: dict[str, dict[str, Any] | None] | None = None
        self._docs_at = 0.0
        self._docs_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def forward(self, request: Request, service: str) -> StreamingResponse:
        """Send ``request`` to ``service`` and stream its answer back, both bodies unbuffered."""
        url = _target(self.urls[service], request)
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        upstream_request = self.client.build_request(
            request.method,
            url,
            headers=_request_headers(request),
            content=request.stream() if has_body else None,
        )
        started = time.perf_counter()
        try:
            response = await self.client.send(upstream_request, stream=True)
        except httpx.ConnectError as exc:
            logger.warning("%s unreachable for %s %s: %s", service, request.method, url, exc)
            raise ServiceUnavailable(
                f"the {service} service is unavailable; try again later"
            ) from exc
        except httpx.TimeoutException as exc:
            logger.warning("%s timed out for %s %s: %r", service, request.method, url, exc)
            raise GatewayTimeout(f"the {service} service did not answer in time") from exc
        except httpx.TransportError as exc:
            logger.warning("%s failed for %s %s: %r", service, request.method, url, exc)
            raise BadGateway(f"the {service} service gave no valid answer") from exc
        logger.info(
            "%s %s -> %s %d (%.1f ms to headers)",
            request.method,
            request.url.path,
            service,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        streaming = StreamingResponse(_relay(response, service), status_code=response.status_code)
        streaming.raw_headers = _response_headers(response, self.urls[service])
        return streaming

    async def openapi_documents(self) -> dict[str, dict[str, Any] | None]:
        """Each upstream's OpenAPI document (None where it could not be fetched), cached."""
        ttl = self.settings.openapi_cache_ttl
        if self._docs is not None and time.monotonic() - self._docs_at < ttl:
            return self._docs
        async with self._docs_lock:
            if self._docs is not None and time.monotonic() - self._docs_at < ttl:
                return self._docs
            services = list(self.urls)
            docs = await asyncio.gather(*(self._fetch_openapi(s) for s in services))
            self._docs = dict(zip(services, docs, strict=True))
            self._docs_at = time.monotonic()
            return self._docs

    async def _fetch_openapi(self, service: str) -> dict[str, Any] | None:
        url = self.urls[service].rstrip("/") + "/openapi.json"
        try:
            resp = await self.client.get(
                url,
                timeout=self.settings.openapi_fetch_timeout,
                headers={CORRELATION_HEADER: current_correlation_id()},
            )
            resp.raise_for_status()
            doc = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("no OpenAPI document from %s (%s): %r", service, url, exc)
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
            logger.warning("the OpenAPI document of %s is not an object with paths", service)
            return None
        return doc

    async def health(self) -> dict[str, str]:
        """``service -> "ok" | "error: ..."`` from each upstream's ``/healthz``."""

        async def probe(service: str) -> str:
            url = self.urls[service].rstrip("/") + "/healthz"
            try:
                resp = await self.client.get(url, timeout=self.settings.openapi_fetch_timeout)
            except httpx.HTTPError as exc:
                return f"error: {type(exc).__name__}"
            return "ok" if resp.status_code == 200 else f"error: HTTP {resp.status_code}"

        services = list(self.urls)
        results = await asyncio.gather(*(probe(s) for s in services))
        return dict(zip(services, results, strict=True))


async def _relay(response: httpx.Response, service: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        # Headers are already sent: all that is left is to cut the connection.
        logger.warning("%s broke off its response: %r", service, exc)
        raise
    finally:
        await response.aclose()
