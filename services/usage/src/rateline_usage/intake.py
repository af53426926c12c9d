"""Usage intake: de-duplicate, guide and rate a batch, store it and emit the rated records.

The orchestration between the pure domain (mediation, guiding, rating, allowances), the
repository and the outbox. Everything runs in the caller's transaction: the records, their
outcomes, the allowance balances and spend totals they move, and the ``usage.records.rated``
and threshold events are committed together or not at all.

A batch costs a fixed number of queries, whatever its size: the projections it needs (lines,
subscriptions, plan versions, migrations, accounts, and the tariff in force when a version
prices by tariff), the allowance balances it may consume (created with their rollover, then
locked in key order so that two batches on one balance serialise), the records, one update of
the balances, one of the spend totals and one insert of threshold marks.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.db import utcnow
from rateline_shared.events import publish_in_transaction
from rateline_shared.events.payloads import AllowanceThresholdReached, SpendThresholdReached
from rateline_usage import repository as repo
from rateline_usage.domain.allowances import (
    OWNER_ACCOUNT,
    AllowanceView,
    Balance,
    BalanceKey,
    Ledger,
    granted_for,
    thresholds_crossed,
)
from rateline_usage.domain.guiding import (
    MALFORMED,
    STATUS_DUPLICATE,
    STATUS_RATED,
    STATUS_REJECTED,
    Directory,
    Guided,
    Outcome,
    Usage,
    guide,
    previous_cycle_of,
    price,
)
from rateline_usage.domain.mediation import first_occurrences, normalise_msisdn, quantity_of
from rateline_usage.domain.rating import QUANTITY_UNITS
from rateline_usage.events import allowance_threshold_event, records_rated_events, spend_threshold_event
from rateline_usage.ids import new_ids
from rateline_usage.tariffs import tariff_in_force

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
    bytes_up: int | None = None
    bytes_down: int | None = None
    quantity: int | None = None  # data: bytes in total
    raw: str | None = None  # the file row (imports)
    import_id: str | None = None

    @property
    def measured(self) -> int:
        return quantity_of(
            self.service, self.duration_seconds, self.count, self.bytes_up, self.bytes_down, self.quantity
        )


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
        "plan_version": outcome.plan_version,
        "billed_quantity": charge.billed_quantity if charge else None,
        "amount": charge.amount if charge else None,
        "currency": outcome.currency if charge else None,
        "rated_at": now if outcome.status == STATUS_RATED else None,
        "pricing": charge.pricing if charge else None,
        "chargeable_quantity": charge.chargeable_quantity if charge else None,
        "allowance_code": charge.allowance_code if charge else None,
        "allowance_used": charge.allowance_used if charge else None,
        "rating_plan": charge.rating_plan if charge else None,
        "tariff_intervals": json.dumps(list(charge.intervals)) if charge and charge.intervals is not None else None,
    }


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def rated_record(
    *, source: str, record_id: str, service: str, started_at: datetime, destination: str | None, outcome: Outcome
) -> dict[str, Any]:
    """The ``usage.records.rated`` entry of a rated record: a ``RatedRecord`` in its JSON form.

    Built as JSON values directly (decimal strings, ISO 8601 times), exactly what
    ``RatedRecord.model_dump(mode="json")`` gives, because building and dumping 10,000 models
    per batch was a tenth of the intake's time; consumers validate it with ``RatedRecord``.
    """
    charge = outcome.charge
    assert charge is not None and outcome.currency is not None
    assert outcome.account_id and outcome.line_id and outcome.subscription_id and outcome.plan_id
    return {
        "record_id": record_id,
        "source": source,
        "account_id": outcome.account_id,
        "line_id": outcome.line_id,
        "subscription_id": outcome.subscription_id,
        "plan_id": outcome.plan_id,
        "service": service,
        "started_at": started_at.isoformat(),
        "quantity": _dec(charge.quantity),
        "billed_quantity": _dec(charge.billed_quantity),
        "unit": charge.unit,
        "amount": _dec(charge.amount),
        "currency": outcome.currency,
        "destination": destination,
        "plan_version": outcome.plan_version,
        "pricing": charge.pricing,
        "chargeable_quantity": _dec(charge.chargeable_quantity),
        "allowance_code": charge.allowance_code,
        "allowance_used": _dec(charge.allowance_used),
        "rating_plan": charge.rating_plan,
    }


def _malformed(message: str) -> Outcome:
    return Outcome(STATUS_REJECTED, MALFORMED, message)


def incomplete_fields(row: Any) -> list[str]:
    """The fields a stored record still lacks before it can be guided (a malformed row)."""
    return [name for name in ("service", "msisdn", "started_at", "quantity") if row[name] is None]


# --- rating a batch -------------------------------------------------------------------------
@dataclass
class RatedBatch:
    """Outcomes of a batch and the balances it locked (with their values at lock time)."""

    outcomes: dict[int, Outcome]
    dropped: set[int]  # records found stored meanwhile (duplicates after all)
    balances: dict[BalanceKey, tuple[AllowanceView, Any]] = field(default_factory=dict)


async def _lock_ledger(
    session: AsyncSession, tenant: str, guided: Sequence[Guided], now: datetime
) -> tuple[Ledger, dict[BalanceKey, tuple[AllowanceView, Any]]]:
    """Create the cycle balances the batch may consume (granted with rollover), lock them all."""
    specs: dict[BalanceKey, tuple[AllowanceView, Guided]] = {}
    for g in guided:
        for allowance, key in g.candidates:
            specs.setdefault(key, (allowance, g))
    previous: dict[BalanceKey, BalanceKey] = {}
    for key, (_, g) in specs.items():
        assert g.cycle is not None and g.account is not None
        previous[key] = key._replace(period_start=previous_cycle_of(g.account, g.cycle).start)
    known = await repo.select_balances(session, tenant, [*specs, *previous.values()])
    new_rows = []
    for key, (allowance, g) in specs.items():
        if key in known:
            continue
        assert g.cycle is not None
        before = known.get(previous[key])
        granted, rollover = granted_for(
            allowance.quantity, allowance.rollover_cap, (before["granted"], before["used"]) if before else None
        )
        new_rows.append(
            {
                "owner_kind": key.owner_kind, "owner_id": key.owner_id, "plan_id": key.plan_id,
                "allowance_code": key.code, "period_start": key.period_start, "period_end": g.cycle.end,
                "account_id": g.subscription.account_id,
                "subscription_id": None if key.owner_kind == OWNER_ACCOUNT else g.subscription.subscription_id,
                "service": allowance.service, "unit": QUANTITY_UNITS[allowance.service],
                "granted": granted, "rollover": rollover,
            }
        )
    rows = await repo.lock_balances(session, tenant, new_rows, list(specs), now)
    ledger = Ledger(Balance(key, row["granted"], row["used"]) for key, row in rows.items())
    return ledger, {key: (specs[key][0], row) for key, row in rows.items()}


Recheck = Callable[[set[int]], Awaitable[set[int]]]


async def rate_batch(
    session: AsyncSession,
    tenant: str,
    usages: Mapping[int, Usage],
    now: datetime,
    recheck: Recheck | None = None,
) -> RatedBatch:
    """Guide and rate ``usages`` (by position) from the projections, consuming allowances.

    Records are priced in the order they started (earlier usage consumes an allowance first).
    ``recheck`` is called, once the balances are locked, with the positions that may consume
    one; it returns those stored meanwhile by a concurrent batch (dropped as duplicates).
    """
    directory: Directory = await repo.load_directory(
        session, tenant, (u.msisdn for u in usages.values() if u.msisdn is not None), tariff_in_force
    )
    outcomes: dict[int, Outcome] = {}
    guided: dict[int, Guided] = {}
    for i, usage in usages.items():
        g = guide(usage, directory)
        if isinstance(g, Outcome):
            outcomes[i] = g
        else:
            guided[i] = g
    ledger = None
    balances: dict[BalanceKey, tuple[AllowanceView, Any]] = {}
    dropped: set[int] = set()
    consuming = {i for i, g in guided.items() if g.candidates}
    if consuming:
        ledger, balances = await _lock_ledger(session, tenant, [guided[i] for i in consuming], now)
        if recheck is not None:
            dropped = await recheck(consuming)
            for i in dropped:
                del guided[i]
    if ledger is None:  # nothing to consume: the order does not matter
        for i, g in guided.items():
            outcomes[i] = price(g, directory, None)
    else:
        starts = {i: g.usage.started_at.timestamp() for i, g in guided.items()}
        for i in sorted(guided, key=lambda i: (starts[i], i)):
            outcomes[i] = price(guided[i], directory, ledger)
    return RatedBatch(outcomes, dropped, balances)


async def settle(session: AsyncSession, tenant: str, batch: RatedBatch, written: set[int], now: datetime) -> None:
    """Move the balances and spend totals by the records actually written; emit thresholds.

    Threshold marks are inserted with ``ON CONFLICT DO NOTHING``: only a mark this transaction
    inserts emits its event, so each (owner, cycle, threshold) is announced once, ever.
    """
    rated = [batch.outcomes[i] for i in sorted(written) if batch.outcomes[i].status == STATUS_RATED]
    events = []
    marks: list[tuple[Any, ...]] = []
    pending: dict[tuple[Any, ...], Any] = {}
    # allowances
    deltas: dict[BalanceKey, Decimal] = defaultdict(Decimal)
    for outcome in rated:
        if outcome.balance_key is not None and outcome.charge is not None:
            deltas[outcome.balance_key] += outcome.charge.allowance_used
    await repo.add_balance_use(session, tenant, deltas, now)
    for key, delta in sorted(deltas.items()):
        allowance, row = batch.balances[key]
        before = row["used"]
        after = before + delta
        for t in thresholds_crossed(row["granted"], before, after, allowance.thresholds):
            mark = ("allowance", key.owner_kind, key.owner_id, key.plan_id, key.code, key.period_start, t)
            marks.append(mark)
            pending[mark] = AllowanceThresholdReached(
                account_id=row["account_id"], subscription_id=row["subscription_id"], allowance_code=key.code,
                service=row["service"], plan_id=key.plan_id, period_start=key.period_start,
                period_end=row["period_end"], threshold=t, granted=row["granted"], used=after, unit=row["unit"],
                reached_at=now,
            )
    # spend caps
    spend: dict[tuple[str, date], dict[str, Any]] = {}
    caps: dict[tuple[str, date], Outcome] = {}
    for outcome in rated:
        if outcome.spend_cap is None or outcome.cycle is None or outcome.charge is None:
            continue
        assert outcome.subscription_id is not None
        key2 = (outcome.subscription_id, outcome.cycle.start)
        entry = spend.setdefault(
            key2,
            {
                "subscription_id": outcome.subscription_id, "period_start": outcome.cycle.start,
                "period_end": outcome.cycle.end, "account_id": outcome.account_id, "plan_id": outcome.plan_id,
                "currency": outcome.currency, "amount": Decimal(0),
            },
        )
        entry["amount"] += outcome.charge.amount
        caps[key2] = outcome  # the version of the last such record of the batch decides the cap
    totals = await repo.add_spend(session, tenant, [spend[k] for k in sorted(spend)], now)
    for key2, after in sorted(totals.items()):
        entry, outcome = spend[key2], caps[key2]
        cap = outcome.spend_cap
        assert cap is not None
        for t in thresholds_crossed(cap.amount, after - entry["amount"], after, cap.thresholds):
            mark = ("spend", "subscription", key2[0], entry["plan_id"], "", key2[1], t)
            marks.append(mark)
            pending[mark] = SpendThresholdReached(
                account_id=entry["account_id"], subscription_id=key2[0], plan_id=entry["plan_id"],
                period_start=key2[1], period_end=entry["period_end"], threshold=t, cap=cap.amount, spent=after,
                currency=entry["currency"], reached_at=now,
            )
    for mark in sorted(await repo.insert_threshold_marks(session, tenant, marks, now), key=marks.index):
        payload = pending[mark]
        if isinstance(payload, AllowanceThresholdReached):
            events.append(allowance_threshold_event(tenant, payload))
        else:
            events.append(spend_threshold_event(tenant, payload))
    await publish_in_transaction(session, *events)


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
                started_at=rec.started_at.astimezone(UTC),  # one tzinfo: fast comparisons
                quantity=rec.measured,
                raw_msisdn=rec.msisdn,
                destination=rec.destination,
            )

    async def recheck(positions: set[int]) -> set[int]:
        found = await repo.existing_ids(session, tenant, [keys[i] for i in sorted(positions)])
        stored.update(found)
        return {i for i in positions if keys[i] in found}

    batch = await rate_batch(session, tenant, usages, now, recheck)
    outcomes = batch.outcomes
    fresh = [i for i in fresh if i not in batch.dropped]
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
                    "unit": QUANTITY_UNITS.get(rec.service) if rec.service else None,
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
    await settle(session, tenant, batch, {i for i in fresh if ids[i] in inserted}, now)

    summary = IngestSummary(received=len(records))
    rated: list[dict[str, Any]] = []
    for index, rec in enumerate(records):
        first = earlier[index]
        if first is None and keys[index] not in stored and ids.get(index) in inserted:
            outcome = outcomes[index]
            summary.results.append(
                ItemResult(index, rec.record_id, outcome.status, ids[index], outcome.reason, outcome.message)
            )
            if outcome.status == STATUS_RATED:
                assert isinstance(rec, RecordIn)
                summary.rated += 1
                rated.append(
                    rated_record(
                        source=rec.source, record_id=rec.record_id, service=rec.service,
                        started_at=rec.started_at, destination=rec.destination, outcome=outcome,
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
        usages = {
            position: Usage(
                service=r["service"],
                msisdn=normalise(r["msisdn"]),
                started_at=r["started_at"],
                quantity=int(r["quantity"]),
                raw_msisdn=r["msisdn"],
                destination=r["destination"],
            )
            for position, r in enumerate(rows)
            if not incomplete_fields(r)
        }
        batch = await rate_batch(session, tenant, usages, now)
        updates, rated = [], []
        for position, row in enumerate(rows):
            if position not in usages:
                missing = ", ".join(incomplete_fields(row))
                outcome = _malformed(f"still malformed: {missing} missing; correct the record first")
                batch.outcomes[position] = outcome
            else:
                outcome = batch.outcomes[position]
            updates.append({"id": row["id"], **_outcome_columns(outcome, now)})
            if outcome.status == STATUS_RATED:
                summary.rated += 1
                rated.append(
                    rated_record(
                        source=row["source"], record_id=row["record_id"], service=row["service"],
                        started_at=row["started_at"], destination=row["destination"], outcome=outcome,
                    )
                )
            else:
                assert outcome.status == STATUS_REJECTED
                summary.rejected += 1
        await repo.update_outcomes(session, tenant, updates, now)
        await settle(session, tenant, batch, set(range(len(rows))), now)
        await publish_in_transaction(session, *records_rated_events(tenant, rated))
        summary.considered += len(rows)
        if wanted is not None or len(rows) < REPROCESS_CHUNK:
            break
        after = (rows[-1]["created_at"], rows[-1]["id"])
    if wanted is not None:
        summary.skipped = len(wanted) - summary.considered
    return summary
