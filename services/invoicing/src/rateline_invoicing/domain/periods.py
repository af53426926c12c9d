"""Billing periods: local dates in the account's time zone, turned into a UTC half-open range.

A period ``[period_start, period_end)`` is given as two *local* calendar dates. It starts at the
first instant of ``period_start`` in the account's zone and ends (exclusively) at the first
instant of ``period_end``. Those instants are computed with :mod:`zoneinfo`, so months that
contain a DST change are 743 or 745 hours long in Europe/Berlin, and a zone whose clocks jump
over midnight (America/Santiago, Asia/Beirut, ...) starts the day at the first local time that
exists (01:00).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rateline_invoicing.domain.errors import PeriodError
from rateline_rating.cycles import local_midnight_utc  # the one definition of a local day's start

# A bill run over more than a year is certainly a typo (2062 for 2026), not a billing period.
MAX_PERIOD_DAYS = 366


def check_period(period_start: date, period_end: date) -> None:
    """Refuse empty, inverted and absurdly long periods (raises :class:`PeriodError`)."""
    if period_end <= period_start:
        raise PeriodError("period_end", "period_end must be after period_start")
    if (period_end - period_start).days > MAX_PERIOD_DAYS:
        raise PeriodError(
            "period_end", f"a billing period spans at most {MAX_PERIOD_DAYS} days"
        )


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PeriodError("timezone", f"{name!r} is not an IANA time zone") from exc


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """``[start, end)`` as local dates, and the same range as UTC instants."""

    start: date
    end: date
    timezone: str
    start_utc: datetime
    end_utc: datetime

    @classmethod
    def of(cls, start: date, end: date, timezone: str) -> BillingPeriod:
        check_period(start, end)
        tz = zone(timezone)
        return cls(start, end, timezone, local_midnight_utc(start, tz), local_midnight_utc(end, tz))

    def contains(self, instant: datetime) -> bool:
        """Whether a UTC (or any aware) instant falls in ``[start_utc, end_utc)``."""
        if instant.tzinfo is None:
            raise ValueError("naive datetimes are not instants; give a time zone")
        return self.start_utc <= instant < self.end_utc

    @property
    def last_day(self) -> date:
        """The last local day of the period (``end`` is exclusive)."""
        return self.end - timedelta(days=1)

    def label(self) -> str:
        """Human form used in line descriptions: ``2026-10-01 to 2026-10-31``."""
        return f"{self.start.isoformat()} to {self.last_day.isoformat()}"
