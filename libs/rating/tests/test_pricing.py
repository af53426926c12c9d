"""Invoice-time pricing: graduated, volume, package, minimum charge (hypothesis for arithmetic)."""

from __future__ import annotations

import decimal
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rateline_rating.pricing import (
    PriceTier,
    PricingError,
    graduated,
    package,
    price,
    validate_tiers,
    volume,
    with_minimum,
)

D = Decimal
TIERS = [
    PriceTier(D(100), D("0.10")),
    PriceTier(D(1000), D("0.05"), flat_fee=D(2)),
    PriceTier(None, D("0.01"), flat_fee=D(5)),
]


def test_graduated_prices_each_unit_in_its_tier_and_adds_fees_of_reached_tiers() -> None:
    assert graduated(D(0), TIERS) == 0
    assert graduated(D(50), TIERS) == D("5.00")
    assert graduated(D(100), TIERS) == D("10.00")  # up_to is inclusive: tier 2 not reached
    assert graduated(D("100.5"), TIERS) == D("10.00") + D("0.025") + 2
    assert graduated(D(1500), TIERS) == D(10) + D(45) + 2 + D(5) + 5


def test_volume_prices_every_unit_at_the_tier_of_the_total() -> None:
    assert volume(D(0), TIERS) == 0
    assert volume(D(100), TIERS) == D("10.00")
    assert volume(D(101), TIERS) == D("5.05") + 2
    assert volume(D(1500), TIERS) == D(15) + 5


def test_package_charges_started_blocks() -> None:
    assert package(D(0), D(10), D(3)) == 0
    assert package(D("0.001"), D(10), D(3)) == 3
    assert package(D(10), D(10), D(3)) == 3
    assert package(D("10.5"), D(10), D(3)) == 6
    assert package(D(1), D("0.5"), D(3)) == 6


def test_minimum_charge() -> None:
    assert with_minimum(D(1), D(5)) == 5
    assert with_minimum(D(7), D(5)) == 7
    assert with_minimum(D(7), None) == 7
    assert price("graduated", D(0), tiers=TIERS, minimum_charge=D("9.99")) == D("9.99")
    assert price("package", D(25), unit_price=D(3), package_size=D(10), minimum_charge=D(1)) == 9


def test_measured_units_with_per_are_exact() -> None:
    per_minute = [PriceTier(None, D("0.30"))]
    # 61 seconds at 0.30 per minute: 0.305 exactly (so it rounds half up to 0.31), whereas
    # pricing 61/60 minutes would carry a non-terminating quotient
    assert graduated(D(61), per_minute, per=60) == D("0.305")
    assert graduated(D(2), [PriceTier(None, D("0.15"))], per=60) == D("0.005")
    assert volume(D(61), per_minute, per=60) == D("0.305")
    # 1.5 GB in bytes against a 1 GB first tier
    gb = 1024**3
    assert graduated(D(3 * gb // 2), [PriceTier(D(1), D(5)), PriceTier(None, D(2))], per=gb) == D(6)
    assert package(D(gb + 1), D(1), D(4), per=gb) == 8


@pytest.mark.parametrize(
    "tiers",
    [
        [],
        [PriceTier(D(10), D(1)), PriceTier(D(10), D(1))],
        [PriceTier(D(10), D(1)), PriceTier(D(5), D(1))],
        [PriceTier(None, D(1)), PriceTier(D(5), D(1))],
        [PriceTier(D(0), D(1))],
        [PriceTier(None, D(-1))],
        [PriceTier(None, D(1), flat_fee=D(-1))],
    ],
)
def test_unusable_tiers_are_refused(tiers: list[PriceTier]) -> None:
    with pytest.raises(PricingError):
        validate_tiers(tiers)
    with pytest.raises(PricingError):
        graduated(D(1), tiers)


def test_a_quantity_beyond_a_closed_last_tier_is_refused() -> None:
    closed = [PriceTier(D(10), D(1))]
    assert graduated(D(10), closed) == 10
    with pytest.raises(PricingError):
        graduated(D(11), closed)
    with pytest.raises(PricingError):
        volume(D(11), closed)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(PricingError):
        package(D(1), D(0), D(1))
    with pytest.raises(PricingError):
        price("package", D(1), unit_price=D(1))
    with pytest.raises(PricingError):
        price("per_unit", D(1))
    with pytest.raises(PricingError):
        graduated(D(1), TIERS, per=0)
    with pytest.raises(PricingError):
        graduated(D("NaN"), TIERS)


# --- properties -------------------------------------------------------------------------------
money = st.decimals(min_value=D(0), max_value=D(100), places=4)
quantities = st.decimals(min_value=D(0), max_value=D(100_000), places=3)


@st.composite
def tier_lists(draw: st.DrawFn) -> list[PriceTier]:
    bounds = sorted(set(draw(st.lists(st.integers(1, 50_000), min_size=0, max_size=5))))
    tiers = [PriceTier(D(b), draw(money), draw(money)) for b in bounds]
    return [*tiers, PriceTier(None, draw(money), draw(money))]


def reference_graduated(q: Decimal, tiers: list[PriceTier]) -> Decimal:
    """Sum over tiers, written independently: the part of q between the tier's bounds."""
    total, lower = D(0), D(0)
    for tier in tiers:
        upper = tier.up_to if tier.up_to is not None else max(q, lower)
        part = max(D(0), min(q, upper) - lower)
        if part > 0:
            total += part * tier.unit_price + tier.flat_fee
        lower = upper
    return total


@given(tier_lists(), quantities, quantities)
def test_graduated_is_monotonic_in_quantity(tiers: list[PriceTier], a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert graduated(low, tiers) <= graduated(high, tiers)


@given(tier_lists(), quantities)
def test_graduated_equals_the_sum_over_tiers(tiers: list[PriceTier], q: Decimal) -> None:
    assert graduated(q, tiers) == reference_graduated(q, tiers)


@given(tier_lists(), quantities)
def test_volume_is_quantity_times_the_unit_price_of_its_tier_plus_fee(
    tiers: list[PriceTier], q: Decimal
) -> None:
    assume(q > 0)
    tier = next(t for t in tiers if t.up_to is None or q <= t.up_to)
    assert volume(q, tiers) == q * tier.unit_price + tier.flat_fee
    # and the tier is the first whose bound holds q: every earlier bound is below q
    earlier = tiers[: tiers.index(tier)]
    assert all(t.up_to is not None and t.up_to < q for t in earlier)


@given(
    st.decimals(min_value=D("0.001"), max_value=D(1000), places=3),
    st.decimals(min_value=D(1), max_value=D(100), places=2),
    money,
    st.integers(0, 500),
)
def test_package_is_a_step_function(q: Decimal, size: Decimal, unit: Decimal, extra: int) -> None:
    cost = package(q, size, unit)
    blocks = (q / size).to_integral_value(rounding="ROUND_CEILING")
    assert cost == blocks * unit
    # constant on each block: anywhere in (k*size, (k+1)*size] costs the same
    k = blocks - 1
    assert package(k * size + D("0.001"), size, unit) == cost
    assert package(blocks * size, size, unit) == cost
    assert package(blocks * size + D("0.001"), size, unit) == cost + unit
    assert package(q + extra * size, size, unit) == cost + extra * unit


@given(tier_lists(), quantities, st.none() | money)
def test_minimum_applies(tiers: list[PriceTier], q: Decimal, minimum: Decimal | None) -> None:
    for model in ("graduated", "volume"):
        plain = price(model, q, tiers=tiers)
        charged = price(model, q, tiers=tiers, minimum_charge=minimum)
        assert charged == (plain if minimum is None else max(plain, minimum))
        assert minimum is None or charged >= minimum


@given(tier_lists(), st.integers(0, 10_000_000), st.sampled_from([60, 1024, 1024**2]))
def test_pricing_measured_units_equals_pricing_priced_units(
    tiers: list[PriceTier], measured: int, per: int
) -> None:
    exact = decimal.Context(prec=80, traps=[decimal.Inexact])
    try:  # only where the priced quantity is exact (powers of 2 always are; /60 sometimes)
        exact_priced = exact.divide(D(measured), D(per))
    except decimal.Inexact:
        assume(False)
        return
    assert graduated(D(measured), tiers, per=per) == graduated(exact_priced, tiers)
    assert volume(D(measured), tiers, per=per) == volume(exact_priced, tiers)


@given(tier_lists(), st.integers(1, 10_000_000))
def test_seconds_priced_per_minute_round_like_the_exact_fraction(
    tiers: list[PriceTier], seconds: int
) -> None:
    # the exact result, as a fraction, rounded half up to cents, equals rounding the Decimal
    from fractions import Fraction

    exact = Fraction(0)
    lower = Fraction(0)
    q = Fraction(seconds, 60)
    for tier in tiers:
        upper = Fraction(tier.up_to) if tier.up_to is not None else max(q, lower)
        part = max(Fraction(0), min(q, upper) - lower)
        if part > 0:
            exact += part * Fraction(tier.unit_price) + Fraction(tier.flat_fee)
        lower = upper
    cents = exact * 100
    floor = cents.numerator // cents.denominator
    expected = floor + (1 if cents - floor >= Fraction(1, 2) else 0)
    got = graduated(D(seconds), tiers, per=60).quantize(D("0.01"), rounding=ROUND_HALF_UP)
    assert got == D(expected) / 100
