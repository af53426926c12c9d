"""Time bands in the tariff's time zone: wall-clock boundaries turned into UTC instants.

A tariff plan's timings (days of week, start times, holidays) are read on the wall clock of
one IANA zone (CGRateS's ``default_timezone``). Calls are measured in real (UTC) time, so a
one-hour call across a DST change lasts 3,600 s whatever the clocks do. The rules, shared by
the fast engine and the reference engine:

* the band in force at an instant is chosen from that instant's *local* date and time;
* a band ends at the next band start (or local midnight) on the wall clock, at the first
  instant after now that shows that wall time: when the clocks go back, a wall time shown twice
  ends the band at whichever occurrence comes first after now;
* a call is also split at every change of the zone's UTC offset between now and that boundary
  (the wall clock jumps there, so a different band may be in force): when the clocks go
  forward over a band start (02:30 on a day that skips 02:00-03:00), the band starts at the
  jump; when they go back, the band in force before the repeated hour applies again in it.

``zoneinfo`` (the IANA database shipped with Python/``tzdata``) gives offsets; this module only
decides where to split.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_US = dt.timedelta(microseconds=1)


def zone_of(timezone: str | ZoneInfo | None) -> ZoneInfo | None:
    """The zone to read timings in, or ``None`` for UTC (the fast path)."""
    if timezone is None:
        return None
    zone = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
    return None if zone.key in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu") else zone


def _transition(lo: dt.datetime, hi: dt.datetime, zone: ZoneInfo, offset: dt.timedelta | None) -> dt.datetime:
    """The first whole second in ``(lo, hi]`` whose UTC offset differs from ``offset``."""
    low = int((lo - _EPOCH).total_seconds())  # offset at second ``low`` (floor of lo) == offset
    high = int(-(-(hi - _EPOCH) // dt.timedelta(seconds=1)))
    while high - low > 1:
        mid = (low + high) // 2
        if (_EPOCH + dt.timedelta(seconds=mid)).astimezone(zone).utcoffset() == offset:
            low = mid
        else:
            high = mid
    return max(_EPOCH + dt.timedelta(seconds=high), lo + _ONE_US)


def next_change(now: dt.datetime, wall_end: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant where the band in force at ``now`` (UTC) may end.

    ``wall_end`` is the naive local date-time of the band's end on the wall clock (the next
    band start or the next local midnight), later than ``now``'s wall time.
    """
    first = wall_end.replace(tzinfo=zone, fold=0)
    second = wall_end.replace(tzinfo=zone, fold=1)
    instants = sorted({first.astimezone(_UTC), second.astimezone(_UTC)})
    shown = [u for u in instants if u > now and u.astimezone(zone).replace(tzinfo=None, fold=0) == wall_end]
    if shown:
        boundary = shown[0]
    else:  # the wall time is skipped by a jump: split at the jump (found below)
        later = [u for u in instants if u > now]
        boundary = later[-1] if later else now + dt.timedelta(days=1)
    offset = now.astimezone(zone).utcoffset()
    if (boundary - _ONE_US).astimezone(zone).utcoffset() != offset:
        boundary = min(boundary, _transition(now, boundary, zone, offset))
    return boundary
