from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_catalog.domain.plans import (
    PlanDraft,
    PlanInvalid,
    RateDraft,
    check_amount,
    check_plan,
    check_rates,
    validate_plan,
)

VOICE = RateDraft("voice", "minute", Decimal("0.10"), 60, 60)
SMS = RateDraft("sms", "message", Decimal("0.05"))


def draft(**changes: object) -> PlanDraft:
    values: dict[str, object] = {
        "code": "MOBILE-S",
        "name": "Mobile S",
        "currency": "EUR",
        "recurring_fee": Decimal("10.00"),
        "billing_period": "monthly",
        "rates": (VOICE, SMS),
    }
    values.update(changes)
    return PlanDraft(**values)  # type: ignore[arg-type]


def fields(d: PlanDraft) -> list[str]:
    return [i.field for i in check_plan(d)]


def test_the_example_plan_is_valid() -> None:
    assert validate_plan(draft()) == draft()
    assert validate_plan(draft(rates=())).rates == ()


def test_every_issue_is_reported_at_once() -> None:
    bad = draft(
        code="",
        currency="EURO",
        recurring_fee=Decimal("-1"),
        billing_period="weekly",
        rates=(RateDraft("voice", "second", Decimal("-0.1"), 0, 60),),
    )
    with pytest.raises(PlanInvalid) as err:
        validate_plan(bad)
    assert [i.field for i in err.value.issues] == [
        "code",
        "currency",
        "recurring_fee",
        "billing_period",
        "rates.0.unit",
        "rates.0.price",
        "rates.0.first_increment",
    ]


@pytest.mark.parametrize(
    ("rate", "field", "code"),
    [
        (RateDraft("data", "mb", Decimal("1")), "rates.0.service", "unknown-service"),
        (RateDraft("sms", "minute", Decimal("1")), "rates.0.unit", "wrong-unit"),
        (RateDraft("voice", "message", Decimal("1")), "rates.0.unit", "wrong-unit"),
        (RateDraft("voice", "minute", Decimal("1"), 60, 0), "rates.0.increment", "invalid-increment"),
        (RateDraft("sms", "message", Decimal("1"), 1, 60), "rates.0.increment", "invalid-increment"),
        (RateDraft("sms", "message", Decimal("0.0000001")), "rates.0.price", "too-many-decimals"),
    ],
)
def test_rate_rules(rate: RateDraft, field: str, code: str) -> None:
    issues = check_rates((rate,))
    assert [(i.field, i.code) for i in issues] == [(field, code)]


def test_each_service_at_most_once() -> None:
    issues = check_rates((VOICE, SMS, VOICE))
    assert [(i.field, i.code) for i in issues] == [("rates.2.service", "duplicate-service")]


def test_code_shape() -> None:
    assert fields(draft(code="MOBILE-S_2.0")) == []
    assert fields(draft(code="-lead")) == ["code"]
    assert fields(draft(code="x" * 65)) == ["code"]
    assert fields(draft(code="has space")) == ["code"]


def test_zero_amounts_are_allowed() -> None:
    assert fields(draft(recurring_fee=Decimal("0"), rates=(RateDraft("sms", "message", Decimal("0.00")),))) == []


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-10**6, max_value=10**6))
def test_amounts_with_up_to_6_decimals_are_valid_iff_not_negative(value: Decimal) -> None:
    assert (check_amount("x", value) == []) == (value >= 0)


@given(st.integers(min_value=7, max_value=12), st.integers(min_value=1, max_value=9))
def test_more_than_6_significant_decimals_are_refused(places: int, digit: int) -> None:
    value = Decimal(digit).scaleb(-places)
    assert [i.code for i in check_amount("x", value)] == ["too-many-decimals"]


def test_huge_amounts_are_refused() -> None:
    assert [i.code for i in check_amount("x", Decimal("1" + "0" * 14))] == ["amount-too-large"]
    assert check_amount("x", Decimal("9" * 14)) == []
