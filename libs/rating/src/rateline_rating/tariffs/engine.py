"""CGRateS-compatible rating: the cost of one call (or SMS/data/generic event).

Rules, in the order they are applied (see cgrates.readthedocs.io, "Rating logic" and
"Tariff plans"):

1. **Profile**: the rating profile ``(category, subject)`` whose latest activation time is
   ``<= start``. If that subject has no rate for the destination, its fallback subjects are
   tried in order, then the ``*any`` subject.
2. **Destination**: the longest prefix of the destination that one of the plan's destinations
   holds; all bindings of destinations holding that prefix compete (weights decide). Only if
   no prefix matches, bindings on the ``*any`` destination apply.
3. **Timing** at an instant: among the competing bindings whose timing is in force, the one
   with the highest weight, then the latest start time of day (the closest band), then the
   most specific timing (more restricted calendar fields) wins.
4. **Intervals**: the call is split at time-band boundaries (midnight and each timing's start
   time) and at rate steps (``GroupIntervalStart``, measured from the call start). Each
   interval is billed in whole increments; an increment started in one band is billed whole at
   that band's price and the next interval starts where it ends.
5. **Cost**: each increment costs ``rate * increment / unit`` rounded half up to 5 decimals; the
   connect fee (of the first rate step of the first interval) is charged once; the total is
   rounded with the first interval's destination rate method (``*up`` ceiling, ``*down``
   floor, ``*middle`` half up) and decimals.
6. **MaxCost** (when > 0) caps the running cost (connect fee included): ``*free`` charges
   nothing beyond the cap; ``*disconnect`` ends the call after the last increment that fits.

Implementation (speed, same results as the straightforward ``reference.reference_get_cost``
that the tests compare against): per profiles sequence an index is built once and cached
(profiles and everything they hold are frozen): per rating plan a dict prefix -> competing
bindings; a memo of the profile/fallback/destination selection keyed by ``(tenant, category,
subject, destination, activation epoch)``; per group of competing bindings a memo, per UTC day,
of the winning binding in each time band. The hot loop works in integers (microseconds since
the epoch for instants, units for durations) and builds ``datetime`` objects only for the
intervals it returns. Increment costs and rounding quanta are computed once per rate step and
destination rate (under the decimal context in force then: the default one); the per-interval
Decimal arithmetic (``increment_cost * count``, running sums, MaxCost) is the reference's.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from rateline_rating.tariffs.localtime import next_change, zone_of
from rateline_rating.tariffs.model import (
    ANY,
    MAX_COST_DISCONNECT,
    MAX_COST_FREE,
    NANOS_PER_SECOND,
    ROUND_DOWN,
    ROUND_MIDDLE,
    Activation,
    Binding,
    DestinationRate,
    RatingPlan,
    RatingProfile,
)

_ROUNDING = {ROUND_MIDDLE: ROUND_HALF_UP, ROUND_DOWN: ROUND_FLOOR}


class TariffError(ValueError):
    """A cost cannot be computed; ``slug`` names the problem type."""

    slug = "tariff-error"


class UnauthorizedDestination(TariffError):
    slug = "unauthorized-destination"


class RatingProfileNotFound(TariffError):
    slug = "rating-profile-not-found"


class NoRateInForce(TariffError):
    slug = "no-rate-in-force"


@dataclass(frozen=True, slots=True)
class Interval:
    start: dt.datetime
    duration: int  # units (ns for durations) actually billed: increments * rate_increment
    destination_rate_id: str
    timing_id: str
    rate: Decimal
    rate_unit: int
    rate_increment: int
    increments: int
    increment_cost: Decimal
    cost: Decimal  # increments * increment_cost, after any MaxCost cap


@dataclass(frozen=True, slots=True)
class CostResult:
    cost: Decimal
    connect_fee: Decimal
    rating_plan_id: str
    subject: str  # the subject whose profile rated the call (after fallbacks)
    usage: int  # units billed (>= the usage asked for, unless disconnected)
    intervals: tuple[Interval, ...]
    max_cost_reached: bool = False
    disconnected: bool = False


# Frozen slotted dataclasses built by setting their slots directly: the same objects as
# ``Interval(...)`` / ``CostResult(...)`` (no __post_init__, no defaults involved), twice as fast.
# A field added to either class must be set here too (the equivalence tests would fail).
_new = object.__new__
_set = {name: Interval.__dict__[name].__set__ for name in Interval.__slots__}
_SI_START, _SI_DURATION = _set["start"], _set["duration"]
_SI_DR, _SI_TIMING = _set["destination_rate_id"], _set["timing_id"]
_SI_RATE, _SI_UNIT, _SI_INCREMENT = _set["rate"], _set["rate_unit"], _set["rate_increment"]
_SI_INCREMENTS, _SI_INCREMENT_COST, _SI_COST = _set["increments"], _set["increment_cost"], _set["cost"]
_set = {name: CostResult.__dict__[name].__set__ for name in CostResult.__slots__}
_SR_COST, _SR_FEE, _SR_PLAN, _SR_SUBJECT = _set["cost"], _set["connect_fee"], _set["rating_plan_id"], _set["subject"]
_SR_USAGE, _SR_INTERVALS, _SR_MAX, _SR_DISCONNECTED = (
    _set["usage"], _set["intervals"], _set["max_cost_reached"], _set["disconnected"]
)
del _set


def _interval(
    start: dt.datetime, duration: int, dr_id: str, timing_id: str, rate: Decimal, rate_unit: int,
    rate_increment: int, increments: int, increment_cost: Decimal, cost: Decimal,
) -> Interval:
    obj: Interval = _new(Interval)
    _SI_START(obj, start)
    _SI_DURATION(obj, duration)
    _SI_DR(obj, dr_id)
    _SI_TIMING(obj, timing_id)
    _SI_RATE(obj, rate)
    _SI_UNIT(obj, rate_unit)
    _SI_INCREMENT(obj, rate_increment)
    _SI_INCREMENTS(obj, increments)
    _SI_INCREMENT_COST(obj, increment_cost)
    _SI_COST(obj, cost)
    return obj


def _result(
    cost: Decimal, connect_fee: Decimal, rating_plan_id: str, subject: str, usage: int,
    intervals: tuple[Interval, ...], max_cost_reached: bool, disconnected: bool,
) -> CostResult:
    obj: CostResult = _new(CostResult)
    _SR_COST(obj, cost)
    _SR_FEE(obj, connect_fee)
    _SR_PLAN(obj, rating_plan_id)
    _SR_SUBJECT(obj, subject)
    _SR_USAGE(obj, usage)
    _SR_INTERVALS(obj, intervals)
    _SR_MAX(obj, max_cost_reached)
    _SR_DISCONNECTED(obj, disconnected)
    return obj


def to_units(usage: dt.timedelta | int) -> int:
    """A timedelta in nanoseconds; an int is already a unit count."""
    if isinstance(usage, dt.timedelta):
        return (usage.days * 86_400 + usage.seconds) * NANOS_PER_SECOND + usage.microseconds * 1000
    return usage


def round_total(value: Decimal, method: str, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=_ROUNDING.get(method, ROUND_CEILING))


# --- precomputed indexes -------------------------------------------------------------------

_DAY_US = 86_400_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = _EPOCH.date().toordinal()
_US = dt.timedelta(microseconds=1)
_MAX_INDEXES = 64  # profile sequences kept indexed
_MAX_MEMO = 1 << 16  # selections memoised per profiles sequence
_MAX_DAYS = 4096  # days memoised per group of competing bindings


def _tod_us(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


class _Rated:
    """A destination rate prepared for the hot loop."""

    __slots__ = ("cap", "connect_fee", "dr", "id", "max_cost", "quantum", "rounding", "single", "steps", "strategy")

    def __init__(self, dr: DestinationRate) -> None:
        self.dr = dr
        self.id = dr.id
        steps = []
        for step in dr.rate.steps:
            try:
                unit_cost: Decimal | None = step.increment_cost()
            except ArithmeticError:  # raised again (the same way) when the step is used
                unit_cost = None
            steps.append((step.group_interval_start, step, unit_cost))
        self.steps = tuple(steps)
        self.single = len(self.steps) == 1
        self.connect_fee = dr.rate.steps[0].connect_fee if dr.rate.steps else None
        self.max_cost = dr.max_cost
        self.cap = dr.max_cost > 0
        self.strategy = dr.max_cost_strategy
        # round_total(value, dr.rounding_method, dr.rounding_decimals) is value.quantize(these)
        self.quantum = Decimal(1).scaleb(-dr.rounding_decimals)
        self.rounding = _ROUNDING.get(dr.rounding_method, ROUND_CEILING)


# One time band's winner: (binding, its timing id, its prepared rate), or None.
_Winner = tuple[Binding, str, _Rated] | None


class _Group:
    """Bindings competing for one destination (in plan order) and their daily time bands.

    ``points`` are the band starts of a day in microseconds (0 and every competing timing's
    start time, whether or not that timing applies on the day: those are the boundaries the
    call is split at); ``ends[i]`` is where band ``i`` ends (the next start, or midnight).
    """

    __slots__ = ("bindings", "days", "ends", "keys", "points", "rated", "starts")

    def __init__(self, bindings: tuple[Binding, ...], rated: dict[int, _Rated]) -> None:
        self.bindings = bindings
        self.starts = [_tod_us(b.timing.start) for b in bindings]
        self.keys = [(b.weight, b.timing.start, b.timing.specificity) for b in bindings]
        self.points = [0, *sorted({s for s in self.starts if s > 0})]
        self.ends = [*self.points[1:], _DAY_US]
        self.rated = [rated.get(id(b.destination_rate)) or _rated(rated, b.destination_rate) for b in bindings]
        self.days: dict[int, tuple[_Winner, ...]] = {}

    def day(self, day: int) -> tuple[_Winner, ...]:
        """The winner of each band on ``day`` (days since 1970-01-01, UTC)."""
        row = self.days.get(day)
        if row is not None:
            return row
        date = dt.date.fromordinal(_EPOCH_ORDINAL + day)
        matching = [i for i, b in enumerate(self.bindings) if b.timing.matches_day(date)]
        for i in matching:
            if self.bindings[i].timing.start.tzinfo is not None:
                raise TypeError("can't compare offset-naive and offset-aware times")
        winners: list[_Winner] = []
        for point in self.points:
            best = -1
            for i in matching:  # max() semantics: the first of equal keys wins
                if self.starts[i] <= point and (best < 0 or self.keys[i] > self.keys[best]):
                    best = i
            if best < 0:
                winners.append(None)
            else:
                b = self.bindings[best]
                winners.append((b, b.timing.id, self.rated[best]))
        row = tuple(winners)
        if len(self.days) >= _MAX_DAYS:
            self.days.clear()
        self.days[day] = row
        return row


def _rated(cache: dict[int, _Rated], dr: DestinationRate) -> _Rated:
    prepared = cache[id(dr)] = _Rated(dr)
    return prepared


class _PlanIndex:
    """A rating plan's bindings by destination prefix (plan order kept within a prefix)."""

    __slots__ = ("any", "groups", "max_length", "plan", "prefixes", "rated")

    def __init__(self, plan: RatingPlan) -> None:
        self.plan = plan
        by_prefix: dict[str, list[int]] = {}
        for i, b in enumerate(plan.bindings):
            for prefix in b.destination_rate.prefixes:
                by_prefix.setdefault(prefix, []).append(i)
        self.prefixes = {p: tuple(ids) for p, ids in by_prefix.items()}
        self.max_length = max((len(p) for p in self.prefixes), default=0)
        self.any = tuple(i for i, b in enumerate(plan.bindings) if b.destination_rate.destination_id == ANY)
        self.groups: dict[tuple[int, ...], _Group] = {}
        self.rated: dict[int, _Rated] = {}

    def match(self, destination: str) -> _Group | None:
        """The bindings of the longest matching prefix, else those on ``*any``, else None."""
        prefixes = self.prefixes
        found: tuple[int, ...] | None = None
        for length in range(min(len(destination), self.max_length), 0, -1):
            found = prefixes.get(destination[:length])
            if found is not None:
                break
        if found is None:
            found = self.any
        if not found:
            return None
        group = self.groups.get(found)
        if group is None:
            bindings = self.plan.bindings
            group = self.groups[found] = _Group(tuple(bindings[i] for i in found), self.rated)
        return group


_NOT_FOUND = 0
_UNAUTHORIZED = 1
_Selection = tuple[Activation, str, _Group] | int


class _CategoryIndex:
    """Rating profiles of one (tenant, category)."""

    __slots__ = ("by_subject", "owner")

    def __init__(self, owner: _ProfilesIndex, profiles: Sequence[RatingProfile]) -> None:
        self.owner = owner
        self.by_subject = {p.subject: p for p in profiles}

    def select(self, subject: str, destination: str, start: dt.datetime) -> _Selection:
        """Rules 1 and 2 of the module docstring: the same walk as the reference engine."""
        queue = [subject]
        seen: set[str] = set()
        found_profile = False
        while queue:
            current = queue.pop(0)
            if current in seen:
                continue
            seen.add(current)
            profile = self.by_subject.get(current)
            activation = _activation(profile, start) if profile else None
            if activation is not None:
                found_profile = True
                group = self.owner.plan(activation.rating_plan).match(destination)
                if group is not None:
                    return activation, current, group
                queue.extend(activation.fallback_subjects)
            if not queue and ANY not in seen:
                queue.append(ANY)
        return _UNAUTHORIZED if found_profile else _NOT_FOUND


def _activation(profile: RatingProfile, start: dt.datetime) -> Activation | None:
    active = [a for a in profile.activations if a.activation_time <= start]
    return max(active, key=lambda a: a.activation_time) if active else None


class _ProfilesIndex:
    """Everything precomputed for one sequence of rating profiles.

    ``memo`` maps ``(tenant, category, subject, destination, epoch)`` to a selection, the epoch
    being the number of activation times ``<= start``: between two consecutive activation
    times (of any profile) every profile's activation is the same, hence so is the selection.
    """

    __slots__ = ("categories", "memo", "plans", "profiles", "times")

    def __init__(self, profiles: tuple[RatingProfile, ...]) -> None:
        self.profiles = profiles  # keeps every indexed (frozen) object alive
        self.times = sorted({a.activation_time for p in profiles for a in p.activations})
        self.memo: dict[tuple[str | None, str, str, str, int], _Selection] = {}
        self.categories: dict[tuple[str | None, str], _CategoryIndex] = {}
        self.plans: dict[int, _PlanIndex] = {}

    def select(
        self, tenant: str | None, category: str, subject: str, destination: str, start: dt.datetime, epoch: int
    ) -> _Selection:
        index = self.categories.get((tenant, category))
        if index is None:
            chosen = [p for p in self.profiles if p.category == category and (tenant is None or p.tenant == tenant)]
            index = self.categories[(tenant, category)] = _CategoryIndex(self, chosen)
        found = index.select(subject, destination, start)
        if len(self.memo) >= _MAX_MEMO:
            self.memo.clear()
        self.memo[(tenant, category, subject, destination, epoch)] = found
        return found

    def plan(self, plan: RatingPlan) -> _PlanIndex:
        index = self.plans.get(id(plan))
        if index is None:
            index = self.plans[id(plan)] = _PlanIndex(plan)
        return index


_INDEXES: dict[object, _ProfilesIndex] = {}


def _index_of(profiles: Sequence[RatingProfile]) -> _ProfilesIndex:
    """The cached index of ``profiles``: by identity of the tuple, or of its items otherwise.

    The index holds the profiles, so the identities stay valid while it is cached; the profiles
    are frozen, so the same identities mean the same content.
    """
    key: object = id(profiles) if type(profiles) is tuple else tuple(map(id, profiles))
    index = _INDEXES.get(key)
    if index is not None:
        return index
    index = _ProfilesIndex(profiles if type(profiles) is tuple else tuple(profiles))
    if len(_INDEXES) >= _MAX_INDEXES:
        del _INDEXES[next(iter(_INDEXES))]
    _INDEXES[key] = index
    return index


# --- rating ----------------------------------------------------------------------------------


def get_cost(
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
    zone = zone_of(timezone)
    if type(usage) is dt.timedelta:
        units = (usage.days * 86_400 + usage.seconds) * NANOS_PER_SECOND + usage.microseconds * 1000
    else:
        units = to_units(usage)
    if units < 0:
        raise ValueError("usage must be >= 0")
    index = _INDEXES.get(id(profiles)) if type(profiles) is tuple else None
    if index is None:
        index = _index_of(profiles)
    epoch = bisect_right(index.times, start)
    selection = index.memo.get((tenant, category, subject, destination, epoch))
    if selection is None:
        selection = index.select(tenant, category, subject, destination, start, epoch)
    if isinstance(selection, int):
        if selection == _NOT_FOUND:
            raise RatingProfileNotFound(
                f"no rating profile for category {category!r}, subject {subject!r} at {start.isoformat()}"
            )
        raise UnauthorizedDestination(f"no rate for destination {destination!r}")
    activation, used_subject, group = selection
    start_us = (start - _EPOCH) // _US
    points = group.points
    ends = group.ends
    if zone is None:
        day, tod = divmod(start_us, _DAY_US)
    else:
        day, tod = _wall_us(start_us, zone)
    row = group.days.get(day) or group.day(day)
    band = bisect_right(points, tod) - 1
    first = row[band]
    if first is None:
        raise NoRateInForce(f"no rate for destination {destination!r} at {start.isoformat()}")
    first_rated = first[2]
    connect_fee = first_rated.connect_fee
    if connect_fee is None:  # a rate without steps: fails as the reference does
        connect_fee = first_rated.dr.rate.connect_fee
    running = connect_fee
    intervals: list[Interval] = []
    elapsed = 0
    capped = disconnected = False
    # the interval being built (merged while nothing but time changes)
    open_ = False
    p_elapsed = p_count = p_unit = p_inc = 0
    p_dr = p_timing = ""
    p_rate = p_unit_cost = p_cost = connect_fee
    while elapsed < units and not disconnected:
        if elapsed:
            if zone is None:
                now_day, tod = divmod(start_us + elapsed // 1000, _DAY_US)
            else:
                now_day, tod = _wall_us(start_us + elapsed // 1000, zone)
            if now_day != day:
                day = now_day
                row = group.days.get(day) or group.day(day)
            band = bisect_right(points, tod) - 1
            won = row[band]
            if won is None:
                raise NoRateInForce(
                    f"no rate for destination {destination!r} at {_at(start, elapsed).isoformat()}"
                )
        else:
            won = first
        _, timing_id, rated = won
        steps = rated.steps
        next_step: int | None = None
        if rated.single:
            _, step, unit_cost = steps[0]
        else:
            _, step, unit_cost = steps[0]
            for entry in steps:
                if entry[0] <= elapsed:
                    _, step, unit_cost = entry
                else:
                    next_step = entry[0]
                    break
        segment = units - elapsed
        if zone is None or _steady_day(zone, day):
            to_boundary = (ends[band] - tod) * 1000
        else:
            now = _at(start, elapsed)
            wall_end = dt.datetime.combine(dt.date.fromordinal(_EPOCH_ORDINAL + day), dt.time(0)) + _US * ends[band]
            to_boundary = ((next_change(now, wall_end, zone) - now) // _US) * 1000
        if to_boundary < segment:
            segment = to_boundary
        if next_step is not None and next_step - elapsed < segment:
            segment = next_step - elapsed
        increment = step.rate_increment
        count = -(-segment // increment)
        if unit_cost is None:
            unit_cost = step.increment_cost()
        cost = unit_cost * count
        if rated.cap and running + cost > rated.max_cost:
            capped = True
            if rated.strategy == MAX_COST_DISCONNECT:
                room = rated.max_cost - running
                if room < 0:
                    fits = 0
                else:
                    fits = int(room // unit_cost) if unit_cost else count
                count, cost, disconnected = fits, unit_cost * fits, True
            elif rated.strategy == MAX_COST_FREE:
                cost = max(Decimal(0), rated.max_cost - running)
        running += cost
        if count:
            if (
                open_
                and p_dr == rated.id
                and p_timing == timing_id
                and p_rate == step.rate
                and p_unit == step.rate_unit
                and p_inc == increment
                and p_unit_cost == unit_cost
                and p_cost == p_unit_cost * p_count
                and cost == unit_cost * count
            ):
                p_count += count
                p_cost = p_cost + cost
            else:
                if open_:
                    intervals.append(
                        _interval(
                            start + _US * (p_elapsed // 1000), p_count * p_inc, p_dr, p_timing, p_rate, p_unit,
                            p_inc, p_count, p_unit_cost, p_cost,
                        )
                    )
                open_ = True
                p_elapsed = elapsed
                p_count = count
                p_cost = cost
            p_dr = rated.id
            p_timing = timing_id
            p_rate = step.rate
            p_unit = step.rate_unit
            p_inc = increment
            p_unit_cost = unit_cost
        elapsed += count * increment
    if open_:
        intervals.append(
            _interval(
                start + _US * (p_elapsed // 1000), p_count * p_inc, p_dr, p_timing, p_rate, p_unit, p_inc,
                p_count, p_unit_cost, p_cost,
            )
        )
    return _result(
        running.quantize(first_rated.quantum, rounding=first_rated.rounding),
        connect_fee,
        activation.rating_plan.id,
        used_subject,
        elapsed,
        tuple(intervals),
        capped,
        disconnected,
    )


# Zone arithmetic memos. A UTC offset changes only at a zone's transitions (at most a few a
# year, always on a whole quarter hour), so the offset of every 15-minute bucket without a
# transition is memoised, and so is whether a local day has one offset from its first instant
# to its last ("steady": wall time and real time advance together, band ends are plain
# subtraction). Only buckets and days with a transition take the exact path (.localtime).
_BUCKET_US = 15 * 60 * 1_000_000
_MAX_ZONE_MEMO = 1 << 16
_BUCKETS: dict[tuple[str, int], int | None] = {}
_STEADY: dict[tuple[str, int], bool] = {}


def _offset_us(zone: ZoneInfo, instant_us: int) -> int:
    offset = (_EPOCH + _US * instant_us).astimezone(zone).utcoffset()
    assert offset is not None
    return offset // _US


def _wall_us(instant_us: int, zone: ZoneInfo) -> tuple[int, int]:
    """(local day since 1970-01-01, local time of day in microseconds) of a UTC instant."""
    key = (zone.key, instant_us // _BUCKET_US)
    if key in _BUCKETS:
        offset = _BUCKETS[key]
    else:
        first = key[1] * _BUCKET_US
        offset = _offset_us(zone, first)
        if _offset_us(zone, first + _BUCKET_US - 1) != offset:
            offset = None
        if len(_BUCKETS) >= _MAX_ZONE_MEMO:
            _BUCKETS.clear()
        _BUCKETS[key] = offset
    if offset is None:  # a transition in this quarter hour: exact
        offset = _offset_us(zone, instant_us)
    return divmod(instant_us + offset, _DAY_US)


def _steady_day(zone: ZoneInfo, day: int) -> bool:
    """Whether local ``day`` has a single UTC offset from its first instant to its last."""
    key = (zone.key, day)
    steady = _STEADY.get(key)
    if steady is None:
        date = dt.date.fromordinal(_EPOCH_ORDINAL + day)
        begin = dt.datetime.combine(date, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
        end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=zone).astimezone(dt.UTC)
        steady = begin.astimezone(zone).utcoffset() == (end - _US).astimezone(zone).utcoffset()
        if len(_STEADY) >= _MAX_ZONE_MEMO:
            _STEADY.clear()
        _STEADY[key] = steady
    return steady


def _at(start: dt.datetime, units: int) -> dt.datetime:
    return start + _US * (units // 1000)
