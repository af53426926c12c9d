"""Events this service publishes (it consumes none yet)."""

from __future__ import annotations

from rateline_shared.events.consumer import ConsumerSpec

SERVICE = "catalog"
PLAN_PUBLISHED = "catalog.plan.published"
TARIFF_IMPORTED = "catalog.tariff.imported"

CONSUMERS: list[ConsumerSpec] = []
