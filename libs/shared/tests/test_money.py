from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rateline_shared.money import Money, MoneyError, MoneyModel, minor_units

amounts = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6, allow_nan=False)


def test_minor_units_come_from_cldr() -> None:
    assert (minor_units("EUR"), minor_units("JPY"), minor_units("BHD")) == (2, 0, 3)
    with pytest.raises(MoneyError):
        minor_units("XYZ")


@given(amounts, st.sampled_from(["EUR", "JPY", "BHD", "USD"]))
def test_round_minor_is_within_half_a_minor_unit(amount: Decimal, currency: str) -> None:
    rounded = Money(amount, currency).round_minor().amount
    half = Decimal(1).scaleb(-minor_units(currency)) / 2
    assert abs(rounded - amount) <= half
    assert -rounded.as_tuple().exponent == minor_units(currency)  # type: ignore[operator]


def test_half_up_rounding_is_the_invoice_rule() -> None:
    assert Money.of("0.125", "EUR").round_minor().amount == Decimal("0.13")
    assert Money.of("-0.125", "EUR").round_minor().amount == Decimal("-0.13")
    assert Money.of("2.5", "JPY").round_minor().amount == Decimal("3")


@given(amounts, amounts)
def test_addition_is_exact(a: Decimal, b: Decimal) -> None:
    assert (Money(a, "EUR") + Money(b, "EUR")).amount == a + b


def test_currencies_never_mix_and_floats_never_enter() -> None:
    with pytest.raises(MoneyError):
        Money.of("1", "EUR") + Money.of("1", "USD")
    with pytest.raises(MoneyError):
        Money.of("1", "EUR") * 1.5  # type: ignore[operator]
    with pytest.raises(ValidationError):
        MoneyModel.model_validate({"amount": 12.5, "currency": "EUR"})
    with pytest.raises(ValidationError):
        MoneyModel.model_validate({"amount": "12.5", "currency": "EURO"})
    assert MoneyModel.model_validate({"amount": "12.50", "currency": "EUR"}).model_dump(mode="json") == {
        "amount": "12.50",
        "currency": "EUR",
    }
