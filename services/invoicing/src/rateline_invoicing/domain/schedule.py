"""When recurring fees are due: the account's monthly cycles, counted from a subscription's first.

A bill run's period is the account's monthly billing cycle (``rateline_rating.cycles``: from
local midnight of the bill-cycle day to the same day a month later). A subscription's *first
cycle* is the cycle containing its start instant (local midnight of ``start_date`` in the
account's zone) and the cycle of a bill period is the one containing the period's start; the
*index* of a cycle is the number of months between the two.

A fee billed every ``N`` months (monthly 1, quarterly 3, yearly 12) covers *terms* of ``N``
cycles starting at the indices that are multiples of ``N``:

* **advance**: the term starting at index ``k`` is charged on the invoice of cycle ``k``
  (the coming ``N`` months);
* **arrears**: the term ending just before index ``k`` is charged on the invoice of cycle
  ``k`` (the cycle after the last one of the term; none on the first invoice).

Each term is charged with the plan version in force at the term's first instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from rateline_invoicing.domain.errors import UnsupportedBillingPeriod
from rateline_invoicing.domain.periods import zone
from rateline_rating.cycles import Cycle, cycle_containing, cycle_day_in, cycle_of, local_midnight_utc

# Months per term, and the word used in line descriptions and units.
PERIOD_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}
PERIOD_UNITS = {"monthly": "month", "quarterly": "quarter", "yearly": "year"}
TIMINGS = ("advance", "arrears")


def term_months(billing_period: str, plan_label: str) -> int:
    months = PERIOD_MONTHS.get(billing_period)
    if months is None:
        raise UnsupportedBillingPeriod(
            f"plan {plan_label} bills {billing_period!r}; invoicing knows monthly, quarterly and yearly"
        )
    return months


def start_instant(start_date: date, timezone: str) -> datetime:
    """A subscription starts at local midnight of its start date in the account's zone."""
    return local_midnight_utc(start_date, zone(timezone))


def _month_number(day: date) -> int:
    return day.year * 12 + day.month - 1


def cycle_index(first: Cycle, current: Cycle) -> int:
    """How many cycles ``current`` comes after ``first`` (negative if before)."""
    return _month_number(current.start) - _month_number(first.start)


def nth_cycle(first: Cycle, n: int, bill_cycle_day: int, timezone: str) -> Cycle:
    """The cycle ``n`` months after ``first``."""
    number = _month_number(first.start) + n
    start = cycle_day_in(number // 12, number % 12 + 1, bill_cycle_day)
    return cycle_of(start, bill_cycle_day, timezone)


@dataclass(frozen=True, slots=True)
class Term:
    """What one recurring charge covers: ``months`` cycles, ``[start, end)`` local dates."""

    start: date
    end: date
    start_utc: datetime
    end_utc: datetime
    months: int
    first_index: int  # the index of its first cycle since the subscription's first

    def label(self) -> str:
        return f"{self.start.isoformat()} to {(self.end - timedelta(days=1)).isoformat()}"


@dataclass(frozen=True, slots=True)
class CycleClock:
    """The cycles of one subscription on one account."""

    bill_cycle_day: int
    timezone: str
    first: Cycle

    @classmethod
    def of(cls, started: datetime, bill_cycle_day: int, timezone: str) -> CycleClock:
        return cls(bill_cycle_day, timezone, cycle_containing(started, bill_cycle_day, timezone))

    def index_of(self, instant: datetime) -> int:
        """The index of the cycle containing ``instant``."""
        return cycle_index(self.first, cycle_containing(instant, self.bill_cycle_day, self.timezone))

    def term(self, first_index: int, months: int) -> Term:
        begin = nth_cycle(self.first, first_index, self.bill_cycle_day, self.timezone)
        end = nth_cycle(self.first, first_index + months, self.bill_cycle_day, self.timezone)
        return Term(begin.start, end.start, begin.start_utc, end.start_utc, months, first_index)


def advance_term(index: int, months: int) -> int | None:
    """The first index of the advance term charged at cycle ``index``, if one is."""
    return index if index >= 0 and index % months == 0 else None


def arrears_term(index: int, months: int) -> int | None:
    """The first index of the arrears term charged at cycle ``index``, if one is."""
    return index - months if index >= months and index % months == 0 else None
