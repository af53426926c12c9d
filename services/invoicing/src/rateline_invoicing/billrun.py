"""The bill-run worker: turns pending bill runs into invoices, one account per transaction.

How a run survives being killed at any moment:

1. *Claim* (one transaction): the oldest pending/running run is selected ``FOR UPDATE SKIP
   LOCKED``; a pending run gets its to-do list (``bill_run_items``, one row per account of the
   tenant, filtered by bill-cycle day) and becomes ``running``. Killed here: still pending.
2. *One account* (one transaction each): a pending item is taken ``FOR UPDATE SKIP LOCKED`` (so
   replicas share a run without doing an account twice), the account/period advisory lock is
   taken, and :func:`billing.bill_account` writes the invoice, its lines and the usage marks;
   the item is closed and the run's progress bumped in the same transaction. Killed here: the
   transaction rolls back and the item is pending again. A second run for the same period
   finds the invoice (and the unique constraint backs that up) and skips the account.
3. *Complete*: a running run with no pending item becomes ``completed`` (or
   ``completed_with_errors``). Killed before this: the next claim completes it.

An unexpected failure on one account (not a domain error) is retried up to
``bill_run_max_attempts`` times, then reported in the run's errors so the run can finish.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_invoicing import billing
from rateline_invoicing import repository as repo
from rateline_invoicing.settings import InvoicingSettings
from rateline_shared.db import unit_of_work, utcnow
from rateline_shared.service import Runtime

logger = logging.getLogger("rateline.invoicing.billrun")


async def claim_run(sessions: async_sessionmaker[AsyncSession]) -> RowMapping | None:
    """Claim the next open run, starting it (to-do list, ``running``) if it is pending."""
    async with unit_of_work(sessions) as session:
        run = await repo.claim_open_run(session)
        if run is None:
            return None
        if run["status"] == "pending":
            total = await repo.start_run(session, run)
            logger.info(
                "bill run %s started: %s accounts", run["id"], total, extra={"tenant": run["tenant"]}
            )
            run = await repo.get(session, repo.bill_runs, run["tenant"], run["id"])
        return run


async def process_next_account(
    sessions: async_sessionmaker[AsyncSession], run: RowMapping, settings: InvoicingSettings
) -> bool:
    """Bill one pending account of ``run``; False when none is left for this worker."""
    picked: str | None = None
    try:
        async with unit_of_work(sessions) as session:
            item = await repo.pick_pending_item(session, run["id"])
            if item is None:
                return False
            picked = item["account_id"]
            outcome = await billing.bill_account(
                session,
                tenant=run["tenant"],
                account_id=picked,
                period_start=run["period_start"],
                period_end=run["period_end"],
                bill_run_id=run["id"],
                auto_finalize=run["auto_finalize"],
                now=utcnow(),
                payment_terms_days=settings.payment_terms_days,
            )
            await repo.finish_item(
                session, run["id"], picked,
                status=outcome.status, invoice_id=outcome.invoice_id, error=outcome.error,
            )
        return True
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if picked is None:
            raise
        retry = await _record_failure(sessions, run, picked, exc, settings.bill_run_max_attempts)
        if retry:  # back off a little before the same account is tried again
            await asyncio.sleep(settings.bill_run_poll_interval)
        return True


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession],
    run: RowMapping,
    account_id: str,
    exc: Exception,
    max_attempts: int,
) -> bool:
    """Count a failed attempt; report the account once it failed ``max_attempts`` times.
    Returns whether the account stays pending (to be retried)."""
    extra = {"tenant": run["tenant"]}
    async with unit_of_work(sessions) as session:
        item = await repo.lock_item(session, run["id"], account_id)
        if item is None or item["status"] != "pending":
            return False
        attempts = await repo.count_attempt(session, run["id"], account_id)
        if attempts < max_attempts:
            logger.warning(
                "bill run %s: account %s failed (attempt %s), will retry: %s",
                run["id"], account_id, attempts, exc, extra=extra,
            )
            return True
        logger.error(
            "bill run %s: account %s failed %s times, reported: %r",
            run["id"], account_id, attempts, exc, extra=extra,
        )
        await repo.finish_item(
            session, run["id"], account_id,
            status="error",
            error={
                "account_id": account_id,
                "code": "internal-error",
                "reason": f"billing failed {attempts} times ({type(exc).__name__}); see the logs",
            },
        )
    return False


async def complete_run(sessions: async_sessionmaker[AsyncSession], run: RowMapping) -> bool:
    async with unit_of_work(sessions) as session:
        done = await repo.complete_run_if_done(session, run["id"])
    if done:
        logger.info("bill run %s completed", run["id"], extra={"tenant": run["tenant"]})
    return done


async def work_once(sessions: async_sessionmaker[AsyncSession], settings: InvoicingSettings) -> bool:
    """Advance the next open run as far as this worker can; False if there was nothing to do."""
    run = await claim_run(sessions)
    if run is None:
        return False
    progressed = False
    while await process_next_account(sessions, run, settings):
        progressed = True
    return await complete_run(sessions, run) or progressed


async def bill_run_worker(runtime: Runtime) -> None:
    """Background task (one per replica): poll for open bill runs and work them off."""
    settings = runtime.settings
    assert isinstance(settings, InvoicingSettings)
    while True:
        try:
            progressed = await work_once(runtime.sessions, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("bill run worker failed; retrying")
            progressed = False
        if not progressed:
            await asyncio.sleep(settings.bill_run_poll_interval)
