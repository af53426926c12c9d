from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rateline_usage.domain.guiding import (
    BEFORE_ACTIVATION,
    INVALID_MSISDN,
    NO_RATE,
    NO_SUBSCRIPTION,
    STATUS_RATED,
    STATUS_REJECTED,
    UNKNOWN_LINE,
    UNKNOWN_PLAN,
    AccountView,
    Directory,
    LineView,
    PlanBook,
    PlanVersionView,
    SubscriptionView,
    Usage,
    local_date,
)
from rateline_usage.domain.guiding import rate_record as guide
from rateline_usage.domain.mediation import (
    check_start,
    first_occurrences,
    normalise_msisdn,
    quantity_of,
    service_field_issues,
)
from rateline_usage.domain.rating import Rate
from rateline_usage.ids import new_ids

T0 = datetime(2026, 10, 1, tzinfo=UTC)
MSISDN = "+4917112345678"
LINE = LineView("line-1", "acc-1", MSISDN, T0)
SUB = SubscriptionView("sub-1", "acc-1", "line-1", "plan-1", date(2026, 10, 1), T0)
PLAN = PlanVersionView(
    "plan-1", 1, T0 - timedelta(days=365), "EUR",
    rates={"voice": Rate("voice", "minute", Decimal("0.10"), 60, 60)},
)
DIRECTORY = Directory(
    lines_by_msisdn={MSISDN: [LINE]},
    subscriptions_by_line={"line-1": [SUB]},
    plans={"plan-1": PlanBook.of([PLAN])},
    accounts={"acc-1": AccountView("acc-1", "EUR", "DE", "Europe/Berlin")},
)


def voice(at: datetime = T0 + timedelta(days=4), msisdn: str | None = MSISDN, seconds: int = 90) -> Usage:
    return Usage("voice", msisdn, at, seconds, raw_msisdn=msisdn or "junk")


def test_national_and_international_numbers_normalise_to_e164() -> None:
    assert normalise_msisdn("+49 171 12345678", "DE") == MSISDN
    assert normalise_msisdn("017112345678", "DE") == MSISDN
    assert normalise_msisdn("004917112345678", "DE") == MSISDN
    assert normalise_msisdn("not a number", "DE") is None


def test_start_in_the_future_is_refused_beyond_one_day() -> None:
    now = T0
    assert check_start(now + timedelta(hours=23), now) is None
    assert check_start(now + timedelta(days=1, seconds=1), now) is not None
    assert check_start(datetime(2026, 10, 1), now) is not None


def test_each_service_needs_its_quantity_field() -> None:
    assert [i.field for i in service_field_issues("voice", None, None)] == ["duration_seconds"]
    assert [i.field for i in service_field_issues("voice", 10, 2)] == ["count"]
    assert [i.field for i in service_field_issues("data", None, None)] == ["quantity"]
    assert [i.field for i in service_field_issues("data", None, None, 10, None, 5)] == ["quantity"]
    assert [i.field for i in service_field_issues("data", 10, None, 1, 2)] == ["duration_seconds"]
    assert service_field_issues("data", None, None, 0, 7) == []
    assert service_field_issues("mms", None, 2) == []
    assert quantity_of("data", None, None, 1_000, 24) == 1_024
    assert quantity_of("data", None, None, None, None, 4_096) == 4_096
    assert quantity_of("mms", None, None) == 1
    assert [i.field for i in service_field_issues("sms", 10, None)] == ["duration_seconds"]
    assert service_field_issues("sms", None, None) == []
    assert quantity_of("sms", None, None) == 1
    assert quantity_of("sms", None, 3) == 3
    assert quantity_of("voice", 0, None) == 0


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=30))
def test_first_occurrences_point_at_the_first_equal_key(keys: list[int]) -> None:
    result = first_occurrences(keys)
    for i, first in enumerate(result):
        if first is None:
            assert keys[i] not in keys[:i]
        else:
            assert keys[first] == keys[i] and first == keys.index(keys[i]) and first < i


def test_a_known_line_is_rated() -> None:
    outcome = guide(voice(), DIRECTORY)
    assert outcome.status == STATUS_RATED
    assert outcome.charge is not None and outcome.charge.amount == Decimal("0.2000")
    assert (outcome.line_id, outcome.account_id, outcome.subscription_id, outcome.plan_id, outcome.currency) == (
        "line-1", "acc-1", "sub-1", "plan-1", "EUR",
    )


def test_rejections_carry_a_reason_and_what_was_found() -> None:
    assert guide(voice(msisdn=None), DIRECTORY).reason == INVALID_MSISDN
    assert guide(voice(msisdn="+4930123456"), DIRECTORY).reason == UNKNOWN_LINE
    early = guide(voice(at=T0 - timedelta(seconds=1)), DIRECTORY)
    assert (early.status, early.reason) == (STATUS_REJECTED, BEFORE_ACTIVATION)
    no_sub = guide(voice(), Directory(lines_by_msisdn={MSISDN: [LINE]}))
    assert (no_sub.reason, no_sub.line_id, no_sub.account_id) == (NO_SUBSCRIPTION, "line-1", "acc-1")
    no_plan = guide(voice(), Directory({MSISDN: [LINE]}, {"line-1": [SUB]}))
    assert (no_plan.reason, no_plan.plan_id) == (UNKNOWN_PLAN, "plan-1")
    sms = guide(Usage("sms", MSISDN, T0 + timedelta(days=1), 1), DIRECTORY)
    assert sms.reason == NO_RATE
    assert sms.message and "sms" in sms.message


def test_subscription_start_is_read_in_the_account_time_zone() -> None:
    # 22:30 UTC on 30 Sep is 00:30 on 1 Oct in Berlin: the subscription is in force.
    late = datetime(2026, 9, 30, 22, 30, tzinfo=UTC)
    line = LineView("line-1", "acc-1", MSISDN, late - timedelta(days=30))
    directory = Directory({MSISDN: [line]}, DIRECTORY.subscriptions_by_line, DIRECTORY.plans, DIRECTORY.accounts)
    assert guide(voice(at=late), directory).status == STATUS_RATED
    utc_only = Directory({MSISDN: [line]}, DIRECTORY.subscriptions_by_line, DIRECTORY.plans, {})
    assert guide(voice(at=late), utc_only).reason == NO_SUBSCRIPTION
    assert local_date(late, "Mars/Base") == date(2026, 9, 30)


def test_latest_line_and_subscription_in_force_win() -> None:
    old = LineView("line-0", "acc-0", MSISDN, T0 - timedelta(days=400))
    subs = {
        "line-1": [
            SUB,
            SubscriptionView("sub-2", "acc-1", "line-1", "plan-2", date(2026, 10, 10), T0),
        ]
    }
    plans = {**DIRECTORY.plans, "plan-2": PlanBook.of([PlanVersionView("plan-2", 1, T0, "EUR", rates=PLAN.rates)])}
    directory = Directory({MSISDN: [old, LINE]}, subs, plans, DIRECTORY.accounts)
    assert guide(voice(at=T0 + timedelta(days=3)), directory).subscription_id == "sub-1"
    assert guide(voice(at=T0 + timedelta(days=12)), directory).subscription_id == "sub-2"
    # Before the new line: the number belonged to the old one (which has no subscription).
    assert guide(voice(at=T0 - timedelta(days=1)), directory).line_id == "line-0"


def test_ids_sort_in_generation_order() -> None:
    ids = new_ids(10_000) + new_ids(5)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i[14] == "7" for i in ids)  # UUID version 7
