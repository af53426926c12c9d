import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_customer.domain.accounts import (
    DomainError,
    check_cycle_day,
    check_timezone,
    normalise_msisdn,
)


def test_national_number_is_normalised_to_e164() -> None:
    assert normalise_msisdn("0171 1234567", "DE") == "+491711234567"
    assert normalise_msisdn("+44 7911 123456", "DE") == "+447911123456"


@pytest.mark.parametrize("raw", ["abc", "123", "+49 0"])
def test_unparseable_or_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(DomainError) as err:
        normalise_msisdn(raw, "DE")
    assert err.value.field == "msisdn"


@given(st.integers())
def test_cycle_day_is_accepted_only_between_1_and_28(day: int) -> None:
    if 1 <= day <= 28:
        assert check_cycle_day(day) == day
    else:
        with pytest.raises(DomainError):
            check_cycle_day(day)


def test_timezone_must_be_iana() -> None:
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(DomainError):
        check_timezone("Mars/Olympus")
