"""Allowances, balances and thresholds: the pure rules (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rateline_usage.domain.allowances import (
    AllowanceView,
    Balance,
    BalanceKey,
    Ledger,
    balance_now,
    granted_for,
    in_unit,
    thresholds_crossed,
)
from rateline_usage.domain.guiding import (
    STATUS_RATED,
    UNKNOWN_ACCOUNT,
    AccountView,
    Directory,
    Guided,
    LineView,
    PlanBook,
    PlanVersionView,
    SpendCapView,
    SubscriptionView,
    Usage,
    guide,
    price,
    rate_record,
)
from rateline_usage.domain.plans import allowance_view
from rateline_usage.domain.rating import Rate, covered_prefix, covered_units, increments_of, rate_per_unit

T0 = datetime(2026, 10, 1, tzinfo=UTC)
VOICE = Rate("voice", "minute", Decimal("0.10"), 60, 60)
SMS = Rate("sms", "message", Decimal("0.05"))
DATA = Rate("data", "MB", Decimal("0.01"), 1, 1)
MIN100 = AllowanceView("MIN100", "voice", Decimal(6000), "minute")
GERMANY = AllowanceView("DE60", "voice", Decimal(3600), "minute", destinations=("49",))
POOL = AllowanceView("POOL", "sms", Decimal(3), "message", pooled=True)
KEY = BalanceKey("subscription", "sub-1", "plan-1", "MIN100", date(2026, 10, 1))


def test_allowance_payloads_are_read_in_base_units() -> None:
    a = allowance_view(
        {"code": "D1", "service": "data", "quantity": "1.5", "unit": "GB", "destinations": ["+49"],
         "rollover_cap": "0.5", "pooled": True, "thresholds": [50]}
    )
    assert (a.quantity, a.rollover_cap, a.destinations, a.pooled, a.thresholds) == (
        Decimal(3 * 2**29), Decimal(2**29), ("49",), True, (50,),
    )
    assert allowance_view({"code": "M", "service": "voice", "quantity": "100", "unit": "minute"}).quantity == 6000


def test_allowance_applies_by_service_and_destination_prefix() -> None:
    assert MIN100.applies_to("voice", None) and MIN100.applies_to("voice", "331234")
    assert not MIN100.applies_to("sms", "4930")
    assert GERMANY.applies_to("voice", "4930123456")
    assert not GERMANY.applies_to("voice", "3312345678")
    assert not GERMANY.applies_to("voice", None)


def test_per_unit_allowance_covers_whole_increments_before_overage() -> None:
    # 90 s at 60/60 bills 120 s = two increments of 60 s; 100 s left covers only the first.
    charge = rate_per_unit("voice", 90, VOICE, allowance_remaining=Decimal(100), allowance_code="MIN100")
    assert (charge.billed_quantity, charge.allowance_used, charge.chargeable_quantity) == (120, 60, 60)
    assert (charge.amount, charge.allowance_code) == (Decimal("0.1000"), "MIN100")
    # 59 s left covers nothing: the first increment does not fit whole.
    none = rate_per_unit("voice", 90, VOICE, allowance_remaining=Decimal(59), allowance_code="MIN100")
    assert (none.allowance_used, none.amount, none.allowance_code) == (0, Decimal("0.2000"), None)
    # sms: per message.
    sms = rate_per_unit("sms", 3, SMS, allowance_remaining=Decimal(2), allowance_code="S")
    assert (sms.allowance_used, sms.chargeable_quantity, sms.amount) == (2, 1, Decimal("0.0500"))


def test_invoice_time_pricing_carries_the_chargeable_quantity_at_amount_zero() -> None:
    tiered = Rate("data", "MB", Decimal(0), 1, 1, pricing="graduated")
    charge = rate_per_unit("data", 3 * 2**20, tiered, allowance_remaining=Decimal(2**20), allowance_code="D")
    assert (charge.amount, charge.pricing, charge.billed_quantity, charge.chargeable_quantity) == (
        Decimal("0.0000"), "graduated", 3 * 2**20, 2 * 2**20,
    )


increment_groups = st.lists(
    st.tuples(st.integers(min_value=1, max_value=120).map(Decimal), st.integers(min_value=0, max_value=50)),
    max_size=6,
)
quantities = st.integers(min_value=0, max_value=20_000).map(Decimal)


@given(quantities, increment_groups)
def test_covering_never_exceeds_what_is_left_and_is_a_prefix(remaining: Decimal, groups) -> None:
    covered = covered_prefix(remaining, groups)
    used = sum((size * n for (size, _), n in zip(groups, covered, strict=True)), Decimal(0))
    billed = sum((size * count for size, count in groups), Decimal(0))
    assert 0 <= used <= remaining and used <= billed
    assert all(0 <= n <= count for (_, count), n in zip(groups, covered, strict=True))
    # a prefix: once an increment is not covered, nothing after it is
    flat = [i < n for (_, count), n in zip(groups, covered, strict=True) for i in range(count)]
    assert flat == sorted(flat, reverse=True)
    # covered + overage = billed
    overage = sum((size * (count - n) for (size, count), n in zip(groups, covered, strict=True)), Decimal(0))
    assert used + overage == billed


@given(quantities, st.integers(min_value=0, max_value=5_000), st.integers(1, 300), st.integers(1, 300))
def test_the_closed_form_covers_what_the_increment_walk_covers(remaining: Decimal, quantity: int, first: int, inc: int) -> None:
    groups = increments_of(quantity, first, inc)
    walked = sum((s * n for (s, _), n in zip(groups, covered_prefix(remaining, groups), strict=True)), Decimal(0))
    billed = sum((s * c for s, c in groups), 0)
    assert covered_units(remaining, int(billed), first, inc) == walked


@given(quantities, quantities, increment_groups)
def test_more_allowance_never_covers_less(a: Decimal, b: Decimal, groups) -> None:
    low, high = sorted((a, b))

    def used(r: Decimal) -> Decimal:
        return sum((s * n for (s, _), n in zip(groups, covered_prefix(r, groups), strict=True)), Decimal(0))

    assert used(low) <= used(high)


@given(
    st.integers(min_value=0, max_value=20_000).map(Decimal),
    st.lists(st.tuples(st.integers(min_value=0, max_value=3_000), st.integers(1, 120), st.integers(1, 120)), max_size=30),
)
def test_a_ledger_never_consumes_more_than_granted_and_used_only_grows(granted: Decimal, calls) -> None:
    ledger = Ledger([Balance(KEY, granted)])
    balance = ledger.get(KEY)
    assert balance is not None
    previous = Decimal(0)
    for seconds, first, inc in calls:
        charge = rate_per_unit(
            "voice", seconds, Rate("voice", "minute", Decimal("0.10"), first, inc),
            allowance_remaining=balance.remaining, allowance_code="MIN100",
        )
        ledger.consume(KEY, charge.allowance_used)
        assert charge.allowance_used + charge.chargeable_quantity == charge.billed_quantity
        assert previous <= balance.used <= granted
        previous = balance.used


def test_rollover_is_capped_and_only_with_a_cap() -> None:
    assert granted_for(Decimal(100), Decimal(30), (Decimal(100), Decimal(50))) == (Decimal(130), Decimal(30))
    assert granted_for(Decimal(100), Decimal(30), (Decimal(120), Decimal(100))) == (Decimal(120), Decimal(20))
    assert granted_for(Decimal(100), Decimal(30), (Decimal(100), Decimal(100))) == (Decimal(100), Decimal(0))
    assert granted_for(Decimal(100), None, (Decimal(100), Decimal(0))) == (Decimal(100), Decimal(0))
    assert granted_for(Decimal(100), Decimal(30), None) == (Decimal(100), Decimal(0))
    untouched = AllowanceView("M", "voice", Decimal(100), "second", rollover_cap=Decimal(30))
    assert balance_now(untouched, None, (Decimal(100), Decimal(90))) == (Decimal(110), Decimal(10), Decimal(0))
    assert balance_now(untouched, (Decimal(1), Decimal(2), Decimal(3)), None) == (1, 2, 3)
    assert in_unit(Decimal(6000), 60) == Decimal(100) and str(in_unit(Decimal(90), 60)) == "1.5"


def test_thresholds_are_crossed_once_from_below() -> None:
    assert thresholds_crossed(Decimal(100), Decimal(70), Decimal(100), [80, 100]) == [80, 100]
    assert thresholds_crossed(Decimal(100), Decimal(80), Decimal(99), [80, 100]) == []
    assert thresholds_crossed(Decimal(100), Decimal(79), Decimal(80), [100, 80]) == [80]
    assert thresholds_crossed(Decimal(0), Decimal(0), Decimal(5), [80]) == []
    assert thresholds_crossed(Decimal(100), Decimal(50), Decimal(50), [50]) == []


@given(
    st.integers(min_value=1, max_value=1000).map(Decimal),
    st.lists(st.integers(min_value=0, max_value=300).map(Decimal), max_size=20),
)
def test_thresholds_of_a_growing_total_are_each_reached_exactly_once(limit: Decimal, steps) -> None:
    total, seen = Decimal(0), []
    for step in steps:
        seen += thresholds_crossed(limit, total, total + step, [50, 80, 100])
        total += step
    assert sorted(seen) == seen and len(seen) == len(set(seen))
    assert set(seen) == {t for t in (50, 80, 100) if total >= limit * t / 100}


# --- guiding with allowances -----------------------------------------------------------------
LINE_1 = LineView("line-1", "acc-1", "+4917100000001", T0 - timedelta(days=60))
LINE_2 = LineView("line-2", "acc-1", "+4917100000002", T0 - timedelta(days=60))
SUB_1 = SubscriptionView("sub-1", "acc-1", "line-1", "plan-1", date(2026, 8, 1), T0)
SUB_2 = SubscriptionView("sub-2", "acc-1", "line-2", "plan-1", date(2026, 8, 1), T0)
VERSION = PlanVersionView(
    "plan-1", 1, T0 - timedelta(days=365), "EUR",
    rates={"voice": VOICE, "sms": SMS}, allowances=(GERMANY, MIN100, POOL),
    spend_cap=SpendCapView(Decimal(10)),
)
ACCOUNT = AccountView("acc-1", "EUR", "DE", "Europe/Berlin", bill_cycle_day=15)


def directory(account: AccountView | None = ACCOUNT) -> Directory:
    return Directory(
        lines_by_msisdn={LINE_1.msisdn: [LINE_1], LINE_2.msisdn: [LINE_2]},
        subscriptions_by_line={"line-1": [SUB_1], "line-2": [SUB_2]},
        plans={"plan-1": PlanBook.of([VERSION])},
        accounts={"acc-1": account} if account else {},
    )


def usage(line: LineView, service: str, quantity: int, destination: str | None, at: datetime) -> Usage:
    return Usage(service, line.msisdn, at, quantity, line.msisdn, destination)


def test_guiding_names_the_balances_of_the_accounts_cycle() -> None:
    # 14 Oct 23:30 UTC is 15 Oct 01:30 in Berlin: the cycle starting on the 15th.
    at = datetime(2026, 10, 14, 23, 30, tzinfo=UTC)
    g = guide(usage(LINE_1, "voice", 90, "+49 30 1234", at), directory())
    assert isinstance(g, Guided) and g.cycle is not None
    assert (g.cycle.start, g.cycle.end) == (date(2026, 10, 15), date(2026, 11, 15))
    assert [(a.code, k.owner_kind, k.owner_id) for a, k in g.candidates] == [
        ("DE60", "subscription", "sub-1"), ("MIN100", "subscription", "sub-1"),
    ]
    france = guide(usage(LINE_1, "voice", 90, "+33 1 234", at), directory())
    assert isinstance(france, Guided) and [a.code for a, _ in france.candidates] == ["MIN100"]
    sms_1 = guide(usage(LINE_1, "sms", 1, None, at), directory())
    sms_2 = guide(usage(LINE_2, "sms", 1, None, at), directory())
    assert isinstance(sms_1, Guided) and isinstance(sms_2, Guided)
    assert sms_1.candidates[0][1] == sms_2.candidates[0][1] == BalanceKey(
        "account", "acc-1", "plan-1", "POOL", date(2026, 10, 15)
    )


def test_allowances_need_the_account() -> None:
    outcome = rate_record(usage(LINE_1, "voice", 90, None, T0), directory(None))
    assert (outcome.status, outcome.reason) == ("rejected", UNKNOWN_ACCOUNT)


def test_first_allowance_with_something_left_is_consumed_and_pooled_is_shared() -> None:
    d = directory()
    at = datetime(2026, 10, 20, 10, tzinfo=UTC)
    guided = [
        guide(usage(LINE_1, "voice", 3000, "4930", at), d),
        guide(usage(LINE_1, "voice", 1200, "4930", at + timedelta(hours=1)), d),
        guide(usage(LINE_1, "sms", 2, None, at), d),
        guide(usage(LINE_2, "sms", 2, None, at), d),
    ]
    assert all(isinstance(g, Guided) for g in guided)
    keys = {k for g in guided for _, k in g.candidates}  # type: ignore[union-attr]
    allowances = {"DE60": GERMANY, "MIN100": MIN100, "POOL": POOL}
    ledger = Ledger(Balance(k, allowances[k.code].quantity) for k in keys)
    outcomes = [price(g, d, ledger) for g in guided]  # type: ignore[arg-type]
    assert all(o.status == STATUS_RATED and o.charge for o in outcomes)
    charges = [o.charge for o in outcomes]
    # 3000 s from DE60 (3600 s); then 1200 s: DE60 has 600 s left -> covers 600, 600 s overage.
    assert [(c.allowance_code, c.allowance_used, c.amount) for c in charges[:2]] == [  # type: ignore[union-attr]
        ("DE60", 3000, Decimal("0.0000")), ("DE60", 600, Decimal("1.0000")),
    ]
    # the pool of 3 messages: line 1 takes 2, line 2 the last one and pays for one.
    assert [(c.allowance_used, c.amount) for c in charges[2:]] == [  # type: ignore[union-attr]
        (2, Decimal("0.0000")), (1, Decimal("0.0500")),
    ]
    assert outcomes[3].balance_key == outcomes[2].balance_key
    assert outcomes[0].spend_cap == SpendCapView(Decimal(10))
