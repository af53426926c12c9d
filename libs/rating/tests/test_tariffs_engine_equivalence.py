"""The optimised tariff engine gives exactly the results of the straightforward reference one.

``reference.reference_get_cost`` is the original implementation (scan bindings, evaluate every
timing with datetime arithmetic); ``engine.get_cost`` precomputes indexes and time bands. Both
are run on random calls: the two public sample plans, and random plans with overlapping
timings, weights, rate steps and MaxCost. Results (every field of every interval) and errors
(type and message) must be equal, on a fresh index and on a cached one.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from rateline_rating.tariffs.csvimport import parse_tariff_plan
from rateline_rating.tariffs.engine import CostResult, get_cost
from rateline_rating.tariffs.model import (
    ANY,
    MAX_COST_DISCONNECT,
    MAX_COST_FREE,
    ROUNDING_METHODS,
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
from rateline_rating.tariffs.reference import reference_get_cost
from rateline_shared.testing import shared_data_dir

DATA = shared_data_dir() / "cgrates"
NS = 1_000_000_000
SECOND = dt.timedelta(seconds=1)
NOON = dt.datetime(2014, 8, 4, 12, tzinfo=dt.UTC)


def load(name: str) -> TariffPlan:
    return parse_tariff_plan({p.name: p.read_text() for p in (DATA / name).glob("*.csv")})


PLANS = {"oldtutorial": load("oldtutorial"), "tutorial2": load("tutorial2")}


def outcome(fn, *args, **kwargs) -> CostResult | tuple[str, str]:  # type: ignore[no-untyped-def]
    try:
        return fn(*args, **kwargs)  # type: ignore[no-any-return]
    except (ValueError, TypeError, ArithmeticError) as err:
        return type(err).__name__, str(err)


def same(profiles, category, subject, destination, start, usage, tenant=None, timezone=None) -> None:  # type: ignore[no-untyped-def]
    expected = outcome(
        reference_get_cost, profiles, category, subject, destination, start, usage, tenant=tenant, timezone=timezone
    )
    for _ in range(2):  # building the index, then from the cache
        got = outcome(get_cost, profiles, category, subject, destination, start, usage, tenant=tenant, timezone=timezone)
        assert got == expected
        if isinstance(got, CostResult):  # Decimal equality ignores the exponent: compare text too
            assert repr(got) == repr(expected)


ZONES = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))])
STARTS = st.datetimes(min_value=dt.datetime(2013, 12, 30), max_value=dt.datetime(2021, 1, 3), timezones=ZONES)
NEAR_BANDS = st.builds(  # close to band starts (08:00, 12:00, 19:00, midnight) so calls cross them
    lambda day, band, offset_us, zone: (
        dt.datetime(2014, 8, 4, tzinfo=dt.UTC) + dt.timedelta(days=day, hours=band, microseconds=offset_us)
    ).astimezone(zone),
    st.sampled_from([0, 1, 4, 5, 6, 7, 1668, 1669, 1670, 1671]),  # 2019-03-01.. and 2019-12-31..
    st.sampled_from([0, 8, 12, 19, 24]),
    st.one_of(st.integers(-400, 100).map(lambda s: s * 1_000_000), st.integers(-400_000_000, 100_000_000)),
    ZONES,
)
USAGES = st.one_of(
    st.integers(0, 130).map(lambda s: dt.timedelta(seconds=s)),
    st.integers(0, 7200).map(lambda s: dt.timedelta(seconds=s)),
    st.integers(0, 3 * 86_400 * 1_000_000).map(lambda us: dt.timedelta(microseconds=us)),
    st.integers(0, 100_000),
    st.integers(0, 5000 * NS),
)
DESTINATIONS = st.one_of(
    st.sampled_from(["1001", "1002", "1003", "1007", "10", "1", "", "2001", "2030", "30", "50", "555", "voicemail",
                     "+4915112", "+49161", "+4917", "999", "20", "200", "1002x"]),
    st.text("0123456789+", max_size=8),
)
SUBJECTS = st.sampled_from(["1001", "1002", "1003", "SPECIAL_1002", "RPF_SPECIAL_BLC", "x", ANY])
CATEGORIES = st.sampled_from(["call", "sms", "data", "generic", "reseller1", "voice"])
TENANTS = st.sampled_from([None, None, "cgrates.org", "other"])


# (category, subject, destination) that reach each rate of the two plans (bands, steps, MaxCost,
# fallbacks, *any), then anything
CALLS = st.one_of(
    st.sampled_from([
        ("call", "1001", "1002"), ("call", "1001", "1003"), ("call", "1002", "1003"), ("call", "1001", "1007"),
        ("call", "1002", "1007"), ("call", "SPECIAL_1002", "1002"), ("call", "1001", "+4915112"),
        ("call", "1002", "2001"), ("call", "1002", "3001"), ("call", "RPF_SPECIAL_BLC", "555"),
        ("call", "x", "voicemail"), ("sms", "1001", "1002"), ("sms", "1001", "1003"), ("data", "x", "any"),
        ("generic", "x", "y"), ("reseller1", "x", "50"),
    ]),
    st.tuples(CATEGORIES, SUBJECTS, DESTINATIONS),
)


@settings(max_examples=2500, deadline=None)
@given(
    plan=st.sampled_from(sorted(PLANS)),
    call=CALLS,
    start=st.one_of(STARTS, NEAR_BANDS),
    usage=USAGES,
    tenant=TENANTS,
)
# a running cost exactly at MaxCost (0.62) is not capped
@example(plan="oldtutorial", call=("call", "1002", "1007"), start=NOON, usage=62 * SECOND, tenant=None)
@example(plan="oldtutorial", call=("call", "1001", "1007"), start=NOON, usage=62 * SECOND, tenant=None)
def test_shared_plans_match_reference(
    plan: str, call: tuple[str, str, str], start: dt.datetime, usage: dt.timedelta | int, tenant: str | None
) -> None:
    same(PLANS[plan].profiles, *call, start, usage, tenant)


# --- random plans: overlapping timings, ties, mid-band starts, rate steps, MaxCost ---------------

TIMES = st.one_of(
    st.just(dt.time(0)),
    st.sampled_from([dt.time(8), dt.time(12), dt.time(19), dt.time(23, 59, 59, 999_999)]),
    st.times(),
)
TIMINGS = st.builds(
    Timing,
    id=st.sampled_from(["T1", "T2", "T3", "T4"]),
    years=st.sampled_from([frozenset(), frozenset({2014}), frozenset({2015})]),
    months=st.sampled_from([frozenset(), frozenset({8}), frozenset({1, 2})]),
    month_days=st.sampled_from([frozenset(), frozenset({1}), frozenset({4, 5, 6})]),
    week_days=st.sampled_from([frozenset(), frozenset({1, 2, 3, 4, 5}), frozenset({6, 7}), frozenset({2})]),
    start=TIMES,
)
AMOUNTS = st.decimals(min_value=0, max_value=3, places=3)
UNITS = st.sampled_from([1, 1000, 1024, NS, 30 * NS, 60 * NS])


@st.composite
def rates(draw: st.DrawFn) -> Rate:
    gis = sorted(set(draw(st.lists(st.sampled_from([30 * NS, 60 * NS, 90 * NS, 1500, 120 * NS]), max_size=3))))
    steps = tuple(
        RateStep(draw(AMOUNTS), draw(AMOUNTS), draw(UNITS), draw(UNITS), start) for start in [0, *gis]
    )
    return Rate(draw(st.sampled_from(["R1", "R2"])), steps)


@st.composite
def destination_rates(draw: st.DrawFn) -> DestinationRate:
    any_destination = draw(st.booleans())
    return DestinationRate(
        id=draw(st.sampled_from(["DR1", "DR2", "DR3"])),
        destination_id=ANY if any_destination else "D",
        prefixes=frozenset() if any_destination else draw(st.frozensets(st.sampled_from(["3", "33", "331", "4"]), min_size=1)),
        rate=draw(rates()),
        rounding_method=draw(st.sampled_from(sorted(ROUNDING_METHODS))),
        rounding_decimals=draw(st.integers(0, 6)),
        max_cost=draw(st.sampled_from([Decimal(0), Decimal("0.5"), Decimal("2"), Decimal("10")])),
        max_cost_strategy=draw(st.sampled_from(["", MAX_COST_FREE, MAX_COST_DISCONNECT])),
    )


WEIGHTS = st.sampled_from([Decimal(0), Decimal(10), Decimal("10.0"), Decimal(20)])


@st.composite
def profiles(draw: st.DrawFn) -> list[RatingProfile]:
    timings = draw(st.lists(TIMINGS, min_size=1, max_size=3))  # shared, so that ties happen
    bindings = st.builds(Binding, destination_rate=destination_rates(), timing=st.sampled_from(timings), weight=WEIGHTS)

    def activation() -> Activation:
        return Activation(
            draw(st.sampled_from([dt.datetime(2014, 1, 1, tzinfo=dt.UTC), dt.datetime(2014, 8, 5, 12, tzinfo=dt.UTC)])),
            RatingPlan(draw(st.sampled_from(["P1", "P2"])), tuple(draw(st.lists(bindings, min_size=1, max_size=5)))),
            tuple(draw(st.lists(st.sampled_from(["a", "b", ANY]), max_size=2))),
        )

    return [
        RatingProfile(draw(st.sampled_from(["t", "u"])), "call", subject, tuple(activation() for _ in range(draw(st.integers(1, 2)))))
        for subject in draw(st.lists(st.sampled_from(["a", "b", ANY]), min_size=1, max_size=3))
    ]


@settings(max_examples=700, deadline=None)
@given(
    profiles=profiles(),
    subject=st.sampled_from(["a", "b", "c"]),
    destination=st.sampled_from(["3", "33", "331", "3319", "4", "5", ""]),
    start=st.datetimes(min_value=dt.datetime(2013, 12, 31), max_value=dt.datetime(2015, 1, 2), timezones=ZONES),
    usage=st.one_of(USAGES, st.integers(0, 200).map(lambda s: dt.timedelta(seconds=s))),
    tenant=st.sampled_from([None, "t"]),
    as_tuple=st.booleans(),
)
def test_random_plans_match_reference(
    profiles: list[RatingProfile], subject: str, destination: str, start: dt.datetime,
    usage: dt.timedelta | int, tenant: str | None, as_tuple: bool,
) -> None:
    same(tuple(profiles) if as_tuple else profiles, "call", subject, destination, start, usage, tenant)


# --- time bands read in a tariff time zone, across DST changes ---------------------------------

# 2014 DST changes: Europe/Berlin 03-30 01:00Z (forward) and 10-26 01:00Z (back);
# America/New_York 03-09 07:00Z and 11-02 06:00Z; America/Santiago (midnight jumps) 04-27 03:00Z
# and 09-07 04:00Z; Australia/Lord_Howe moves by 30 minutes (04-06 15:00Z, 10-05 15:30Z).
TARIFF_ZONES = ["Europe/Berlin", "America/New_York", "America/Santiago", "Australia/Lord_Howe", "UTC"]
TRANSITIONS = [
    dt.datetime(2014, 3, 30, 1, tzinfo=dt.UTC), dt.datetime(2014, 10, 26, 1, tzinfo=dt.UTC),
    dt.datetime(2014, 3, 9, 7, tzinfo=dt.UTC), dt.datetime(2014, 11, 2, 6, tzinfo=dt.UTC),
    dt.datetime(2014, 4, 27, 3, tzinfo=dt.UTC), dt.datetime(2014, 9, 7, 4, tzinfo=dt.UTC),
    dt.datetime(2014, 4, 6, 15, tzinfo=dt.UTC), dt.datetime(2014, 10, 5, 15, 30, tzinfo=dt.UTC),
]
NEAR_TRANSITIONS = st.builds(
    lambda at, seconds: at + dt.timedelta(seconds=seconds),
    st.sampled_from(TRANSITIONS),
    st.integers(-3 * 3600, 600),
)


@settings(max_examples=700, deadline=None)
@given(
    profiles=profiles(),
    subject=st.sampled_from(["a", "b"]),
    destination=st.sampled_from(["3", "331", "4", "5"]),
    start=st.one_of(NEAR_TRANSITIONS, STARTS),
    usage=st.one_of(st.integers(0, 4 * 3600).map(lambda s: dt.timedelta(seconds=s)), USAGES),
    timezone=st.sampled_from(TARIFF_ZONES),
)
def test_random_plans_match_reference_in_a_tariff_zone(
    profiles: list[RatingProfile], subject: str, destination: str, start: dt.datetime,
    usage: dt.timedelta, timezone: str,
) -> None:
    same(profiles, "call", subject, destination, start, usage, None, timezone)
