"""The CGRateS tariff-plan model (immutable, pure data).

Durations are integers in *units* of one nanosecond, as in CGRateS (a Go ``time.Duration``):
``60s`` is 60_000_000_000 and a unit-less ``1`` is one unit. Voice usage is a duration; SMS,
data and generic usage are plain unit counts, rated with the same arithmetic.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

ANY = "*any"
NANOS_PER_SECOND = 1_000_000_000

ROUND_UP = "*up"
ROUND_DOWN = "*down"
ROUND_MIDDLE = "*middle"
ROUNDING_METHODS = frozenset({ROUND_UP, ROUND_DOWN, ROUND_MIDDLE})

MAX_COST_FREE = "*free"
MAX_COST_DISCONNECT = "*disconnect"
MAX_COST_STRATEGIES = frozenset({MAX_COST_FREE, MAX_COST_DISCONNECT})


@dataclass(frozen=True, slots=True)
class Timing:
    """When a binding is in force: empty sets mean ``*any``; weekdays 1 (Mon)..7 (Sun).

    ``start`` is the time of day from which it applies (until the end of the matching day).
    """

    id: str
    years: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    month_days: frozenset[int] = frozenset()
    week_days: frozenset[int] = frozenset()
    start: dt.time = dt.time(0, 0)

    def matches_day(self, day: dt.date) -> bool:
        return (
            (not self.years or day.year in self.years)
            and (not self.months or day.month in self.months)
            and (not self.month_days or day.day in self.month_days)
            and (not self.week_days or day.isoweekday() in self.week_days)
        )

    def in_force(self, at: dt.datetime) -> bool:
        return self.matches_day(at.date()) and at.time() >= self.start

    @property
    def specificity(self) -> int:
        """How many calendar dimensions are restricted (more is more specific)."""
        return sum(1 for s in (self.years, self.months, self.month_days, self.week_days) if s)


ANY_TIMING = Timing(ANY)


@dataclass(frozen=True, slots=True)
class RateStep:
    """One row of a rate: applies from ``group_interval_start`` (units into the call) on."""

    connect_fee: Decimal
    rate: Decimal
    rate_unit: int
    rate_increment: int
    group_interval_start: int

    def increment_cost(self) -> Decimal:
        """Price of one increment, rounded half up to 5 decimals (CGRateS increment costs)."""
        if self.rate == 0:
            return Decimal(0)
        raw = self.rate * Decimal(self.rate_increment) / Decimal(self.rate_unit)
        return raw.quantize(Decimal("0.00001"), rounding="ROUND_HALF_UP")


@dataclass(frozen=True, slots=True)
class Rate:
    """Rate steps sorted by ``group_interval_start`` (the first one starts at 0)."""

    id: str
    steps: tuple[RateStep, ...]

    @property
    def connect_fee(self) -> Decimal:
        return self.steps[0].connect_fee

    def step_at(self, elapsed: int) -> tuple[RateStep, int | None]:
        """The step in force ``elapsed`` units into the call, and where the next one starts."""
        current = self.steps[0]
        nxt: int | None = None
        for step in self.steps:
            if step.group_interval_start <= elapsed:
                current = step
            else:
                nxt = step.group_interval_start
                break
        return current, nxt


@dataclass(frozen=True, slots=True)
class DestinationRate:
    id: str
    destination_id: str  # a destination id or ``*any``
    prefixes: frozenset[str]  # the destination's prefixes (empty for ``*any``)
    rate: Rate
    rounding_method: str = ROUND_UP
    rounding_decimals: int = 4
    max_cost: Decimal = Decimal(0)  # 0: no cap
    max_cost_strategy: str = ""


@dataclass(frozen=True, slots=True)
class Binding:
    """A destination rate bound to a timing, with a weight, inside a rating plan."""

    destination_rate: DestinationRate
    timing: Timing
    weight: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class RatingPlan:
    id: str
    bindings: tuple[Binding, ...]


@dataclass(frozen=True, slots=True)
class Activation:
    activation_time: dt.datetime
    rating_plan: RatingPlan
    fallback_subjects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RatingProfile:
    tenant: str
    category: str
    subject: str
    activations: tuple[Activation, ...]


@dataclass(frozen=True, slots=True)
class TariffPlan:
    """Everything one import holds: destinations (id -> prefixes) and the rating profiles."""

    destinations: dict[str, frozenset[str]]
    timings: dict[str, Timing]
    rates: dict[str, Rate]
    destination_rates: dict[str, DestinationRate]
    rating_plans: dict[str, RatingPlan]
    profiles: tuple[RatingProfile, ...] = field(default_factory=tuple)
