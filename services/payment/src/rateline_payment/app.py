"""App factory of the payment service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from rateline_payment.api import payment_methods, payments
from rateline_payment.events import CONSUMERS, SERVICE
from rateline_payment.settings import PaymentSettings
from rateline_shared.deadletters import dead_letters_router
from rateline_shared.service import build_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: PaymentSettings | None = None) -> FastAPI:
    settings = settings or PaymentSettings()
    return build_service_app(
        service=SERVICE,
        title="Rateline payment service",
        description="Payment methods, a deterministic sandbox provider and automatic "
        "collection of finalised invoices.",
        settings=settings,
        routers=[payment_methods.router, payments.router, dead_letters_router(SERVICE)],
        consumers=CONSUMERS,
        migrations_dir=MIGRATIONS,
    )
