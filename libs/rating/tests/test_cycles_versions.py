"""Billing cycles and plan-version selection (pure, with hypothesis for time arithmetic)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rateline_rating.cycles import cycle_containing, previous_cycle
from rateline_rating.versions import Migration, VersionRef, version_at_start, version_in_force

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Asia/Beirut", "Australia/Lord_Howe"]
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC))


def test_cycle_of_a_mid_month_instant() -> None:
    cycle = cycle_containing(datetime(2026, 3, 20, 12, tzinfo=UTC), 15, "Europe/Berlin")
    assert (cycle.start, cycle.end) == (date(2026, 3, 15), date(2026, 4, 15))
    assert cycle.start_utc == datetime(2026, 3, 14, 23, tzinfo=UTC)  # CET, +01:00
    assert cycle.end_utc == datetime(2026, 4, 14, 22, tzinfo=UTC)  # CEST, +02:00
    assert cycle.end_utc - cycle.start_utc == timedelta(days=31, hours=-1)


def test_cycle_day_31_falls_on_the_last_day_of_short_months() -> None:
    cycle = cycle_containing(datetime(2026, 2, 28, 10, tzinfo=UTC), 31, "UTC")
    assert (cycle.start, cycle.end) == (date(2026, 2, 28), date(2026, 3, 31))
    before = cycle_containing(datetime(2026, 2, 27, 10, tzinfo=UTC), 31, "UTC")
    assert (before.start, before.end) == (date(2026, 1, 31), date(2026, 2, 28))


def test_an_instant_just_before_local_midnight_is_in_the_earlier_cycle() -> None:
    # 2026-11-30 23:30 in New York is 2026-12-01 04:30 UTC: still the November cycle.
    cycle = cycle_containing(datetime(2026, 12, 1, 4, 30, tzinfo=UTC), 1, "America/New_York")
    assert cycle.start == date(2026, 11, 1)


@given(instants, st.integers(1, 31), st.sampled_from(ZONES))
def test_every_instant_is_in_exactly_its_cycle(instant: datetime, day: int, zone: str) -> None:
    cycle = cycle_containing(instant, day, zone)
    assert cycle.contains(instant)
    previous = previous_cycle(cycle, day, zone)
    assert previous.end == cycle.start and previous.end_utc == cycle.start_utc
    assert not previous.contains(instant)
    assert 27 * 24 <= (cycle.end_utc - cycle.start_utc).total_seconds() / 3600 <= 31 * 24 + 1


T0 = datetime(2026, 1, 1, tzinfo=UTC)
V = [VersionRef(1, T0), VersionRef(2, T0 + timedelta(days=60)), VersionRef(3, T0 + timedelta(days=120))]


def test_a_subscription_stays_on_the_version_it_started_on() -> None:
    started = T0 + timedelta(days=10)
    assert version_at_start(V, started) == 1
    assert version_in_force(V, [], subscription_id="s", started=started, at=T0 + timedelta(days=200)) == 1
    later = T0 + timedelta(days=70)
    assert version_in_force(V, [], subscription_id="s", started=later, at=later) == 2
    # Started before the plan's first version (backdated): the first version.
    assert version_at_start(V, T0 - timedelta(days=5)) == 1


def test_a_migration_moves_listed_or_all_earlier_subscriptions_from_its_date() -> None:
    started = T0 + timedelta(days=10)
    move = Migration(3, T0 + timedelta(days=130), frozenset({"a"}))
    assert version_in_force(V, [move], subscription_id="a", started=started, at=T0 + timedelta(days=129)) == 1
    assert version_in_force(V, [move], subscription_id="a", started=started, at=T0 + timedelta(days=130)) == 3
    assert version_in_force(V, [move], subscription_id="b", started=started, at=T0 + timedelta(days=140)) == 1
    everyone = Migration(2, T0 + timedelta(days=90))
    assert version_in_force(V, [everyone], subscription_id="b", started=started, at=T0 + timedelta(days=95)) == 2
    # A subscription that started after the migration date is not moved by it.
    late = T0 + timedelta(days=125)
    assert version_in_force(V, [everyone], subscription_id="c", started=late, at=late) == 3
    # A migration to a version that is unknown (not yet projected) is ignored.
    ghost = Migration(9, T0 + timedelta(days=90))
    assert version_in_force(V, [ghost], subscription_id="b", started=started, at=T0 + timedelta(days=95)) == 1
