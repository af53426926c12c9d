"""App factory of the usage service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from rateline_shared.deadletters import dead_letters_router
from rateline_shared.service import build_service_app
from rateline_usage.api import balances, imports, records, rerating, subscribers
from rateline_usage.events import CONSUMERS, SERVICE
from rateline_usage.mediation_feed import mediation_worker
from rateline_usage.rerating import rerating_worker
from rateline_usage.settings import UsageSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: UsageSettings | None = None) -> FastAPI:
    settings = settings or UsageSettings()
    app = build_service_app(
        service=SERVICE,
        title="Rateline usage service",
        description=(
            "Usage intake (batches of CDRs and data sessions as JSON or CSV, Asterisk/FreeSWITCH/mapped "
            "CDR files, a NATS subject for mediation devices), mediation, rating from projections of "
            "customer and catalog events (plan versions, migrations, imported tariffs), allowance "
            "balances and spend thresholds, the rejected-record queue (correct, re-process), and re-rating "
            "jobs (rate again after a correction; the differences become adjustments)."
        ),
        settings=settings,
        routers=[
            records.router, imports.router, balances.router, subscribers.router, rerating.router,
            dead_letters_router(SERVICE),
        ],
        consumers=CONSUMERS,
        workers=[mediation_worker, rerating_worker],
        migrations_dir=MIGRATIONS,
    )
    app.state.usage_settings = settings
    return app
