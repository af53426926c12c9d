from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_usage.domain.rating import (
    RATED_PRECISION,
    Charge,
    Rate,
    RatingError,
    billed_seconds,
    rate_usage,
    round_rated,
)


def rate_voice(seconds: int, rate: Rate) -> Charge:
    return rate_usage("voice", seconds, rate)


def rate_sms(count: int, rate: Rate) -> Charge:
    return rate_usage("sms", count, rate)


VOICE_60_60 = Rate("voice", "minute", Decimal("0.10"), 60, 60)
SMS = Rate("sms", "message", Decimal("0.05"))

durations = st.integers(min_value=0, max_value=10 * 24 * 3600)
increments = st.integers(min_value=1, max_value=3600)
prices = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    ("duration", "billed"),
    [(0, 0), (1, 60), (59, 60), (60, 60), (61, 120), (90, 120), (120, 120), (121, 180)],
)
def test_60_60_bills_every_started_minute(duration: int, billed: int) -> None:
    assert billed_seconds(duration, 60, 60) == billed


def test_first_and_next_increments_differ() -> None:
    # 30/6: at least 30 s, then 6-second steps.
    assert [billed_seconds(d, 30, 6) for d in (1, 30, 31, 36, 37)] == [30, 30, 36, 36, 42]
    # 1/1: per-second billing.
    assert billed_seconds(61, 1, 1) == 61


def test_the_example_call() -> None:
    charge = rate_voice(90, VOICE_60_60)
    assert (charge.quantity, charge.billed_quantity, charge.unit) == (90, 120, "second")
    assert charge.amount == Decimal("0.2000")
    assert str(charge.amount) == "0.2000"  # 4 decimals, always


def test_unanswered_call_costs_nothing() -> None:
    charge = rate_voice(0, VOICE_60_60)
    assert charge.billed_quantity == 0
    assert charge.amount == Decimal("0.0000")


def test_rounding_happens_once_half_up() -> None:
    # 1 s per-second at 0.0003/min = 0.000005 -> 0.0000 (not 0.0001), but 30 s = 0.00015 -> 0.0002.
    rate = Rate("voice", "minute", Decimal("0.0003"), 1, 1)
    assert rate_voice(1, rate).amount == Decimal("0.0000")
    assert rate_voice(30, rate).amount == Decimal("0.0002")
    # 61 s at 0.10/min per second = 0.101666... -> 0.1017
    assert rate_voice(61, Rate("voice", "minute", Decimal("0.10"), 1, 1)).amount == Decimal("0.1017")
    assert round_rated(Decimal("0.00005")) == Decimal("0.0001")
    assert round_rated(Decimal("0.000049999")) == Decimal("0.0000")


def test_sms_is_count_times_price() -> None:
    charge = rate_sms(3, SMS)
    assert (charge.quantity, charge.billed_quantity, charge.unit, charge.amount) == (3, 3, "message", Decimal("0.1500"))


def test_mismatched_rates_are_refused() -> None:
    with pytest.raises(RatingError):
        rate_usage("sms", 1, VOICE_60_60)
    with pytest.raises(RatingError):
        rate_voice(10, Rate("voice", "hour", Decimal("1")))
    with pytest.raises(RatingError):
        billed_seconds(-1, 60, 60)
    with pytest.raises(RatingError):
        billed_seconds(10, 0, 60)


@given(durations, durations, increments, increments, prices)
def test_monotonic_in_duration(a: int, b: int, first: int, inc: int, price: Decimal) -> None:
    short, long = sorted((a, b))
    rate = Rate("voice", "minute", price, first, inc)
    assert billed_seconds(short, first, inc) <= billed_seconds(long, first, inc)
    assert rate_voice(short, rate).amount <= rate_voice(long, rate).amount


@given(durations, increments, increments)
def test_billed_covers_actual_within_one_increment(duration: int, first: int, inc: int) -> None:
    billed = billed_seconds(duration, first, inc)
    assert billed >= duration
    if duration == 0:
        assert billed == 0
    elif duration <= first:
        assert billed == first
    else:
        assert billed - duration < inc
        assert (billed - first) % inc == 0


@given(durations, increments)
def test_equal_increments_overbill_by_less_than_one_increment(duration: int, inc: int) -> None:
    assert 0 <= billed_seconds(duration, inc, inc) - duration < inc


@given(st.integers(min_value=0, max_value=100_000), prices)
def test_whole_minutes_are_exact(minutes: int, price: Decimal) -> None:
    rate = Rate("voice", "minute", price, 60, 60)
    charge = rate_voice(minutes * 60, rate)
    assert charge.billed_quantity == minutes * 60
    assert charge.amount == minutes * price
    assert charge.amount.as_tuple().exponent == -4


@given(durations, increments, increments, st.decimals(min_value=0, max_value=1000, places=6))
def test_amount_is_the_exact_value_rounded_once(duration: int, first: int, inc: int, price: Decimal) -> None:
    rate = Rate("voice", "minute", price, first, inc)
    charge = rate_voice(duration, rate)
    exact = Decimal(charge.billed_quantity) * price / 60
    assert abs(charge.amount - exact) <= RATED_PRECISION / 2
    assert charge.amount.as_tuple().exponent == -4


@given(st.integers(min_value=1, max_value=10_000), prices)
def test_sms_amount_is_exact(count: int, price: Decimal) -> None:
    assert rate_sms(count, Rate("sms", "message", price)).amount == count * price
