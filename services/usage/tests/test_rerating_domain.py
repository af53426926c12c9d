"""Re-rating one record: the pure rules of ``domain/rerating.py`` (no I/O).

Tariff amounts are worked out by hand from the CGRateS rules (see test_tariff_rating.py): an
increment costs ``rate * increment / unit`` rounded half up to 5 decimals, the connect fee is
charged once, the total is rounded up (``*up``) to 4 decimals. 2014-08-04 is a Monday.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from rateline_shared.testing import shared_data_dir
from rateline_usage.domain.allowances import AllowanceView, Balance, Ledger
from rateline_usage.domain.guiding import (
    STATUS_RATED,
    UNKNOWN_DESTINATION,
    AccountView,
    Directory,
    Guided,
    LineView,
    Outcome,
    PlanBook,
    PlanVersionView,
    SubscriptionView,
    Usage,
    guide,
    rate_record,
)
from rateline_usage.domain.rating import Rate, TariffRef
from rateline_usage.domain.rerating import (
    ALLOWANCE_MISMATCH,
    CURRENCY_CHANGED,
    GUIDING_CHANGED,
    PRICING_CHANGED,
    PreviousRating,
    Rerated,
    Skipped,
    rerate,
)
from rateline_usage.domain.tariffing import TariffBook, compile_tariff, encode_files

DATA = shared_data_dir() / "cgrates" / "oldtutorial"
T0 = dt.datetime(2014, 8, 1, tzinfo=dt.UTC)
MONDAY_1PM = dt.datetime(2014, 8, 4, 13, tzinfo=dt.UTC)
LINE = LineView("line-1", "acc-1", "+4917100000001", T0)
SUB = SubscriptionView("sub-1", "acc-1", "line-1", "plan-1", dt.date(2014, 8, 1), T0)
ACCOUNT = AccountView("acc-1", "EUR", "DE", "UTC", 1)
VOICE = Rate("voice", "minute", Decimal("0.10"), 60, 60)
TARIFF = Rate("voice", "second", Decimal(0), pricing="tariff", tariff=TariffRef("call", "1001"))
MIN5 = AllowanceView("MIN5", "voice", Decimal(300), "minute")


def tariff(import_id: str = "imp-1", *changes: tuple[str, str, str]) -> TariffBook:
    """The oldtutorial plan, with ``(file, old text, new text)`` changes."""
    files = {p.name: p.read_text() for p in DATA.glob("*.csv")}
    for name, old, new in changes:
        assert old in files[name]
        files[name] = files[name].replace(old, new)
    return compile_tariff(import_id, "EUR", "UTC", encode_files(files))


OLD = tariff()
# The 1002 peak rate corrected: 0.1 -> 0.05 per minute after the first (RT_20CNT's second step).
CORRECTED = tariff("imp-2", ("Rates.csv", "RT_20CNT,0,0.1,60s,1s,60s", "RT_20CNT,0,0.05,60s,1s,60s"))
# 1003 no longer in the plan: DST_1003 and DST_FS (prefix 10) moved to other prefixes.
WITHOUT_1003 = tariff(
    "imp-3", ("Destinations.csv", "DST_1003,1003", "DST_1003,1993"), ("Destinations.csv", "DST_FS,10", "DST_FS,19")
)


def directory(
    rate: Rate = VOICE,
    book: TariffBook | None = OLD,
    allowances: tuple[AllowanceView, ...] = (),
    currency: str = "EUR",
    subscriptions: tuple[SubscriptionView, ...] = (SUB,),
) -> Directory:
    version = PlanVersionView("plan-1", 1, T0, currency, rates={"voice": rate}, allowances=allowances)
    return Directory(
        lines_by_msisdn={LINE.msisdn: [LINE]},
        subscriptions_by_line={"line-1": list(subscriptions)},
        plans={"plan-1": PlanBook.of([version])},
        accounts={"acc-1": ACCOUNT},
        tariff=book,
    )


def call(seconds: int, destination: str = "1002", at: dt.datetime = MONDAY_1PM) -> Usage:
    return Usage("voice", LINE.msisdn, at, seconds, LINE.msisdn, destination)


def ledger_for(usage: Usage, d: Directory, granted: Decimal) -> Ledger:
    g = guide(usage, d)
    assert isinstance(g, Guided)
    return Ledger(Balance(key, granted) for _, key in g.candidates)


def previous_of(outcome: Outcome) -> PreviousRating:
    """What intake stored for a rated record."""
    assert outcome.status == STATUS_RATED and outcome.charge is not None and outcome.currency
    c = outcome.charge
    assert outcome.subscription_id is not None
    return PreviousRating.of(
        subscription_id=outcome.subscription_id, pricing=c.pricing, currency=outcome.currency, amount=c.amount,
        billed_quantity=c.billed_quantity, chargeable_quantity=c.chargeable_quantity,
        allowance_code=c.allowance_code, allowance_used=c.allowance_used,
    )


# --- unchanged projections: zero delta ------------------------------------------------------------
@settings(deadline=None)
@given(
    durations=st.lists(st.integers(min_value=0, max_value=4000), min_size=1, max_size=8),
    granted=st.integers(min_value=0, max_value=1200),
    first=st.sampled_from([1, 30, 60]),
    inc=st.sampled_from([1, 6, 60]),
    price=st.decimals(min_value=0, max_value=5, places=4),
)
def test_per_unit_records_rerated_with_unchanged_projections_do_not_change(
    durations: list[int], granted: int, first: int, inc: int, price: Decimal
) -> None:
    d = directory(Rate("voice", "minute", price, first, inc), allowances=(MIN5,))
    usages = [call(s, at=MONDAY_1PM + dt.timedelta(minutes=i)) for i, s in enumerate(durations)]
    ledger = ledger_for(usages[0], d, Decimal(granted))
    for usage in usages:  # rated in start order, consuming the allowance as intake does
        outcome = rate_record(usage, d, ledger)
        again = rerate(usage, previous_of(outcome), d)
        assert isinstance(again, Rerated)
        assert (again.delta, again.changed) == (0, False)
        assert again.outcome.charge is not None and again.outcome.charge.allowance_used == outcome.charge.allowance_used  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=3000),
    destination=st.sampled_from(["1002", "1003", "1007", "10", "1099"]),
    minute_of_week=st.integers(min_value=0, max_value=7 * 24 * 60 - 1),
    granted=st.integers(min_value=0, max_value=400),
)
def test_tariff_records_rerated_with_the_same_tariff_do_not_change(
    seconds: int, destination: str, minute_of_week: int, granted: int
) -> None:
    d = directory(TARIFF, allowances=(MIN5,))
    usage = call(seconds, destination, MONDAY_1PM.replace(hour=0) + dt.timedelta(minutes=minute_of_week))
    outcome = rate_record(usage, d, ledger_for(usage, d, Decimal(granted)))
    assert outcome.status == STATUS_RATED, outcome.message
    again = rerate(usage, previous_of(outcome), d)
    assert isinstance(again, Rerated) and (again.delta, again.changed) == (0, False)


# --- a correction: only what is charged for the uncovered part changes -----------------------------
def test_a_corrected_tariff_changes_the_amount_and_the_covered_part_stays_covered() -> None:
    usage = call(85)
    before = rate_record(usage, directory(TARIFF))
    # RP_RETAIL2 at PEAK: 0.4 connect + 0.2 first minute + 25 x 0.00167 = 0.64175 -> 0.6418
    assert before.amount == Decimal("0.6418")
    again = rerate(usage, previous_of(before), directory(TARIFF, CORRECTED))
    # corrected: 0.4 + 0.2 + 25 x 0.00083 (0.05/60, half up to 5 decimals) = 0.62075 -> 0.6208
    assert isinstance(again, Rerated)
    assert (again.old_amount, again.new_amount, again.delta, again.changed) == (
        Decimal("0.6418"), Decimal("0.6208"), Decimal("-0.0210"), True,
    )
    assert again.outcome.charge is not None and again.outcome.charge.rating_plan == "RP_RETAIL2"

    # 60 s covered by the allowance before: still covered, only the 25 s are charged anew
    d_old = directory(TARIFF, allowances=(MIN5,))
    covered = rate_record(usage, d_old, ledger_for(usage, d_old, Decimal(60)))
    assert (covered.amount, covered.charge.allowance_used) == (Decimal("0.4418"), 60)  # type: ignore[union-attr]
    # the corrected version has more allowance left: nothing more is consumed by re-rating
    again = rerate(usage, previous_of(covered), directory(TARIFF, CORRECTED, allowances=(MIN5,)))
    assert isinstance(again, Rerated) and again.outcome.charge is not None
    assert (again.new_amount, again.outcome.charge.allowance_used, again.new_chargeable) == (
        Decimal("0.4208"), 60, 25,  # 0.4 + 0.02075 -> 0.4208
    )


@settings(deadline=None)
@given(
    seconds=st.integers(min_value=1, max_value=3000),
    granted=st.integers(min_value=0, max_value=600),
    new_price=st.decimals(min_value=0, max_value=5, places=4),
)
def test_a_new_per_unit_price_reprices_the_same_chargeable_quantity(seconds: int, granted: int, new_price: Decimal) -> None:
    usage = call(seconds)
    d_old = directory(VOICE, allowances=(MIN5,))
    before = rate_record(usage, d_old, ledger_for(usage, d_old, Decimal(granted)))
    again = rerate(usage, previous_of(before), directory(Rate("voice", "minute", new_price, 60, 60), allowances=()))
    assert isinstance(again, Rerated) and again.outcome.charge is not None and before.charge is not None
    assert again.outcome.charge.allowance_used == before.charge.allowance_used  # nothing consumed or released
    assert again.new_chargeable == again.old_chargeable == before.charge.chargeable_quantity
    assert again.new_amount == (again.new_chargeable * new_price / 60).quantize(Decimal("0.0001"))
    assert again.delta == again.new_amount - before.charge.amount


# --- what is skipped, and why ---------------------------------------------------------------------
def test_records_that_cannot_be_rerated_are_skipped_with_a_reason() -> None:
    tariffed = call(85, "1003")
    previous = previous_of(rate_record(tariffed, directory(TARIFF)))
    gone = rerate(tariffed, previous, directory(TARIFF, WITHOUT_1003))
    assert isinstance(gone, Skipped) and gone.reason == UNKNOWN_DESTINATION and "1003" in gone.message

    usage = call(85)
    per_unit = previous_of(rate_record(usage, directory(VOICE)))
    assert rerate(usage, per_unit, directory(TARIFF)) == Skipped(
        PRICING_CHANGED, "plan version 1 prices voice by tariff, the record was rated by per_unit"
    )
    skipped = rerate(usage, per_unit, directory(VOICE, currency="USD"))
    assert isinstance(skipped, Skipped) and skipped.reason == CURRENCY_CHANGED
    newer = SubscriptionView("sub-2", "acc-1", "line-1", "plan-1", dt.date(2014, 8, 3), T0)
    skipped = rerate(usage, per_unit, directory(VOICE, subscriptions=(SUB, newer)))
    assert isinstance(skipped, Skipped) and skipped.reason == GUIDING_CHANGED

    # 60 s covered at 60/60; at 90/30 increments 60 s is no whole prefix any more
    d = directory(VOICE, allowances=(MIN5,))
    covered = previous_of(rate_record(usage, d, ledger_for(usage, d, Decimal(60))))
    assert covered.allowance_used == 60
    skipped = rerate(usage, covered, directory(Rate("voice", "minute", Decimal("0.10"), 90, 30), allowances=(MIN5,)))
    assert isinstance(skipped, Skipped) and skipped.reason == ALLOWANCE_MISMATCH
    # ... while the same increments at another price re-rate fine
    assert isinstance(rerate(usage, covered, directory(Rate("voice", "minute", Decimal("0.2"), 60, 60))), Rerated)


def test_previous_rating_reads_records_rated_before_allowances() -> None:
    p = PreviousRating.of(
        subscription_id="s", pricing=None, currency="EUR", amount=Decimal("0.2"), billed_quantity=Decimal(120),
        chargeable_quantity=None, allowance_code="X", allowance_used=None,
    )
    assert (p.pricing, p.chargeable_quantity, p.allowance_used, p.allowance_code) == ("per_unit", 120, 0, None)
