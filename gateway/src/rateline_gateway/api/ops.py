"""``/healthz``, ``/readyz`` and ``/metrics``. Readiness: the database answers and the signing
keys are loaded (and, if ``ready_requires_upstreams``, every upstream's ``/healthz`` is 200)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from rateline_gateway.settings import GatewaySettings
from rateline_shared.observability import healthz, metrics

router = APIRouter(include_in_schema=False)
router.add_api_route("/healthz", healthz, methods=["GET"])
router.add_api_route("/metrics", metrics, methods=["GET"])


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    runtime: Any = request.app.state.runtime
    settings: GatewaySettings = request.app.state.settings
    checks: dict[str, Any] = {}
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    loaded = getattr(request.app.state, "keys", None) is not None
    checks["signing_keys"] = "ok" if loaded else "error: not loaded"
    if settings.ready_requires_upstreams:
        for service, state in (await request.app.state.upstreams.health()).items():
            checks[f"upstream:{service}"] = state
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status_code=200 if ready else 503,
    )
