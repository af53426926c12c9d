"""App factory of the catalog service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from rateline_catalog.api import migrations, plans, products, tariffs
from rateline_catalog.events import CONSUMERS, SERVICE
from rateline_catalog.settings import CatalogSettings
from rateline_shared.deadletters import dead_letters_router
from rateline_shared.service import build_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    settings = settings or CatalogSettings()
    return build_service_app(
        service=SERVICE,
        title="Rateline catalog service",
        description=(
            "Products; plans with versions (recurring, one-time and usage charges: per-unit, "
            "tariff, graduated, volume and package pricing; allowances; spend caps) and "
            "migrations between versions; CGRateS tariff-plan import and quotes by subject, "
            "line or plan."
        ),
        settings=settings,
        routers=[products.router, plans.router, migrations.router, tariffs.router, dead_letters_router(SERVICE)],
        consumers=CONSUMERS,
        migrations_dir=MIGRATIONS,
    )
