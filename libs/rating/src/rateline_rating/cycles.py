"""Billing cycles: the account's monthly cycle that contains an instant.

A cycle starts at local midnight (the account's time zone) of the bill-cycle day and ends,
exclusively, at local midnight of the same day one month later. A cycle day past the end of a
short month (31 in February) falls on that month's last day. Local midnights are turned into
UTC instants with :mod:`zoneinfo`, so cycles across a DST change are 743 or 745 hours long, and
a zone whose clocks jump over midnight starts the day at the first local time that exists.

Allowances reset and spend caps restart at each cycle (see ``docs/architecture.md``).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def known_zone(name: str | None) -> str:
    """``name`` when it is an IANA zone ``zoneinfo`` knows, else ``"UTC"`` (the zone used for
    an account a projection has not received yet, or whose zone it cannot read)."""
    if name:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return "UTC"
        return name
    return "UTC"


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date in ``tz`` is ``day`` (``fold=0``)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def cycle_day_in(year: int, month: int, bill_cycle_day: int) -> date:
    """The cycle's start date in a month: the cycle day, or the month's last day if shorter."""
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(bill_cycle_day, last))


def _shift(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


@dataclass(frozen=True, slots=True)
class Cycle:
    """``[start, end)`` as local dates and as UTC instants."""

    start: date
    end: date
    start_utc: datetime
    end_utc: datetime

    def contains(self, instant: datetime) -> bool:
        return self.start_utc <= instant < self.end_utc


def cycle_of(start: date, bill_cycle_day: int, timezone: str) -> Cycle:
    """The cycle that starts on ``start`` (which must be a cycle start date)."""
    tz = ZoneInfo(timezone)
    year, month = _shift(start.year, start.month, 1)
    end = cycle_day_in(year, month, bill_cycle_day)
    return Cycle(start, end, local_midnight_utc(start, tz), local_midnight_utc(end, tz))


def cycle_containing(instant: datetime, bill_cycle_day: int, timezone: str) -> Cycle:
    """The account's cycle that contains the aware ``instant``."""
    if instant.tzinfo is None:
        raise ValueError("naive datetimes are not instants; give a time zone")
    if not 1 <= bill_cycle_day <= 31:
        raise ValueError("bill_cycle_day must be between 1 and 31")
    tz = ZoneInfo(timezone)
    local = instant.astimezone(tz).date()
    start = cycle_day_in(local.year, local.month, bill_cycle_day)
    if start > local:
        year, month = _shift(local.year, local.month, -1)
        start = cycle_day_in(year, month, bill_cycle_day)
    cycle = cycle_of(start, bill_cycle_day, timezone)
    # Local midnight of a day can be a little later than the first instant of the local date
    # when clocks jump over midnight; an instant in that gap belongs to the previous cycle.
    if instant < cycle.start_utc:
        year, month = _shift(start.year, start.month, -1)
        cycle = cycle_of(cycle_day_in(year, month, bill_cycle_day), bill_cycle_day, timezone)
    return cycle


def previous_cycle(cycle: Cycle, bill_cycle_day: int, timezone: str) -> Cycle:
    """The cycle just before ``cycle`` (rollover reads what was left of it)."""
    year, month = _shift(cycle.start.year, cycle.start.month, -1)
    return cycle_of(cycle_day_in(year, month, bill_cycle_day), bill_cycle_day, timezone)
