"""The CGRateS tariff engine on the two public sample plans (no I/O beyond reading the CSVs).

Expected costs are derived by hand from the CGRateS documentation (cgrates.readthedocs.io,
"Tariff plans" and "Rating logic"): an increment costs ``Rate * RateIncrement / RateUnit``
rounded half up to 5 decimals; a rate row applies from its ``GroupIntervalStart`` (elapsed call
time); the connect fee is charged once; the total is rounded with the destination rate's
RoundingMethod/RoundingDecimals (``*up`` = ceiling). 2014-08-04 and 2019-03-04 are Mondays.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rateline_rating.tariffs.csvimport import parse_tariff_plan
from rateline_rating.tariffs.engine import (
    RatingProfileNotFound,
    UnauthorizedDestination,
    get_cost,
    round_total,
)
from rateline_rating.tariffs.model import (
    ANY_TIMING,
    Activation,
    Binding,
    DestinationRate,
    Rate,
    RateStep,
    RatingPlan,
    RatingProfile,
    TariffPlan,
    Timing,
)
from rateline_shared.testing import shared_data_dir

DATA = shared_data_dir() / "cgrates"
S = dt.timedelta(seconds=1)


def load(name: str) -> TariffPlan:
    return parse_tariff_plan({p.name: p.read_text() for p in (DATA / name).glob("*.csv")})


OLD = load("oldtutorial")
NEW = load("tutorial2")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def test_peak_call_with_rate_steps() -> None:
    # 1001 -> RP_RETAIL2; Monday 13:00 is PEAK (08:00 start beats OFFPEAK_MORNING's 00:00);
    # DR_1002_20CNT -> RT_20CNT: connect 0.4; 0-60s: 0.2 per 60s in 60s increments -> 0.2;
    # from 60s: 0.1/60s per 1s = 0.0016667 -> 0.00167 x 25 = 0.04175.
    # 0.4 + 0.2 + 0.04175 = 0.64175 -> *up 4 decimals = 0.6418.
    r = get_cost(OLD.profiles, "call", "1001", "1002", at(2014, 8, 4, 13), 85 * S)
    assert r.cost == Decimal("0.6418")
    assert r.connect_fee == Decimal("0.4")
    assert r.rating_plan_id == "RP_RETAIL2"
    assert [(i.timing_id, i.increments, i.increment_cost, i.cost) for i in r.intervals] == [
        ("PEAK", 1, Decimal("0.2"), Decimal("0.2")),
        ("PEAK", 25, Decimal("0.00167"), Decimal("0.04175")),
    ]
    assert r.intervals[1].start == at(2014, 8, 4, 13, 1)


def test_offpeak_evening_and_weekend() -> None:
    # 20:00 Monday: OFFPEAK_EVENING (19:00) is the closest band -> DR_1002_10CNT, RT_10CNT:
    # 0.2 connect + 0.1 (first minute) + 25 x (0.05/60 = 0.000833 -> 0.00083) = 0.32075 -> 0.3208
    evening = get_cost(OLD.profiles, "call", "1001", "1002", at(2014, 8, 4, 20), 85 * S)
    assert evening.cost == Decimal("0.3208")
    assert {i.timing_id for i in evening.intervals} == {"OFFPEAK_EVENING"}
    # Saturday 13:00: OFFPEAK_WEEKEND, same rate
    weekend = get_cost(OLD.profiles, "call", "1001", "1002", at(2014, 8, 9, 13), 85 * S)
    assert weekend.cost == Decimal("0.3208")
    assert {i.timing_id for i in weekend.intervals} == {"OFFPEAK_WEEKEND"}


def test_call_split_at_band_boundary() -> None:
    # 07:59:30 Monday, 90 s: the first 60 s increment starts off-peak and is billed whole at
    # RT_10CNT (0.1, connect fee 0.2 of the first interval); the call is then at 60 s elapsed,
    # 08:00:30, PEAK: RT_20CNT's step from 60 s, 30 x 0.00167 = 0.0501.
    # 0.2 + 0.1 + 0.0501 = 0.3501.
    r = get_cost(OLD.profiles, "call", "1001", "1002", at(2014, 8, 4, 7, 59, 30), 90 * S)
    assert r.cost == Decimal("0.3501")
    assert [(i.timing_id, i.start, i.duration) for i in r.intervals] == [
        ("OFFPEAK_MORNING", at(2014, 8, 4, 7, 59, 30), 60_000_000_000),
        ("PEAK", at(2014, 8, 4, 8, 0, 30), 30_000_000_000),
    ]


def test_any_subject_and_shorter_prefix() -> None:
    # 1002 has no profile -> *any -> RP_RETAIL1, which has no DST_1003: longest prefix it holds
    # is "10" (DST_FS) -> DR_FS_40CNT PEAK, RT_40CNT: connect 0.8; 0-60 s: 2 x 30 s at 0.2;
    # from 60 s: 10 s increments of 0.2*10/60 = 0.033333 -> 0.03333; 25 s -> 3 increments
    # = 0.09999. 0.8 + 0.4 + 0.09999 = 1.29999 -> *up 4 = 1.3000.
    r = get_cost(OLD.profiles, "call", "1002", "1003", at(2014, 8, 4, 13), 85 * S)
    assert r.cost == Decimal("1.3000")
    assert r.subject == "*any"
    assert r.rating_plan_id == "RP_RETAIL1"
    assert r.usage == 90_000_000_000  # billed: 60 s + 3 x 10 s


def test_max_cost_free_and_disconnect() -> None:
    # RT_1CNT_PER_SEC: 0.01 per second; MaxCost 0.62. 100 s would cost 1.00.
    free = get_cost(OLD.profiles, "call", "1001", "1007", at(2014, 8, 4, 13), 100 * S)
    assert free.cost == Decimal("0.6200")  # *free: capped, the call goes on
    assert free.usage == 100_000_000_000 and free.max_cost_reached and not free.disconnected
    cut = get_cost(OLD.profiles, "call", "1002", "1007", at(2014, 8, 4, 13), 100 * S)
    # *disconnect: 62 increments fit (0.62 is not above the cap), the 63rd would be 0.63
    assert cut.cost == Decimal("0.6200")
    assert cut.usage == 62_000_000_000 and cut.disconnected
    under = get_cost(OLD.profiles, "call", "1002", "1007", at(2014, 8, 4, 13), 30 * S)
    assert under.cost == Decimal("0.3000") and not under.max_cost_reached


def test_generic_units() -> None:
    # RT_GENERIC_1: 1 per unit (unit-less "1"), increment 1 -> 10 units cost 10
    r = get_cost(OLD.profiles, "generic", "anyone", "whatever", at(2014, 8, 4, 13), 10)
    assert r.cost == Decimal("10.0000")


def test_activation_time_and_unknown_destination() -> None:
    with pytest.raises(RatingProfileNotFound):  # profiles active from 2014-01-14
        get_cost(OLD.profiles, "call", "1001", "1002", at(2014, 1, 13, 23), 60 * S)
    with pytest.raises(UnauthorizedDestination):  # RP_STANDARD has no *any destination
        get_cost(NEW.profiles, "call", "1002", "999", at(2019, 3, 4, 13), 60 * S)
    with pytest.raises(RatingProfileNotFound):
        get_cost(NEW.profiles, "voice", "1001", "1002", at(2019, 3, 4, 13), 60 * S)


def test_fallback_subject() -> None:
    # 1001 -> RP_1001 has only DST_1002; for 1003 its fallback *any -> RP_STANDARD, DST_10
    # PEAK -> RT_120C: 0.2 connect + 1.2 (first minute) + 25 x 1.2/60 = 0.5 -> 1.9000
    r = get_cost(NEW.profiles, "call", "1001", "1003", at(2019, 3, 4, 13), 85 * S)
    assert (r.cost, r.subject, r.rating_plan_id) == (Decimal("1.9000"), "*any", "RP_STANDARD")
    # 1001 -> 1002 stays on RP_1001: RT_60C 0.1 + 85 x 0.01 = 0.95
    own = get_cost(NEW.profiles, "call", "1001", "1002", at(2019, 3, 4, 13), 85 * S)
    assert (own.cost, own.rating_plan_id) == (Decimal("0.9500"), "RP_1001")


def test_weight_breaks_prefix_ties() -> None:
    # "20" is in DST_20 and DST_2030: on 1 January NEW_YEAR (weight 20) gives RT_60C:
    # 0.1 + 85 x 0.01 = 0.95; any other day DR_2030_120C (weight 10): 1.9000 as above.
    ny = get_cost(NEW.profiles, "call", "1002", "2001", at(2020, 1, 1, 10), 85 * S)
    assert (ny.cost, ny.intervals[0].destination_rate_id) == (Decimal("0.9500"), "DR_20_60C")
    other = get_cost(NEW.profiles, "call", "1002", "2001", at(2019, 3, 4, 10), 85 * S)
    assert (other.cost, other.intervals[0].destination_rate_id) == (Decimal("1.9000"), "DR_2030_120C")


def test_sms_data_and_connect_fee_only() -> None:
    # RP_SMS: DST_1002 at 0.1 per message, DST_10 at 0.2 per message
    assert get_cost(NEW.profiles, "sms", "1001", "1002", at(2019, 3, 4), 1).cost == Decimal("0.1000")
    assert get_cost(NEW.profiles, "sms", "1001", "1003", at(2019, 3, 4), 3).cost == Decimal("0.6000")
    # RT_1024_1: 1 per 1024 units in 1024-unit increments: 2000 units -> 2 increments -> 2
    assert get_cost(NEW.profiles, "data", "x", "any", at(2019, 3, 4), 2000).cost == Decimal("2.0000")
    # RT_10C_CN: connect fee 0.1, rate 0 (unit 0) -> 0.1 whatever the duration
    blc = get_cost(NEW.profiles, "call", "RPF_SPECIAL_BLC", "555", at(2019, 3, 4), 600 * S)
    assert blc.cost == Decimal("0.1000")
    assert get_cost(NEW.profiles, "call", "x", "voicemail", at(2019, 3, 4), 60 * S).cost == 0


def _binding(dr_id: str, timing: Timing, weight: int, rate: str) -> Binding:
    step = RateStep(Decimal(0), Decimal(rate), 60 * 10**9, 60 * 10**9, 0)
    dr = DestinationRate(dr_id, "D", frozenset({"33"}), Rate("R" + dr_id, (step,)))
    return Binding(dr, timing, Decimal(weight))


def test_timing_precedence_weight_then_start_then_specificity() -> None:
    # Same weight and start time: the more specific timing (weekday AND month) wins over the
    # weekday-only one; a higher weight beats both; outside its days the general one applies.
    weekdays = Timing("WD", week_days=frozenset({1, 2, 3, 4, 5}))
    august_weekdays = Timing("AUG", months=frozenset({8}), week_days=frozenset({1, 2, 3, 4, 5}))
    profile = RatingProfile(
        "t", "call", "*any",
        (Activation(at(2014, 1, 1), RatingPlan("P", (
            _binding("GENERAL", ANY_TIMING, 10, "1"),
            _binding("WEEKDAY", weekdays, 10, "2"),
            _binding("AUGUST", august_weekdays, 10, "3"),
        ))),),
    )
    def used(when: dt.datetime) -> str:
        r = get_cost([profile], "call", "x", "331", when, 60 * S)
        return r.intervals[0].destination_rate_id
    assert used(at(2014, 8, 4, 12)) == "AUGUST"
    assert used(at(2014, 9, 1, 12)) == "WEEKDAY"
    assert used(at(2014, 8, 9, 12)) == "GENERAL"  # Saturday
    heavy = RatingProfile(
        "t", "call", "*any",
        (Activation(at(2014, 1, 1), RatingPlan("P2", (
            _binding("AUGUST", august_weekdays, 10, "3"),
            _binding("HEAVY", ANY_TIMING, 20, "4"),
        ))),),
    )
    assert get_cost([heavy], "call", "x", "331", at(2014, 8, 4, 12), 60 * S).cost == Decimal("4.0000")


def test_latest_activation_wins() -> None:
    old_plan = RatingPlan("OLD", (_binding("A", ANY_TIMING, 0, "1"),))
    new_plan = RatingPlan("NEW", (_binding("B", ANY_TIMING, 0, "2"),))
    profile = RatingProfile(
        "t", "call", "s", (Activation(at(2014, 1, 1), old_plan), Activation(at(2014, 6, 1), new_plan))
    )
    assert get_cost([profile], "call", "s", "33", at(2014, 5, 31, 23), 60 * S).rating_plan_id == "OLD"
    assert get_cost([profile], "call", "s", "33", at(2014, 6, 1), 60 * S).rating_plan_id == "NEW"


def test_rounding_methods() -> None:
    assert round_total(Decimal("0.12341"), "*up", 4) == Decimal("0.1235")
    assert round_total(Decimal("0.12349"), "*down", 4) == Decimal("0.1234")
    assert round_total(Decimal("0.12345"), "*middle", 4) == Decimal("0.1235")
    assert round_total(Decimal("0.12344"), "*middle", 4) == Decimal("0.1234")


WEEK = st.datetimes(
    min_value=dt.datetime(2014, 8, 4), max_value=dt.datetime(2014, 8, 11), timezones=st.just(dt.UTC)
)
CALLS = st.sampled_from(
    [("1001", "1002"), ("1001", "1003"), ("1002", "1003"), ("1001", "1007"), ("1002", "1007")]
)


@settings(max_examples=150, deadline=None)
@given(start=WEEK, call=CALLS, a=st.integers(0, 7200), b=st.integers(0, 7200))
def test_cost_is_monotonic_in_duration(
    start: dt.datetime, call: tuple[str, str], a: int, b: int
) -> None:
    short, long_ = sorted((a, b))
    c1 = get_cost(OLD.profiles, "call", *call, start, short * S).cost
    c2 = get_cost(OLD.profiles, "call", *call, start, long_ * S).cost
    assert c1 <= c2


@settings(max_examples=150, deadline=None)
@given(start=WEEK, call=CALLS, seconds=st.integers(1, 7200))
def test_splitting_rule(start: dt.datetime, call: tuple[str, str], seconds: int) -> None:
    """Intervals are contiguous, billed in whole increments, cover the call by less than one
    increment too much, and add up to the (unrounded) total."""
    r = get_cost(OLD.profiles, "call", *call, start, seconds * S)
    asked = seconds * 1_000_000_000
    assert sum(i.duration for i in r.intervals) == r.usage
    if not r.disconnected:
        assert asked <= r.usage < asked + r.intervals[-1].rate_increment
    position = start
    for interval in r.intervals:
        assert interval.start == position
        assert interval.duration == interval.increments * interval.rate_increment
        if not r.max_cost_reached:
            assert interval.cost == interval.increments * interval.increment_cost
        position += dt.timedelta(microseconds=interval.duration // 1000)
    unrounded = r.connect_fee + sum((i.cost for i in r.intervals), Decimal(0))
    assert r.cost == round_total(unrounded, "*up", 4)


# --- time bands in the tariff's time zone, on DST days (rules in tariffs/localtime.py) ----------

def two_band_plan(second_band: dt.time) -> tuple[RatingProfile, ...]:
    """NIGHT from 00:00 at 0.60/min and a dearer band from ``second_band`` at 1.20/min, both
    per second (RateUnit 60 s, RateIncrement 1 s), no connect fee, 6 decimals *middle."""

    def dr(id_: str, price: str) -> DestinationRate:
        step = RateStep(Decimal(0), Decimal(price), 60 * NS, NS, 0)
        return DestinationRate(id_, "DE", frozenset({"49"}), Rate(id_, (step,)), "*middle", 6)

    plan = RatingPlan(
        "RP_TZ",
        (
            Binding(dr("DR_NIGHT", "0.60"), Timing("NIGHT", start=dt.time(0))),
            Binding(dr("DR_DAY", "1.20"), Timing("DAY", start=second_band)),
        ),
    )
    return (RatingProfile("t", "call", "*any", (Activation(at(2014, 1, 1), plan),)),)


NS = 1_000_000_000
BERLIN = "Europe/Berlin"


def test_clocks_forward_a_band_starts_at_local_time_and_calls_last_real_seconds() -> None:
    # 2014-03-30: Berlin jumps from 02:00 CET to 03:00 CEST at 01:00Z. DAY starts 03:00 local.
    profiles = two_band_plan(dt.time(3))
    r = get_cost(profiles, "call", "x", "4930", at(2014, 3, 30, 0, 30), 3600 * S, timezone=BERLIN)
    # 00:30Z-01:00Z is 01:30-02:00 CET (NIGHT, 1800 s * 0.01); 01:00Z-01:30Z is 03:00-03:30 CEST
    # (DAY, 1800 s * 0.02): 18 + 36.
    assert r.cost == Decimal("54.000000")
    assert [(i.start, i.duration // NS, i.timing_id) for i in r.intervals] == [
        (at(2014, 3, 30, 0, 30), 1800, "NIGHT"),
        (at(2014, 3, 30, 1, 0), 1800, "DAY"),
    ]
    # Read in UTC the same call is all NIGHT (DAY would start at 03:00Z).
    assert get_cost(profiles, "call", "x", "4930", at(2014, 3, 30, 0, 30), 3600 * S).cost == Decimal("36.000000")


def test_a_band_start_skipped_by_the_jump_starts_at_the_jump() -> None:
    profiles = two_band_plan(dt.time(2, 30))  # 02:30 does not exist in Berlin on 2014-03-30
    r = get_cost(profiles, "call", "x", "4930", at(2014, 3, 30, 0, 30), 3600 * S, timezone=BERLIN)
    assert r.cost == Decimal("54.000000")
    assert [i.start for i in r.intervals] == [at(2014, 3, 30, 0, 30), at(2014, 3, 30, 1, 0)]


def test_clocks_back_the_repeated_hour_is_rated_by_its_wall_time_again() -> None:
    # 2014-10-26: Berlin goes back from 03:00 CEST to 02:00 CET at 01:00Z; DAY from 02:30.
    profiles = two_band_plan(dt.time(2, 30))
    r = get_cost(profiles, "call", "x", "4930", at(2014, 10, 26, 0, 0), 7200 * S, timezone=BERLIN)
    assert [(i.start, i.duration // NS, i.timing_id) for i in r.intervals] == [
        (at(2014, 10, 26, 0, 0), 1800, "NIGHT"),  # 02:00-02:30 CEST
        (at(2014, 10, 26, 0, 30), 1800, "DAY"),  # 02:30-03:00 CEST
        (at(2014, 10, 26, 1, 0), 1800, "NIGHT"),  # 02:00-02:30 CET (the hour again)
        (at(2014, 10, 26, 1, 30), 1800, "DAY"),  # 02:30-03:00 CET
    ]
    assert r.cost == Decimal("108.000000")  # 1800 s * (0.01 + 0.02 + 0.01 + 0.02)


def test_local_midnight_splits_days_in_the_tariff_zone() -> None:
    # Weekend band on Saturday (local): Friday 23:30 in New York is Saturday 03:30Z (EDT).
    weekday = Timing("WEEKDAY", week_days=frozenset({1, 2, 3, 4, 5}))
    weekend = Timing("WEEKEND", week_days=frozenset({6, 7}))
    step = RateStep(Decimal(0), Decimal("0.60"), 60 * NS, NS, 0)
    cheap = RateStep(Decimal(0), Decimal("0.30"), 60 * NS, NS, 0)
    plan = RatingPlan("RP", (
        Binding(DestinationRate("A", "US", frozenset({"1"}), Rate("A", (step,)), "*middle", 6), weekday),
        Binding(DestinationRate("B", "US", frozenset({"1"}), Rate("B", (cheap,)), "*middle", 6), weekend),
    ))
    profiles = (RatingProfile("t", "call", "*any", (Activation(at(2014, 1, 1), plan),)),)
    start = at(2014, 8, 9, 3, 30)  # Saturday 03:30Z = Friday 23:30 EDT
    r = get_cost(profiles, "call", "x", "1212", start, 3600 * S, timezone="America/New_York")
    assert [i.timing_id for i in r.intervals] == ["WEEKDAY", "WEEKEND"]
    assert r.cost == Decimal("27.000000")  # 1800 * 0.01 + 1800 * 0.005
    assert get_cost(profiles, "call", "x", "1212", start, 3600 * S).cost == Decimal("18.000000")


DST_STARTS = st.builds(
    lambda base, seconds: base + dt.timedelta(seconds=seconds),
    st.sampled_from([at(2014, 3, 30, 1), at(2014, 10, 26, 1)]),
    st.integers(-4 * 3600, 2 * 3600),
)


@settings(max_examples=200, deadline=None)
@given(start=DST_STARTS, seconds=st.integers(1, 4 * 3600), cut=st.integers(1, 4 * 3600),
       band=st.sampled_from([dt.time(2), dt.time(2, 30), dt.time(3), dt.time(1, 15)]))
def test_dst_day_call_costs_the_sum_of_its_parts(start: dt.datetime, seconds: int, cut: int, band: dt.time) -> None:
    """Per-second rating on a DST day: a call cut anywhere costs the sum of its two parts, and
    it is billed for exactly its real duration whatever the clocks do."""
    profiles = two_band_plan(band)
    cut = min(cut, seconds)
    whole = get_cost(profiles, "call", "x", "49", start, seconds * S, timezone=BERLIN)
    assert whole.usage == seconds * NS
    first = get_cost(profiles, "call", "x", "49", start, cut * S, timezone=BERLIN)
    rest = get_cost(profiles, "call", "x", "49", start + cut * S, (seconds - cut) * S, timezone=BERLIN)
    assert whole.cost == first.cost + rest.cost
