"""App factory of the gateway.

Built from the shared pieces rather than ``build_service_app``: the gateway publishes and
consumes no events, so it needs no NATS connection, outbox relay or consumers; its lifespan
instead loads (or creates) the signing keys and opens the one pooled upstream HTTP client.
Health, metrics, correlation ids and problem+json behave exactly as in every service.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import FastAPI

from rateline_gateway.api import clients, docs, oauth, ops, proxy
from rateline_gateway.keys import ensure_signing_keys
from rateline_gateway.settings import GatewaySettings
from rateline_gateway.upstreams import Upstreams
from rateline_shared.auth import JwksVerifier
from rateline_shared.db import create_engine, session_factory
from rateline_shared.errors import install_problem_handlers
from rateline_shared.logs import CorrelationIdMiddleware, configure_logging
from rateline_shared.migrations import upgrade_async
from rateline_shared.observability import MetricsMiddleware
from rateline_shared.service import Runtime

SERVICE = "gateway"
MIGRATIONS = Path(__file__).parent / "migrations"

logger = logging.getLogger("rateline.gateway")


def create_app(settings: GatewaySettings | None = None, *, migrate_on_start: bool = False) -> FastAPI:
    settings = settings or GatewaySettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate_on_start:
            await upgrade_async(MIGRATIONS, settings.database_url)
        engine = create_engine(settings.database_url, settings.database_pool_size)
        runtime = Runtime(SERVICE, settings, engine, session_factory(engine))
        app.state.runtime = runtime
        upstreams = Upstreams(settings)
        app.state.upstreams = upstreams
        try:
            keys = await ensure_signing_keys(runtime.sessions, settings.signing_key_bits)
            app.state.keys = keys
            # The gateway verifies bearer tokens against its own keys, without HTTP to itself.
            app.state.verifier = JwksVerifier(
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                jwks_json=keys.jwks_json(),
            )
            logger.info("gateway started; signing key %s", keys.kid)
            yield
        finally:
            await upstreams.aclose()
            await engine.dispose()
            logger.info("gateway stopped")

    app = FastAPI(
        title="Rateline gateway",
        description="OAuth2 token issuing, JWKS, routing to the services, merged OpenAPI.",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,  # /openapi.json is the merged document (api/docs.py)
        docs_url=None,
        redoc_url=None,
        # No 307 from /v1 to /v1/ (or similar): a redirect would drop a POST body and reveal
        # nothing useful; unknown paths get a 404 problem instead.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.service = SERVICE
    install_problem_handlers(app)
    app.add_exception_handler(OAuth2Error, oauth.oauth_error_handler)
    app.add_middleware(MetricsMiddleware, service=SERVICE)
    app.add_middleware(CorrelationIdMiddleware)
    app.include_router(ops.router)
    app.include_router(oauth.router)
    app.include_router(clients.router)
    app.include_router(docs.router)
    app.include_router(proxy.router)  # last: the /v1 catch-all
    return app
