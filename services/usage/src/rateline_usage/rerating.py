"""Re-rating jobs: rate already rated records again after a correction, chunk by chunk.

A job (``POST /v1/usage/rerating-jobs``) names one scope (a line, an account, a plan, or every
tariff-priced record) and a period of record starts ``[started_from, started_before)``. At
creation it counts the rated records in scope (``total``) and keeps the greatest of their ids
(``until_id``): records rated after the job was created were rated with the projections it
would use, so they are not its business.

How a job survives being killed at any moment (the pattern of invoicing's bill runs):

1. *One chunk, one transaction.* A worker claims an open job (``queued`` or ``running``, any
   tenant, least recently advanced first) with ``FOR UPDATE SKIP LOCKED`` and holds that lock
   until it commits, so two replicas never process one job at once (the other one takes
   another job, or waits for the next poll). It locks the next ``rerating_chunk_size`` records
   of the job after its ``cursor`` (keyset over ``usage_records.id``), loads what they need
   from the projections in a few queries (``repository.load_directory``, as intake does, with
   the tariff in force now), re-rates each with :func:`domain.rerating.rerate`, writes the
   changed records, their ``rerating_adjustments`` rows (with the values they replaced), the
   spend totals they move, the ``usage.records.rerated`` events (<= 500 adjustments each) and
   any spend threshold events through the outbox, and advances the job's cursor,
   ``processed``, ``changed``, ``skipped`` (with reasons) and per-currency ``deltas``.
   Then it commits. Killed inside a chunk: everything of the chunk rolls back, and the next
   claim does it again. Killed between chunks: the next claim resumes from the cursor.
   Nothing is lost and nothing is done twice (an adjustment's key is (job, record)).
2. *Done*: the chunk that finds fewer records than it asked for (or reaches ``until_id``) marks
   the job ``completed``.
3. *Failures*: a chunk that raises is rolled back and counted in the job's ``attempts`` (with
   the error); after ``rerating_max_attempts`` failures for a non-transient reason the job is
   ``failed`` with that error. Transient failures (the database or network away, a deadlock)
   are only retried. A record that can no longer be rated is not a failure: it is left
   unchanged and counted in ``skipped``.

Re-rating neither consumes nor releases allowances (see ``domain/rerating.py``); it does move
the subscription's spend total of the record's cycle by the delta, and a spend threshold that
the corrected total reaches is announced like at intake (once per cycle and threshold, ever).
Rejected records are never re-rated (that is re-processing).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_shared.db import unit_of_work, utcnow
from rateline_shared.events import CloudEvent, publish_in_transaction
from rateline_shared.events.payloads import Adjustment, SpendThresholdReached
from rateline_shared.service import Runtime
from rateline_usage import repository as repo
from rateline_usage.domain.allowances import thresholds_crossed
from rateline_usage.domain.guiding import Usage
from rateline_usage.domain.rerating import PreviousRating, Rerated, rerate
from rateline_usage.events import records_rerated_events, spend_threshold_event
from rateline_usage.settings import UsageSettings
from rateline_usage.tariffs import tariff_in_force

logger = logging.getLogger("rateline.usage.rerating")

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
# SQLSTATE classes/codes worth retrying: connection exceptions, serialization failure, deadlock,
# operator intervention (e.g. the server shutting down).
_TRANSIENT_STATES = ("08", "40001", "40P01", "57P")
# Skipped records named in a chunk's log line (the job keeps the counts per reason).
MAX_LOGGED_SKIPS = 5


@dataclass
class ChunkResult:
    """What one chunk did (added to the job's counters)."""

    processed: int = 0
    changed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    deltas: dict[str, Decimal] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # a few skipped records, for the log


def is_transient(exc: BaseException) -> bool:
    """Whether retrying later may succeed without anybody changing anything."""
    if isinstance(exc, (OSError, TimeoutError, OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        for candidate in (orig, getattr(orig, "__cause__", None)):
            state = getattr(candidate, "sqlstate", None)
            if isinstance(state, str) and state.startswith(_TRANSIENT_STATES):
                return True
    return False


def _usage(row: RowMapping) -> Usage:
    return Usage(
        service=row["service"],
        msisdn=row["msisdn"],
        started_at=row["started_at"],
        quantity=int(row["quantity"]),
        raw_msisdn=row["msisdn"],
        destination=row["destination"],
    )


def _previous(row: RowMapping) -> PreviousRating:
    return PreviousRating.of(
        subscription_id=row["subscription_id"],
        pricing=row["pricing"],
        currency=row["currency"],
        amount=row["amount"],
        billed_quantity=row["billed_quantity"],
        chargeable_quantity=row["chargeable_quantity"],
        allowance_code=row["allowance_code"],
        allowance_used=row["allowance_used"],
    )


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


async def rerate_records(session: AsyncSession, job: RowMapping, rows: list[RowMapping], now: datetime) -> ChunkResult:
    """Re-rate a chunk of locked records of ``job`` and write everything it changes."""
    tenant, job_id = job["tenant"], job["id"]
    directory = await repo.load_directory(session, tenant, {r["msisdn"] for r in rows}, tariff_in_force)
    result = ChunkResult(processed=len(rows))
    updates: list[dict[str, Any]] = []
    adjustments: list[dict[str, Any]] = []
    payloads: list[Adjustment] = []
    changed: list[Rerated] = []
    for row in rows:
        outcome = rerate(_usage(row), _previous(row), directory)
        if not isinstance(outcome, Rerated):
            result.skipped[outcome.reason] += 1
            if len(result.examples) < MAX_LOGGED_SKIPS:
                result.examples.append(f"{row['id']} ({outcome.reason}: {outcome.message})")
            continue
        if not outcome.changed:
            continue
        charge = outcome.outcome.charge
        assert charge is not None
        changed.append(outcome)
        currency = row["currency"]
        result.deltas[currency] = result.deltas.get(currency, Decimal(0)) + outcome.delta
        intervals = list(charge.intervals) if charge.intervals is not None else None
        updates.append(
            {
                "id": row["id"], "amount": charge.amount, "billed_quantity": charge.billed_quantity,
                "chargeable_quantity": charge.chargeable_quantity, "plan_version": outcome.outcome.plan_version,
                "rating_plan": charge.rating_plan,
                "tariff_intervals": json.dumps(intervals) if intervals is not None else None,
            }
        )
        common = {
            "source": row["source"], "record_id": row["record_id"], "account_id": row["account_id"],
            "subscription_id": row["subscription_id"], "plan_id": row["plan_id"], "service": row["service"],
            "started_at": row["started_at"], "currency": currency,
        }
        adjustments.append(
            common | {
                "tenant": tenant, "job_id": job_id, "usage_id": row["id"],
                "old_amount": outcome.old_amount, "new_amount": outcome.new_amount, "delta": outcome.delta,
                "old_chargeable_quantity": outcome.old_chargeable,
                "new_chargeable_quantity": outcome.new_chargeable,
                "previous": {
                    "billed_quantity": _str(row["billed_quantity"]), "plan_version": row["plan_version"],
                    "rating_plan": row["rating_plan"], "tariff_intervals": row["tariff_intervals"],
                    "rated_at": row["rated_at"].isoformat() if row["rated_at"] else None,
                },
                "created_at": now,
            }
        )
        payloads.append(
            Adjustment(
                **common, old_amount=outcome.old_amount, new_amount=outcome.new_amount, delta=outcome.delta,
                chargeable_quantity=outcome.new_chargeable,
            )
        )
    result.changed = len(changed)
    await repo.update_rerated_records(session, tenant, updates, now)
    await repo.insert_rerating_adjustments(session, adjustments)
    events = records_rerated_events(tenant, job_id, job["reason"], payloads)
    events += await _move_spend(session, tenant, changed, now)
    await publish_in_transaction(session, *events)
    return result


async def _move_spend(session: AsyncSession, tenant: str, changed: list[Rerated], now: datetime) -> list[CloudEvent]:
    """Move each subscription's spend total of the record's cycle by the deltas; announce the
    spend thresholds the corrected totals reach (marks make each one announced once, ever)."""
    spend: dict[tuple[str, date], dict[str, Any]] = {}
    caps = {}
    for r in changed:
        o = r.outcome
        if o.spend_cap is None or o.cycle is None or not r.delta:
            continue
        assert o.subscription_id is not None
        key = (o.subscription_id, o.cycle.start)
        entry = spend.setdefault(
            key,
            {
                "subscription_id": o.subscription_id, "period_start": o.cycle.start, "period_end": o.cycle.end,
                "account_id": o.account_id, "plan_id": o.plan_id, "currency": o.currency, "amount": Decimal(0),
            },
        )
        entry["amount"] += r.delta
        caps[key] = o.spend_cap
    if not spend:
        return []
    totals = await repo.add_spend(session, tenant, [spend[k] for k in sorted(spend)], now)
    marks: list[tuple[Any, ...]] = []
    pending: dict[tuple[Any, ...], SpendThresholdReached] = {}
    for key, after in sorted(totals.items()):
        entry, cap = spend[key], caps[key]
        for t in thresholds_crossed(cap.amount, after - entry["amount"], after, cap.thresholds):
            mark = ("spend", "subscription", key[0], entry["plan_id"], "", key[1], t)
            marks.append(mark)
            pending[mark] = SpendThresholdReached(
                account_id=entry["account_id"], subscription_id=key[0], plan_id=entry["plan_id"],
                period_start=key[1], period_end=entry["period_end"], threshold=t, cap=cap.amount, spent=after,
                currency=entry["currency"], reached_at=now,
            )
    new = await repo.insert_threshold_marks(session, tenant, marks, now)
    return [spend_threshold_event(tenant, pending[m]) for m in marks if m in new]


def _merged(counts: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(counts)
    for key, value in extra.items():
        out[key] = out.get(key, 0) + value
    return out


async def _advance(session: AsyncSession, job: RowMapping, chunk_size: int) -> dict[str, Any]:
    """Process the claimed job's next chunk and advance it; returns the job's new values."""
    now = utcnow()
    values: dict[str, Any] = {"updated_at": now, "attempts": 0, "error": None}
    if job["status"] == QUEUED:
        values |= {"status": RUNNING, "started_at": now}
        logger.info(
            "re-rating job %s started: %s records (%s %s)", job["id"], job["total"], job["scope_kind"],
            job["scope_id"] or "", extra={"tenant": job["tenant"]},
        )
    rows = await repo.lock_job_records(session, job, chunk_size)
    result = await rerate_records(session, job, rows, now) if rows else ChunkResult()
    if result.examples:
        logger.info(
            "re-rating job %s: %s records skipped in this chunk, e.g. %s", job["id"], sum(result.skipped.values()),
            "; ".join(result.examples), extra={"tenant": job["tenant"]},
        )
    deltas = {c: Decimal(v) for c, v in job["deltas"].items()}
    for currency, delta in result.deltas.items():
        deltas[currency] = deltas.get(currency, Decimal(0)) + delta
    values |= {
        "processed": job["processed"] + result.processed,
        "changed": job["changed"] + result.changed,
        "skipped": job["skipped"] + sum(result.skipped.values()),
        "skipped_reasons": _merged(job["skipped_reasons"], result.skipped),
        "deltas": {c: str(v) for c, v in sorted(deltas.items())},
    }
    if rows:
        values["cursor"] = rows[-1]["id"]
    if len(rows) < chunk_size or rows[-1]["id"] == job["until_id"]:
        values |= {"status": COMPLETED, "finished_at": now}
    await repo.update_rerating_job(session, job["tenant"], job["id"], values)
    return values


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession], tenant: str, job_id: str, exc: Exception, max_attempts: int
) -> None:
    """Count a failed chunk; fail the job after ``max_attempts`` non-transient failures."""
    extra = {"tenant": tenant}
    error = f"{type(exc).__name__}: {exc}"[:2000]
    transient = is_transient(exc)
    async with unit_of_work(sessions) as session:
        job = await repo.lock_rerating_job(session, tenant, job_id)
        if job is None or job["status"] not in repo.OPEN_JOB_STATUSES:
            return
        now = utcnow()
        attempts = job["attempts"] + (0 if transient else 1)
        values: dict[str, Any] = {"attempts": attempts, "error": error, "updated_at": now}
        if attempts >= max_attempts:
            values |= {"status": FAILED, "finished_at": now}
            logger.error("re-rating job %s failed after %s attempts: %s", job_id, attempts, error, extra=extra)
        else:
            logger.warning(
                "re-rating job %s: a chunk failed (%s, attempt %s), will retry: %s",
                job_id, "transient" if transient else "non-transient", attempts, error, extra=extra,
            )
        await repo.update_rerating_job(session, tenant, job_id, values)


async def work_once(sessions: async_sessionmaker[AsyncSession], settings: UsageSettings) -> bool:
    """Process one chunk of the next open job; False when there was nothing to do (or the chunk
    failed: the caller waits a poll interval before the retry)."""
    claimed: tuple[str, str] | None = None
    try:
        async with unit_of_work(sessions) as session:
            job = await repo.claim_rerating_job(session)
            if job is None:
                return False
            claimed = (job["tenant"], job["id"])
            values = await _advance(session, job, settings.rerating_chunk_size)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if claimed is None:
            raise
        logger.exception("re-rating job %s: chunk failed", claimed[1], extra={"tenant": claimed[0]})
        await _record_failure(sessions, *claimed, exc, settings.rerating_max_attempts)
        return False
    logger.info(
        "re-rating job %s: %s/%s records, %s changed, %s skipped, deltas %s%s",
        job["id"], values["processed"], job["total"], values["changed"], values["skipped"], values["deltas"],
        " - completed" if values.get("status") == COMPLETED else "",
        extra={"tenant": job["tenant"]},
    )
    return True


async def rerating_worker(runtime: Runtime) -> None:
    """Background task (one per replica): work off open re-rating jobs, chunk by chunk."""
    settings = runtime.settings
    assert isinstance(settings, UsageSettings)
    if not settings.rerating_worker:
        return
    while True:
        try:
            progressed = await work_once(runtime.sessions, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("re-rating worker failed; retrying")
            progressed = False
        if not progressed:
            await asyncio.sleep(settings.rerating_poll_interval)
