"""The delivery worker: claims due deliveries, signs and POSTs them, records every attempt.

One attempt goes through three steps, and no database transaction is open while the partner's
server is being waited for:

1. claim (one short transaction): due rows are locked with ``FOR UPDATE SKIP LOCKED`` (so
   replicas never take the same row), marked ``sending`` with a lease, and an attempt row is
   written; commit.
2. send (no transaction): sign with the endpoint's secret (Standard Webhooks, HMAC-SHA256) and
   POST with a timeout.
3. record (one short transaction): the attempt's status code, error and duration; the delivery
   becomes ``delivered`` (2xx), ``pending`` again after the back-off, or ``failed``.

A process killed between 1 and 3 leaves the row ``sending``; when its lease expires the row
is due again and another worker (or the restarted one) sends it. Delivery is therefore at least
once; partners de-duplicate on ``webhook-id``, which is the event id on every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

import httpx
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_shared.db import unit_of_work, utcnow
from rateline_shared.service import Runtime
from rateline_webhooks import repository as repo
from rateline_webhooks.domain.messages import encode_body, signed_headers
from rateline_webhooks.domain.retry import after_attempt
from rateline_webhooks.settings import WebhooksSettings

logger = logging.getLogger("rateline.webhooks.delivery")

ATTEMPTS = Counter("rateline_webhook_attempts_total", "Webhook delivery attempts", ["outcome"])
ATTEMPT_SECONDS = Histogram("rateline_webhook_attempt_seconds", "Webhook attempt duration")


def http_client(settings: WebhooksSettings) -> httpx.AsyncClient:
    """No redirects (a 3xx is a failed attempt), no proxy from the environment unless set."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.delivery_timeout),
        follow_redirects=False,
        trust_env=False,
        proxy=settings.delivery_proxy,
        limits=httpx.Limits(max_connections=settings.delivery_concurrency),
    )


async def send(
    client: httpx.AsyncClient, claim: repo.Claim, body_limit: int, timeout: float
) -> tuple[int | None, str | None, str | None]:
    """POST one signed attempt: (status code, error, start of the response body)."""
    body = encode_body(claim.payload)
    headers = signed_headers(claim.secret, claim.event_id, utcnow(), body)
    try:
        # httpx's timeout bounds each network operation; this bounds the whole attempt, so a
        # server dripping bytes cannot hold it past the lease.
        async with asyncio.timeout(timeout), client.stream(
            "POST", claim.url, content=body.encode(), headers=headers
        ) as resp:
            kept = bytearray()
            async for chunk in resp.aiter_bytes():
                kept += chunk[: body_limit - len(kept)]
                if len(kept) >= body_limit:
                    break
            text = kept.decode(errors="replace") if kept else None
            error = None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"
            return resp.status_code, error, text
    except (httpx.TimeoutException, TimeoutError):
        return None, f"timeout after {timeout:g}s", None
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, None


async def attempt(
    sessions: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    settings: WebhooksSettings,
    claim: repo.Claim,
) -> None:
    started = time.monotonic()
    status_code, error, response_body = await send(
        client, claim, settings.delivery_response_body_limit, settings.delivery_timeout
    )
    elapsed = time.monotonic() - started
    finished_at = utcnow()
    move = after_attempt(
        status_code=status_code,
        round_attempts=claim.round_attempts,
        schedule=settings.retry_schedule_seconds,
        now=finished_at,
    )
    ATTEMPTS.labels(move.status).inc()
    ATTEMPT_SECONDS.observe(elapsed)
    async with unit_of_work(sessions) as session:
        kept = await repo.finish_attempt(
            session,
            claim,
            finished_at=finished_at,
            duration_ms=round(elapsed * 1000),
            status_code=status_code,
            error=error,
            response_body=response_body,
            new_status=move.status,
            next_attempt_at=move.next_attempt_at,
        )
    if not kept:
        logger.warning(
            "delivery %s: lease lost during attempt %s", claim.delivery_id, claim.attempt_number,
            extra={"event_id": claim.event_id, "tenant": claim.tenant},
        )


async def delivery_worker(runtime: Runtime) -> None:
    """Run forever: keep up to ``delivery_concurrency`` attempts in flight."""
    settings = cast(WebhooksSettings, runtime.settings)
    # Every attempt is logged in delivery_attempts; httpx's own INFO line per request would
    # repeat it in the process log, partner URLs (and any token in them) included.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    in_flight: set[asyncio.Task[None]] = set()

    async def guarded(claim: repo.Claim) -> None:
        try:
            await attempt(runtime.sessions, client, settings, claim)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease will expire and the delivery will be tried again.
            logger.exception("delivery %s: recording the attempt failed", claim.delivery_id)

    async with http_client(settings) as client:
        try:
            while True:
                free = settings.delivery_concurrency - len(in_flight)
                claims: list[repo.Claim] = []
                if free > 0:
                    try:
                        async with unit_of_work(runtime.sessions) as session:
                            claims = await repo.claim_due(
                                session,
                                now=utcnow(),
                                limit=free,
                                lease_seconds=settings.delivery_lease_seconds,
                            )
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        logger.exception("claiming deliveries failed; retrying")
                        await asyncio.sleep(min(5.0, settings.delivery_poll_interval * 5))
                        continue
                for claim in claims:
                    task = asyncio.create_task(guarded(claim), name=f"webhook-{claim.delivery_id}")
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if claims and len(claims) == free:
                    continue  # there may be more due right now
                if in_flight and len(in_flight) >= settings.delivery_concurrency:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(settings.delivery_poll_interval)
        finally:
            # Attempts cut short here stay 'sending' and are retried when their lease expires.
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
