"""Pure rules of automatic collection and payment methods."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_payment.domain.collection import (
    INVALID_AMOUNT,
    Charge,
    Refuse,
    Skip,
    canonical_amount,
    payment_id_for,
    plan_collection,
)
from rateline_payment.domain.methods import becomes_default
from rateline_shared.money import Money

cents = st.integers(min_value=1, max_value=10**13).map(lambda c: Decimal(c).scaleb(-2))


@given(cents)
def test_positive_minor_unit_totals_are_charged_exactly(total: Decimal) -> None:
    decision = plan_collection(total, "EUR")
    assert isinstance(decision, Charge)
    assert decision.amount == Money(total, "EUR")
    assert decision.amount.amount.as_tuple().exponent == -2


@given(st.integers(min_value=-(10**13), max_value=0))
def test_zero_and_negative_totals_are_not_collected(minor: int) -> None:
    assert isinstance(plan_collection(Decimal(minor).scaleb(-2), "EUR"), Skip)


def test_amounts_finer_than_the_minor_unit_are_refused_not_rounded() -> None:
    decision = plan_collection(Decimal("10.005"), "EUR")
    assert isinstance(decision, Refuse)
    assert decision.failure_code == INVALID_AMOUNT
    assert decision.amount.amount == Decimal("10.005")
    assert isinstance(plan_collection(Decimal("100.5"), "JPY"), Refuse)
    assert plan_collection(Decimal("100"), "JPY") == Charge(Money(Decimal("100"), "JPY"))


def test_canonical_amount_pads_to_the_minor_unit_and_never_rounds() -> None:
    assert str(canonical_amount(Decimal("12.5"), "EUR")) == "12.50"
    assert str(canonical_amount(Decimal("12.500000"), "EUR")) == "12.50"
    assert str(canonical_amount(Decimal("7.000"), "BHD")) == "7.000"
    assert str(canonical_amount(Decimal("10.005000"), "EUR")) == "10.005"


def test_payment_id_is_a_stable_function_of_tenant_and_invoice() -> None:
    first = payment_id_for("acme", "inv-1")
    assert first == payment_id_for("acme", "inv-1")
    # Pinned: a different id for an existing invoice would be a new idempotency key.
    assert first == "ad87f5a6-5c54-5e42-add2-f4d84d741f55"
    assert payment_id_for("globex", "inv-1") != first
    assert payment_id_for("acme", "inv-2") != first


@pytest.mark.parametrize(
    ("requested", "has_default", "expected"),
    [(None, False, True), (None, True, False), (True, True, True), (False, False, False)],
)
def test_default_method_rule(requested: bool | None, has_default: bool, expected: bool) -> None:
    assert becomes_default(requested, has_default) is expected
