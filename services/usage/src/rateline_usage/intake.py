"""Usage intake: de-duplicate, guide and rate a batch, store it and emit the rated records.

The orchestration between the pure domain (mediation, guiding, rating), the repository and
the outbox. Everything runs in the caller's transaction: the records, their outcomes and the
``usage.records.rated`` events are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.db import utcnow
from rateline_shared.events import publish_in_transaction
from rateline_shared.events.payloads import RatedRecord
from rateline_usage import repository as repo
from rateline_usage.domain.guiding import (
    MALFORMED,
    STATUS_DUPLICATE,
    STATUS_RATED,
    STATUS_REJECTED,
    Outcome,
    Usage,
    guide,
)
from rateline_usage.domain.mediation import first_occurrences, normalise_msisdn, quantity_of
from rateline_usage.domain.rating import QUANTITY_UNITS
from rateline_usage.events import records_rated_events
from rateline_usage.ids import new_ids

# Rejected records re-processed per statement when re-processing the whole queue.
REPROCESS_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class RecordIn:
    """A structurally valid record (the API layer has checked types and required fields)."""

    source: str
    record_id: str
    service: str
    msisdn: str
    started_at: datetime
    destination: str | None = None
    duration_seconds: int | None = None
    count: int | None = None
    raw: str | None = None  # the file row (imports)
    import_id: str | None = None


@dataclass(frozen=True, slots=True)
class MalformedIn:
    """A file row that is not a valid record: stored rejected ``malformed``, never dropped.

    The fields that could be read are kept (each valid on its own); the others stay empty until
    a correction fills them.
    """

    source: str
    record_id: str
    raw: str
    message: str
    import_id: str | None = None
    service: str | None = None
    msisdn: str | None = None
    started_at: datetime | None = None
    destination: str | None = None
    quantity: int | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    record_id: str
    status: str  # rated | rejected | duplicate
    id: str
    reason: str | None = None
    message: str | None = None


@dataclass
class IngestSummary:
    received: int = 0
    rated: int = 0
    rejected: int = 0  # including the malformed ones
    malformed: int = 0
    duplicates: int = 0
    results: list[ItemResult] = field(default_factory=list)


@dataclass
class ReprocessSummary:
    considered: int = 0
    rated: int = 0
    rejected: int = 0
    skipped: int = 0


class _Normaliser:
    """E.164 normalisation, memoised per batch (a batch repeats the same numbers a lot)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._cache: dict[str, str | None] = {}

    def __call__(self, raw: str) -> str | None:
        if raw not in self._cache:
            self._cache[raw] = normalise_msisdn(raw, self.region)
        return self._cache[raw]


def _outcome_columns(outcome: Outcome, now: datetime) -> dict[str, Any]:
    charge = outcome.charge
    return {
        "status": outcome.status,
        "reason": outcome.reason,
        "reason_message": outcome.message,
        "line_id": outcome.line_id,
        "account_id": outcome.account_id,
        "subscription_id": outcome.subscription_id,
        "plan_id": outcome.plan_id,
        "billed_quantity": Decimal(charge.billed_quantity) if charge else None,
        "amount": charge.amount if charge else None,
        "currency": outcome.currency,
        "rated_at": now if outcome.status == STATUS_RATED else None,
    }


def _rated_record(
    *, source: str, record_id: str, service: str, started_at: datetime, outcome: Outcome
) -> RatedRecord:
    charge = outcome.charge
    assert charge is not None and outcome.currency is not None
    assert outcome.account_id and outcome.line_id and outcome.subscription_id and outcome.plan_id
    return RatedRecord(
        record_id=record_id,
        source=source,
        account_id=outcome.account_id,
        line_id=outcome.line_id,
        subscription_id=outcome.subscription_id,
        plan_id=outcome.plan_id,
        service=service,
        started_at=started_at,
        quantity=Decimal(charge.quantity),
        billed_quantity=Decimal(charge.billed_quantity),
        unit=charge.unit,
        amount=charge.amount,
        currency=outcome.currency,
    )


def _malformed(message: str) -> Outcome:
    return Outcome(STATUS_REJECTED, MALFORMED, message)


def incomplete_fields(row: Any) -> list[str]:
    """The fields a stored record still lacks before it can be guided (a malformed row)."""
    return [name for name in ("service", "msisdn", "started_at", "quantity") if row[name] is None]


async def ingest(
    session: AsyncSession,
    tenant: str,
    records: Sequence[RecordIn | MalformedIn],
    *,
    default_region: str,
) -> IngestSummary:
    """Store a batch once per (source, record_id), rating what can be rated.

    Every intake format ends here. Malformed file rows are stored rejected ``malformed``
    (de-duplicated like the others) so that they can be corrected and re-processed.
    """
    now = utcnow()
    keys = [(r.source, r.record_id) for r in records]
    earlier = first_occurrences(keys)
    firsts = [i for i, e in enumerate(earlier) if e is None]
    stored = await repo.existing_ids(session, tenant, [keys[i] for i in firsts])
    fresh = [i for i in firsts if keys[i] not in stored]

    normalise = _Normaliser(default_region)
    usages: dict[int, Usage] = {}
    for i in fresh:
        rec = records[i]
        if isinstance(rec, RecordIn):
            usages[i] = Usage(
                service=rec.service,
                msisdn=normalise(rec.msisdn),
                started_at=rec.started_at,
                quantity=quantity_of(rec.service, rec.duration_seconds, rec.count),
                raw_msisdn=rec.msisdn,
            )
    directory = await repo.load_directory(
        session, tenant, (u.msisdn for u in usages.values() if u.msisdn is not None)
    )
    outcomes = {i: guide(u, directory) for i, u in usages.items()}
    ids = dict(zip(fresh, new_ids(len(fresh)), strict=True))
    rows = []
    for i in fresh:
        rec = records[i]
        common = {
            "id": ids[i], "source": rec.source, "record_id": rec.record_id,
            "destination": rec.destination, "raw": rec.raw, "import_id": rec.import_id,
        }
        if isinstance(rec, MalformedIn):
            outcomes[i] = _malformed(rec.message)
            rows.append(
                common | {
                    "service": rec.service,
                    "msisdn": rec.msisdn,
                    "started_at": rec.started_at,
                    "quantity": None if rec.quantity is None else Decimal(rec.quantity),
                    "unit": QUANTITY_UNITS[rec.service] if rec.service else None,
                    **_outcome_columns(outcomes[i], now),
                }
            )
            continue
        usage = usages[i]
        rows.append(
            common | {
                "service": rec.service,
                "msisdn": usage.msisdn or rec.msisdn,
                "started_at": rec.started_at,
                "quantity": Decimal(usage.quantity),
                "unit": QUANTITY_UNITS[rec.service],
                **_outcome_columns(outcomes[i], now),
            }
        )
    inserted = await repo.insert_records(session, tenant, rows, now)
    # Lost a race with a concurrent request carrying the same records: those are duplicates.
    raced = [i for i in fresh if ids[i] not in inserted]
    if raced:
        stored |= await repo.existing_ids(session, tenant, [keys[i] for i in raced])

    summary = IngestSummary(received=len(records))
    rated: list[RatedRecord] = []
    for index, rec in enumerate(records):
        first = earlier[index]
        if first is None and keys[index] not in stored and ids[index] in inserted:
            outcome = outcomes[index]
            summary.results.append(
                ItemResult(index, rec.record_id, outcome.status, ids[index], outcome.reason, outcome.message)
            )
            if outcome.status == STATUS_RATED:
                assert isinstance(rec, RecordIn)
                summary.rated += 1
                rated.append(
                    _rated_record(
                        source=rec.source, record_id=rec.record_id, service=rec.service,
                        started_at=rec.started_at, outcome=outcome,
                    )
                )
            else:
                summary.rejected += 1
                summary.malformed += outcome.reason == MALFORMED
            continue
        key = keys[index] if first is None else keys[first]
        existing = stored.get(key) or ids[first if first is not None else index]
        summary.duplicates += 1
        summary.results.append(ItemResult(index, rec.record_id, STATUS_DUPLICATE, existing))
    await publish_in_transaction(session, *records_rated_events(tenant, rated))
    return summary


async def reprocess(
    session: AsyncSession,
    tenant: str,
    *,
    record_ids: Sequence[str] | None,
    default_region: str,
    filters: repo.RejectedFilter | None = None,
) -> ReprocessSummary:
    """Guide and rate rejected records again (given ones, or the rejected queue by filters).

    A record that still lacks a field (a malformed row not yet corrected) stays ``malformed``.
    """
    summary = ReprocessSummary()
    normalise = _Normaliser(default_region)
    after: tuple[datetime, str] | None = None
    wanted = list(dict.fromkeys(record_ids)) if record_ids is not None else None
    while True:
        rows = await repo.lock_rejected(
            session,
            tenant,
            ids=wanted,
            after=after,
            limit=len(wanted) if wanted is not None else REPROCESS_CHUNK,
            filters=filters,
        )
        if not rows:
            break
        now = utcnow()
        usages = [
            None
            if incomplete_fields(r)
            else Usage(
                service=r["service"],
                msisdn=normalise(r["msisdn"]),
                started_at=r["started_at"],
                quantity=int(r["quantity"]),
                raw_msisdn=r["msisdn"],
            )
            for r in rows
        ]
        directory = await repo.load_directory(
            session, tenant, (u.msisdn for u in usages if u is not None and u.msisdn is not None)
        )
        updates, rated = [], []
        for row, usage in zip(rows, usages, strict=True):
            if usage is None:
                missing = ", ".join(incomplete_fields(row))
                outcome = _malformed(f"still malformed: {missing} missing; correct the record first")
            else:
                outcome = guide(usage, directory)
            updates.append({"id": row["id"], **_outcome_columns(outcome, now)})
            if outcome.status == STATUS_RATED:
                summary.rated += 1
                rated.append(
                    _rated_record(
                        source=row["source"], record_id=row["record_id"], service=row["service"],
                        started_at=row["started_at"], outcome=outcome,
                    )
                )
            else:
                assert outcome.status == STATUS_REJECTED
                summary.rejected += 1
        await repo.update_outcomes(session, tenant, updates, now)
        await publish_in_transaction(session, *records_rated_events(tenant, rated))
        summary.considered += len(rows)
        if wanted is not None or len(rows) < REPROCESS_CHUNK:
            break
        after = (rows[-1]["created_at"], rows[-1]["id"])
    if wanted is not None:
        summary.skipped = len(wanted) - summary.considered
    return summary
