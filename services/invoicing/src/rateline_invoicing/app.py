"""App factory of the invoicing service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from rateline_invoicing.api import bill_runs, invoices, usage
from rateline_invoicing.billrun import bill_run_worker
from rateline_invoicing.events import CONSUMERS, SERVICE
from rateline_invoicing.settings import InvoicingSettings
from rateline_shared.deadletters import dead_letters_router
from rateline_shared.service import build_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: InvoicingSettings | None = None) -> FastAPI:
    settings = settings or InvoicingSettings()
    return build_service_app(
        service=SERVICE,
        title="Rateline invoicing service",
        description=(
            "Bill runs, invoices (draft, finalized with gapless numbers, paid) and the projections "
            "of accounts, subscriptions, plans and rated usage they are built from."
        ),
        settings=settings,
        routers=[bill_runs.router, invoices.router, usage.router, dead_letters_router(SERVICE)],
        consumers=CONSUMERS,
        workers=[bill_run_worker] if settings.bill_run_worker else [],
        migrations_dir=MIGRATIONS,
    )
