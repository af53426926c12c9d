"""App factory of the customer service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from rateline_customer.api import accounts, subscriptions
from rateline_customer.events import CONSUMERS, SERVICE
from rateline_customer.settings import CustomerSettings
from rateline_shared.deadletters import dead_letters_router
from rateline_shared.service import build_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CustomerSettings | None = None) -> FastAPI:
    settings = settings or CustomerSettings()
    return build_service_app(
        service=SERVICE,
        title="Rateline customer service",
        description="Accounts, lines (E.164 MSISDNs) and subscriptions to plans.",
        settings=settings,
        routers=[accounts.router, subscriptions.router, dead_letters_router(SERVICE)],
        consumers=CONSUMERS,
        migrations_dir=MIGRATIONS,
    )
