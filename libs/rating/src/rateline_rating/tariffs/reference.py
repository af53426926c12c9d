"""The straightforward tariff engine, kept ONLY as the oracle for tests.

This is the original, unoptimised implementation of :func:`engine.get_cost` (scan the bindings
for every prefix, evaluate every timing at every step with ``datetime`` arithmetic). The
production code path is :func:`rateline_rating.tariffs.engine.get_cost`; the tests
compare the two on random calls. Do not use this module outside tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from zoneinfo import ZoneInfo

from rateline_rating.tariffs.engine import (
    CostResult,
    Interval,
    NoRateInForce,
    RatingProfileNotFound,
    UnauthorizedDestination,
    round_total,
    to_units,
)
from rateline_rating.tariffs.localtime import next_change, zone_of
from rateline_rating.tariffs.model import (
    ANY,
    MAX_COST_DISCONNECT,
    MAX_COST_FREE,
    Activation,
    Binding,
    DestinationRate,
    RateStep,
    RatingProfile,
)


def _units_between(a: dt.datetime, b: dt.datetime) -> int:
    return to_units(b - a)


def _at(start: dt.datetime, units: int) -> dt.datetime:
    return start + dt.timedelta(microseconds=units // 1000)


def _activation(profile: RatingProfile, start: dt.datetime) -> Activation | None:
    active = [a for a in profile.activations if a.activation_time <= start]
    return max(active, key=lambda a: a.activation_time) if active else None


def match_destination(bindings: Iterable[Binding], destination: str) -> list[Binding]:
    """Bindings of the longest matching prefix, else those on ``*any``, else none."""
    bindings = list(bindings)
    for length in range(len(destination), 0, -1):
        prefix = destination[:length]
        found = [b for b in bindings if prefix in b.destination_rate.prefixes]
        if found:
            return found
    return [b for b in bindings if b.destination_rate.destination_id == ANY]


def winner(bindings: Sequence[Binding], at: dt.datetime) -> Binding | None:
    """The binding in force at ``at`` (rule 3 of the module docstring)."""
    in_force = [b for b in bindings if b.timing.in_force(at)]
    if not in_force:
        return None
    return max(in_force, key=lambda b: (b.weight, b.timing.start, b.timing.specificity))


def next_boundary(bindings: Sequence[Binding], at: dt.datetime) -> dt.datetime:
    """The first instant after ``at`` where the binding in force may change."""
    day = at.date()
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=at.tzinfo)
    candidates = [midnight]
    for b in bindings:
        t = dt.datetime.combine(day, b.timing.start, tzinfo=at.tzinfo)
        if t > at:
            candidates.append(t)
    return min(candidates)


def _select(
    profiles: Sequence[RatingProfile],
    category: str,
    subject: str,
    destination: str,
    start: dt.datetime,
    tenant: str | None,
) -> tuple[Activation, str, list[Binding]]:
    by_subject = {
        p.subject: p
        for p in profiles
        if p.category == category and (tenant is None or p.tenant == tenant)
    }
    queue = [subject]
    seen: set[str] = set()
    found_profile = False
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        profile = by_subject.get(current)
        activation = _activation(profile, start) if profile else None
        if activation is not None:
            found_profile = True
            bindings = match_destination(activation.rating_plan.bindings, destination)
            if bindings:
                return activation, current, bindings
            queue.extend(activation.fallback_subjects)
        if not queue and ANY not in seen:
            queue.append(ANY)
    if not found_profile:
        raise RatingProfileNotFound(
            f"no rating profile for category {category!r}, subject {subject!r} at {start.isoformat()}"
        )
    raise UnauthorizedDestination(f"no rate for destination {destination!r}")


def reference_get_cost(
    profiles: Sequence[RatingProfile],
    category: str,
    subject: str,
    destination: str,
    start: dt.datetime,
    usage: dt.timedelta | int,
    *,
    tenant: str | None = None,
    timezone: str | ZoneInfo | None = None,
) -> CostResult:
    """Rate one call. ``start`` must be timezone-aware; timings are read on the wall clock of
    ``timezone`` (UTC when ``None``; see :mod:`.localtime` for DST days)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    start = start.astimezone(dt.UTC)
    zone = zone_of(timezone) or ZoneInfo("UTC")
    units = to_units(usage)
    if units < 0:
        raise ValueError("usage must be >= 0")
    activation, used_subject, bindings = _select(
        profiles, category, subject, destination, start, tenant
    )
    first = winner(bindings, start.astimezone(zone))
    if first is None:
        raise NoRateInForce(f"no rate for destination {destination!r} at {start.isoformat()}")
    connect_fee = first.destination_rate.rate.connect_fee
    running = connect_fee
    intervals: list[Interval] = []
    elapsed = 0
    capped = disconnected = False
    while elapsed < units and not disconnected:
        now = _at(start, elapsed)
        local = now.astimezone(zone)
        binding = winner(bindings, local)
        if binding is None:
            raise NoRateInForce(f"no rate for destination {destination!r} at {now.isoformat()}")
        dr = binding.destination_rate
        step, next_step = dr.rate.step_at(elapsed)
        wall_end = next_boundary(bindings, local).replace(tzinfo=None)
        segment = min(units - elapsed, max(1, _units_between(now, next_change(now, wall_end, zone))))
        if next_step is not None:
            segment = min(segment, next_step - elapsed)
        increment = step.rate_increment
        count = -(-segment // increment)
        unit_cost = step.increment_cost()
        cost = unit_cost * count
        if dr.max_cost > 0 and running + cost > dr.max_cost:
            capped = True
            if dr.max_cost_strategy == MAX_COST_DISCONNECT:
                room = dr.max_cost - running
                if room < 0:
                    fits = 0
                else:
                    fits = int(room // unit_cost) if unit_cost else count
                count, cost, disconnected = fits, unit_cost * fits, True
            elif dr.max_cost_strategy == MAX_COST_FREE:
                cost = max(Decimal(0), dr.max_cost - running)
        running += cost
        _append(intervals, now, dr, binding, step, count, unit_cost, cost)
        elapsed += count * increment
    total = round_total(
        running, first.destination_rate.rounding_method, first.destination_rate.rounding_decimals
    )
    return CostResult(
        cost=total,
        connect_fee=connect_fee,
        rating_plan_id=activation.rating_plan.id,
        subject=used_subject,
        usage=elapsed,
        intervals=tuple(intervals),
        max_cost_reached=capped,
        disconnected=disconnected,
    )


def _append(
    intervals: list[Interval],
    now: dt.datetime,
    dr: DestinationRate,
    binding: Binding,
    step: RateStep,
    count: int,
    unit_cost: Decimal,
    cost: Decimal,
) -> None:
    """Add an interval, merging it into the previous one when nothing but time changed."""
    if count == 0:
        return
    prev = intervals[-1] if intervals else None
    if (
        prev is not None
        and prev.destination_rate_id == dr.id
        and prev.timing_id == binding.timing.id
        and prev.rate == step.rate
        and prev.rate_unit == step.rate_unit
        and prev.rate_increment == step.rate_increment
        and prev.increment_cost == unit_cost
        and prev.cost == prev.increment_cost * prev.increments
        and cost == unit_cost * count
    ):
        intervals[-1] = Interval(
            start=prev.start,
            duration=prev.duration + count * step.rate_increment,
            destination_rate_id=dr.id,
            timing_id=binding.timing.id,
            rate=step.rate,
            rate_unit=step.rate_unit,
            rate_increment=step.rate_increment,
            increments=prev.increments + count,
            increment_cost=unit_cost,
            cost=prev.cost + cost,
        )
        return
    intervals.append(
        Interval(
            start=now,
            duration=count * step.rate_increment,
            destination_rate_id=dr.id,
            timing_id=binding.timing.id,
            rate=step.rate,
            rate_unit=step.rate_unit,
            rate_increment=step.rate_increment,
            increments=count,
            increment_cost=unit_cost,
            cost=cost,
        )
    )
