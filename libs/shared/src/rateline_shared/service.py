"""The one way a Rateline service is assembled and run.

Each service's ``app.py`` calls :func:`build_service_app` with its settings, routers, event
consumers and background workers; its ``__main__`` calls :func:`service_main`. The lifespan
connects the database and NATS, provisions streams, and runs the outbox relay, the consumers
and the workers as tasks of the same process (scale out by running more replicas).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from fastapi import APIRouter, FastAPI
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rateline_shared.auth import JwksVerifier
from rateline_shared.db import create_engine, session_factory
from rateline_shared.errors import install_problem_handlers
from rateline_shared.events.consumer import ConsumerSpec, run_consumer
from rateline_shared.events.outbox import run_relay
from rateline_shared.events.streams import ensure_streams
from rateline_shared.logs import CorrelationIdMiddleware, configure_logging
from rateline_shared.migrations import upgrade, upgrade_async
from rateline_shared.observability import MetricsMiddleware
from rateline_shared.observability import router as ops_router
from rateline_shared.settings import ServiceSettings

logger = logging.getLogger("rateline.service")


@dataclass
class Runtime:
    """What a running service holds: settings, database, NATS, and its background tasks."""

    service: str
    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    nc: NATS | None = None
    js: JetStreamContext | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def jetstream(self) -> JetStreamContext:
        assert self.js is not None, "NATS is not connected"
        return self.js


Worker = Callable[[Runtime], Coroutine[Any, Any, None]]


async def connect_nats(url: str, name: str) -> NATS:
    async def on_error(exc: Exception) -> None:
        logger.warning("nats error: %s", exc)

    return await nats.connect(
        servers=url.split(","),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
    )


def build_service_app(
    *,
    service: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    consumers: Sequence[ConsumerSpec] = (),
    workers: Sequence[Worker] = (),
    migrations_dir: Path | None = None,
    migrate_on_start: bool = False,
) -> FastAPI:
    configure_logging(service, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate_on_start and migrations_dir is not None:
            await upgrade_async(migrations_dir, settings.database_url)
        engine = create_engine(settings.database_url, settings.database_pool_size)
        runtime = Runtime(service, settings, engine, session_factory(engine))
        app.state.runtime = runtime
        runtime.nc = await connect_nats(settings.nats_url, f"rateline-{service}")
        runtime.js = runtime.nc.jetstream()
        await ensure_streams(runtime.js, {service, *(c.stream_service for c in consumers)})
        runtime.tasks.append(
            asyncio.create_task(
                run_relay(
                    runtime.sessions,
                    runtime.js,
                    poll_interval=settings.outbox_poll_interval,
                    batch_size=settings.outbox_batch_size,
                ),
                name=f"{service}-outbox-relay",
            )
        )
        for spec in consumers:
            runtime.tasks.append(
                asyncio.create_task(
                    run_consumer(
                        runtime.js,
                        runtime.sessions,
                        spec,
                        batch_size=settings.consumer_batch_size,
                        max_deliver=settings.consumer_max_deliver,
                        ack_wait=settings.consumer_ack_wait,
                    ),
                    name=f"consumer-{spec.name}",
                )
            )
        for worker in workers:
            runtime.tasks.append(asyncio.create_task(worker(runtime), name=worker.__name__))
        logger.info("%s started", service)
        try:
            yield
        finally:
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            if runtime.nc is not None:
                # Consumers and relay are stopped and everything they took is acked or will be
                # redelivered, so closing (not draining) loses nothing and is quick.
                try:
                    await asyncio.wait_for(runtime.nc.close(), timeout=2)
                except Exception:
                    logger.warning("nats close did not finish cleanly")
            await engine.dispose()
            logger.info("%s stopped", service)

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.verifier = JwksVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        jwks_url=settings.jwks_url,
        jwks_json=settings.jwks_json,
    )
    app.state.service = service
    install_problem_handlers(app)
    app.add_middleware(MetricsMiddleware, service=service)
    app.add_middleware(CorrelationIdMiddleware)
    app.include_router(ops_router)
    for router in routers:
        app.include_router(router)
    return app


def service_main(
    *,
    service: str,
    app_factory: str,
    settings: ServiceSettings,
    migrations_dir: Path,
    argv: Sequence[str] | None = None,
) -> None:
    """``python -m rateline_<service> [serve|migrate]``."""
    parser = argparse.ArgumentParser(prog=f"rateline-{service}")
    parser.add_argument("command", choices=["serve", "migrate"], nargs="?", default="serve")
    args = parser.parse_args(argv)
    configure_logging(service, settings.log_level, settings.log_json)
    if args.command == "migrate":
        upgrade(migrations_dir, settings.database_url)
        logger.info("%s migrations applied", service)
        return
    import uvicorn

    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
