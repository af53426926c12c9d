"""App factory of the webhooks service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from rateline_shared.deadletters import dead_letters_router
from rateline_shared.service import build_service_app
from rateline_webhooks.api import deliveries, endpoints
from rateline_webhooks.delivery import delivery_worker
from rateline_webhooks.events import CONSUMERS, SERVICE
from rateline_webhooks.settings import WebhooksSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: WebhooksSettings | None = None) -> FastAPI:
    settings = settings or WebhooksSettings()
    return build_service_app(
        service=SERVICE,
        title="Rateline webhooks service",
        description="Partner endpoints, signed Standard Webhooks delivery with retries, "
        "the delivery log and replay.",
        settings=settings,
        routers=[endpoints.router, deliveries.router, dead_letters_router(SERVICE)],
        consumers=CONSUMERS,
        workers=[delivery_worker],
        migrations_dir=MIGRATIONS,
    )
