"""The demo's pure parts: which month it bills and the usage it sends (the API calls are
exercised by test_cli.py, which loads the demo into a running system)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from rateline_devstack.demo import CUSTOMERS, RECORDS, TIMEZONE, demo_records, previous_month

MSISDNS = tuple(c.msisdn for c in CUSTOMERS)


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_previous_month_is_the_whole_month_before_today(today: dt.date) -> None:
    start, end = previous_month(today)
    assert start.day == 1 and end.day == 1
    assert end == today.replace(day=1)
    assert start < end <= today
    assert 28 <= (end - start).days <= 31


def test_records_are_the_same_on_every_call_and_fall_inside_the_period() -> None:
    start, end = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
    records = demo_records(MSISDNS, start, end)
    assert records == demo_records(MSISDNS, start, end)
    assert len(records) == RECORDS
    assert len({r["record_id"] for r in records}) == RECORDS
    zone = ZoneInfo(TIMEZONE)
    for r in records:
        local = dt.datetime.fromisoformat(r["started_at"]).astimezone(zone)
        assert start <= local.date() < end
        if r["service"] == "voice":
            assert 5 <= r["duration_seconds"] <= 1200
        else:
            assert r["service"] == "sms" and "duration_seconds" not in r
    per_line = Counter(r["msisdn"] for r in records)
    assert set(per_line) == set(MSISDNS)
    services = Counter(r["service"] for r in records)
    assert services["voice"] > services["sms"] > 20


def test_the_demo_customers_include_a_declined_card() -> None:
    tokens = Counter(c.card_token for c in CUSTOMERS)
    assert tokens == {"tok_sandbox_success": 2, "tok_sandbox_declined": 1}
