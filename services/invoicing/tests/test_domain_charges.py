"""Pure rules of plan versions on invoices: recurring schedules (monthly, quarterly, yearly; in
advance or arrears), one-time charges, tiered/volume/package components and minimums, late
usage, re-rating adjustments."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_invoicing.domain.adjustments import StoredRecord, decide
from rateline_invoicing.domain.errors import BillingError, CurrencyMismatch, UnknownPlan
from rateline_invoicing.domain.invoices import (
    AccountTerms,
    AdjustmentGroup,
    CoveredPeriod,
    InvoiceDraft,
    LineKind,
    OneTimeTerms,
    PlanHistory,
    PlanTerms,
    RateTerms,
    SubscriptionTerms,
    UsageGroup,
    build_invoice,
    correction_keys,
)
from rateline_invoicing.domain.periods import BillingPeriod
from rateline_invoicing.domain.schedule import CycleClock, start_instant
from rateline_rating.cycles import cycle_day_in
from rateline_rating.pricing import PriceTier
from rateline_rating.versions import Migration

D = Decimal
BERLIN = "Europe/Berlin"
GB = 1024**3
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def plan(
    fee: str = "30.00",
    period: str = "monthly",
    timing: str = "advance",
    *,
    version: int = 1,
    effective_from: datetime = T0,
    one_time: Sequence[OneTimeTerms] = (),
    rates: Sequence[RateTerms] = (),
    currency: str = "EUR",
) -> PlanTerms:
    return PlanTerms(
        "plan-1", "Pro", currency, D(fee), billing_period=period, code="PRO", version=version,
        effective_from=effective_from, billing_timing=timing, one_time_charges=tuple(one_time),
        rates=tuple(rates),
    )


def cycle_period(year: int, month: int, day: int = 1, tz: str = BERLIN) -> BillingPeriod:
    start = cycle_day_in(year, month, day)
    following = year * 12 + month  # the next month, counted from year 0 month 1
    end = cycle_day_in(following // 12, following % 12 + 1, day)
    return BillingPeriod.of(start, end, tz)


def invoice(
    period: BillingPeriod,
    *versions: PlanTerms,
    start: date = date(2026, 10, 1),
    day: int = 1,
    migrations: Sequence[Migration] = (),
    usage: Sequence[UsageGroup] = (),
    adjustments: Sequence[AdjustmentGroup] = (),
    invoiced: dict[tuple[str, str, str, int | None], Decimal] | None = None,
    first: bool = False,
) -> InvoiceDraft:
    return build_invoice(
        account=AccountTerms("acc", "EUR", BERLIN, day),
        period=period,
        subscriptions=[SubscriptionTerms("sub", "plan-1", start)],
        plans={"plan-1": PlanHistory.of(*(versions or (plan(),)), migrations=migrations)},
        usage=usage,
        adjustments=adjustments,
        invoiced_quantities=invoiced,
        already_invoiced=() if first else ("sub",),
    )


def recurring(draft: InvoiceDraft) -> list[tuple[str, Decimal]]:
    return [(ln.description, ln.amount.amount) for ln in draft.lines if ln.kind == LineKind.RECURRING]


def months_from(year: int, month: int, count: int) -> list[tuple[int, int]]:
    return [((year * 12 + month - 1 + i) // 12, (year * 12 + month - 1 + i) % 12 + 1) for i in range(count)]


# --- recurring schedules ----------------------------------------------------------------------
def test_cycle_period_helper() -> None:
    p = cycle_period(2026, 12)
    assert (p.start, p.end) == (date(2026, 12, 1), date(2027, 1, 1))


def test_quarterly_in_advance_is_charged_every_third_cycle_for_the_coming_three_months() -> None:
    quarterly = plan("90.00", "quarterly", "advance")
    charged = {
        (y, m): recurring(invoice(cycle_period(y, m), quarterly)) for y, m in months_from(2026, 10, 7)
    }
    assert charged == {
        (2026, 10): [("Pro quarterly fee 2026-10-01 to 2026-12-31", D("90.00"))],
        (2026, 11): [],
        (2026, 12): [],
        (2027, 1): [("Pro quarterly fee 2027-01-01 to 2027-03-31", D("90.00"))],
        (2027, 2): [],
        (2027, 3): [],
        (2027, 4): [("Pro quarterly fee 2027-04-01 to 2027-06-30", D("90.00"))],
    }
    line = next(ln for ln in invoice(cycle_period(2026, 10), quarterly).lines if ln.kind == LineKind.RECURRING)
    assert (line.quantity, line.unit) == (D(1), "quarter")


def test_quarterly_in_arrears_is_charged_in_the_cycle_after_the_term() -> None:
    quarterly = plan("90.00", "quarterly", "arrears")
    charged = {
        (y, m): recurring(invoice(cycle_period(y, m), quarterly)) for y, m in months_from(2026, 10, 7)
    }
    assert charged == {
        (2026, 10): [],
        (2026, 11): [],
        (2026, 12): [],
        (2027, 1): [("Pro quarterly fee 2026-10-01 to 2026-12-31", D("90.00"))],
        (2027, 2): [],
        (2027, 3): [],
        (2027, 4): [("Pro quarterly fee 2027-01-01 to 2027-03-31", D("90.00"))],
    }


def test_yearly_advance_and_arrears() -> None:
    advance, arrears = plan("300", "yearly", "advance"), plan("300", "yearly", "arrears")
    cycles = months_from(2026, 10, 25)
    adv = [i for i, (y, m) in enumerate(cycles) if recurring(invoice(cycle_period(y, m), advance))]
    arr = [i for i, (y, m) in enumerate(cycles) if recurring(invoice(cycle_period(y, m), arrears))]
    assert adv == [0, 12, 24]
    assert arr == [12, 24]
    assert recurring(invoice(cycle_period(2027, 10), arrears)) == [
        ("Pro yearly fee 2026-10-01 to 2027-09-30", D("300.00"))
    ]


def test_monthly_in_arrears_charges_the_previous_cycle_and_nothing_on_the_first_invoice() -> None:
    arrears = plan("30.00", "monthly", "arrears")
    assert recurring(invoice(cycle_period(2026, 10), arrears)) == []
    assert recurring(invoice(cycle_period(2026, 11), arrears)) == [
        ("Pro monthly fee 2026-10-01 to 2026-10-31", D("30.00"))
    ]
    assert recurring(invoice(cycle_period(2027, 3), arrears)) == [
        ("Pro monthly fee 2027-02-01 to 2027-02-28", D("30.00"))
    ]


def test_terms_count_from_the_cycle_the_subscription_started_in() -> None:
    # bill-cycle day 15; the subscription starts on 20 October: its first cycle is 15 Oct - 14 Nov
    quarterly = plan("90.00", "quarterly", "advance")
    draft = invoice(cycle_period(2026, 10, 15), quarterly, start=date(2026, 10, 20), day=15)
    assert recurring(draft) == [("Pro quarterly fee 2026-10-15 to 2027-01-14", D("90.00"))]
    assert recurring(invoice(cycle_period(2026, 11, 15), quarterly, start=date(2026, 10, 20), day=15)) == []
    assert recurring(invoice(cycle_period(2027, 1, 15), quarterly, start=date(2026, 10, 20), day=15)) == [
        ("Pro quarterly fee 2027-01-15 to 2027-04-14", D("90.00"))
    ]
    # a period before the subscription's first cycle charges nothing
    assert recurring(invoice(cycle_period(2026, 9, 15), quarterly, start=date(2026, 10, 20), day=15)) == []


@given(
    st.sampled_from(["monthly", "quarterly", "yearly"]),
    st.sampled_from(["advance", "arrears"]),
    st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 28)),
    st.integers(1, 28),
    st.integers(1, 30),
)
def test_terms_tile_the_cycles_without_gap_or_overlap(
    period: str, timing: str, start: date, day: int, cycles: int
) -> None:
    months = {"monthly": 1, "quarterly": 3, "yearly": 12}[period]
    clock = CycleClock.of(start_instant(start, BERLIN), day, BERLIN)
    covered: list[tuple[datetime, datetime]] = []
    for n in range(cycles):
        c = clock.term(n, 1)
        draft = build_invoice(
            account=AccountTerms("acc", "EUR", BERLIN, day), period=BillingPeriod.of(c.start, c.end, BERLIN),
            subscriptions=[SubscriptionTerms("sub", "plan-1", start)],
            plans={"plan-1": PlanHistory.of(plan("10", period, timing, effective_from=T0 - timedelta(days=9999)))},
            already_invoiced=("sub",),
        )
        for line in draft.lines:
            first, last = line.description.rsplit(" fee ", 1)[1].split(" to ")
            term = BillingPeriod.of(date.fromisoformat(first), date.fromisoformat(last) + timedelta(days=1), BERLIN)
            covered.append((term.start_utc, term.end_utc))
            if timing == "advance":
                assert term.start == c.start  # charged in the cycle the term starts
            else:
                assert term.end == c.start  # charged in the cycle after the term
    expected_terms = -(-cycles // months) if timing == "advance" else (cycles - 1) // months
    assert len(covered) == expected_terms
    for (_, end), (nxt, _) in itertools.pairwise(covered):
        assert end == nxt  # contiguous: no gap, no overlap
    if covered:
        assert covered[0][0] == clock.term(0, 1).start_utc  # from the first cycle on


# --- versions and migrations ------------------------------------------------------------------
def test_the_fee_follows_the_version_in_force_and_migrations() -> None:
    v1 = plan("30.00")
    v2 = plan("40.00", version=2, effective_from=utc(2026, 11, 15))
    # started before v2: stays on v1
    assert recurring(invoice(cycle_period(2026, 12), v1, v2)) == [("Pro monthly fee 2026-12-01 to 2026-12-31", D("30.00"))]
    # started after v2 was effective: v2
    later = invoice(cycle_period(2026, 12), v1, v2, start=date(2026, 11, 20))
    assert recurring(later) == [("Pro monthly fee 2026-12-01 to 2026-12-31", D("40.00"))]
    # a migration of this subscription to v2 from local 1 January
    move = Migration(2, utc(2026, 12, 31, 23), frozenset({"sub"}))
    assert recurring(invoice(cycle_period(2026, 12), v1, v2, migrations=[move]))[0][1] == D("30.00")
    assert recurring(invoice(cycle_period(2027, 1), v1, v2, migrations=[move]))[0][1] == D("40.00")
    other = Migration(2, utc(2026, 12, 31, 23), frozenset({"someone-else"}))
    assert recurring(invoice(cycle_period(2027, 1), v1, v2, migrations=[other]))[0][1] == D("30.00")


def test_an_arrears_term_is_charged_by_the_version_it_started_under() -> None:
    # v1 monthly in arrears; from 1 December the subscription is on v2, monthly in advance:
    # December's invoice charges November in arrears (v1) and December in advance (v2).
    v1 = plan("30.00", "monthly", "arrears")
    v2 = plan("45.00", "monthly", "advance", version=2, effective_from=utc(2026, 11, 1))
    move = Migration(2, utc(2026, 11, 30, 23))
    assert recurring(invoice(cycle_period(2026, 12), v1, v2, migrations=[move])) == [
        ("Pro monthly fee 2026-11-01 to 2026-11-30", D("30.00")),
        ("Pro monthly fee 2026-12-01 to 2026-12-31", D("45.00")),
    ]


# --- one-time charges -------------------------------------------------------------------------
SETUP = (OneTimeTerms("SETUP", "Activation fee", D("25.00")), OneTimeTerms("SIM", "SIM card", D("4.999")))


def test_one_time_charges_are_on_the_first_invoice_only() -> None:
    p = plan("30.00", one_time=SETUP)
    first = invoice(cycle_period(2026, 10), p, first=True)
    assert [(ln.kind, ln.description, ln.amount.amount, ln.quantity, ln.unit) for ln in first.lines] == [
        (LineKind.RECURRING, "Pro monthly fee 2026-10-01 to 2026-10-31", D("30.00"), D(1), "month"),
        (LineKind.ONE_TIME, "Activation fee (Pro)", D("25.00"), D(1), "charge"),
        (LineKind.ONE_TIME, "SIM card (Pro)", D("5.00"), D(1), "charge"),
    ]
    assert [(f.subscription_id, f.charges) for f in first.first_invoices] == [("sub", ("SETUP", "SIM"))]
    again = invoice(cycle_period(2026, 11), p, first=False)
    assert [ln.kind for ln in again.lines] == [LineKind.RECURRING]
    assert again.first_invoices == ()


def test_one_time_charges_come_from_the_version_the_subscription_started_on() -> None:
    v1 = plan("30.00", one_time=SETUP)
    v2 = plan("30.00", version=2, effective_from=utc(2026, 11, 1), one_time=(OneTimeTerms("NEW", "New fee", D(1)),))
    draft = invoice(cycle_period(2026, 11), v1, v2, first=True)
    assert [ln.description for ln in draft.lines if ln.kind == LineKind.ONE_TIME] == ["Activation fee (Pro)", "SIM card (Pro)"]


def test_a_first_invoice_without_one_time_charges_is_still_recorded_and_arrears_start_later() -> None:
    draft = invoice(cycle_period(2026, 10), plan("30.00", "monthly", "arrears"), first=True)
    assert draft.is_empty
    assert [(f.subscription_id, f.charges) for f in draft.first_invoices] == [("sub", ())]


# --- tiered, volume and package components ------------------------------------------------------
DATA_TIERS = (PriceTier(D(1), D("5.00")), PriceTier(D(10), D("2.00"), D("1.00")), PriceTier(None, D("1.00")))


def data(
    chargeable: int | Decimal,
    *,
    pricing: str = "graduated",
    billed: int | Decimal | None = None,
    version: int | None = 1,
    records: int = 1,
    covered: CoveredPeriod | None = None,
    started: datetime | None = None,
) -> UsageGroup:
    return UsageGroup(
        subscription_id="sub", plan_id="plan-1", service="data", unit="byte", currency="EUR",
        records=records, amount=D(0), billed_quantity=D(billed if billed is not None else chargeable),
        chargeable_quantity=D(chargeable), pricing=pricing, plan_version=version, covered=covered,
        first_started=started, last_started=started,
    )


def data_plan(pricing: str = "graduated", minimum: str | None = None, **kw: object) -> PlanTerms:
    rate = RateTerms(
        "data", "GB", pricing, price=D("3.00"), tiers=DATA_TIERS if pricing != "package" else (),
        package_size=D(1) if pricing == "package" else None,
        minimum_charge=D(minimum) if minimum is not None else None,
    )
    return plan("0", rates=[rate], **kw)  # type: ignore[arg-type]


def usage_lines(draft: InvoiceDraft) -> list[tuple[str, Decimal, str, Decimal]]:
    return [(ln.description, ln.quantity, ln.unit, ln.amount.amount) for ln in draft.lines if ln.kind == LineKind.USAGE]


def test_graduated_data_is_priced_on_the_period_total_in_gb() -> None:
    # 1.5 GB + 1 GB (chargeable after a 0.5 GB allowance on the first record)
    groups = [data(GB * 3 // 2, billed=2 * GB), data(GB)]
    draft = invoice(cycle_period(2026, 10), data_plan(), usage=groups)
    # 2.5 GB: 1 x 5.00 + 1.5 x 2.00 + 1.00 (second tier reached) = 9.00
    assert usage_lines(draft) == [("Data usage (Pro)", D("2.5"), "GB", D("9.00"))]
    (line,) = [ln for ln in draft.lines if ln.kind == LineKind.USAGE]
    assert line.record_count == 2


def test_volume_and_package_components() -> None:
    groups = [data(GB * 5 // 2, pricing="volume")]
    assert usage_lines(invoice(cycle_period(2026, 10), data_plan("volume"), usage=groups)) == [
        ("Data usage (Pro)", D("2.5"), "GB", D("6.00"))  # all 2.5 GB at 2.00 + the tier's 1.00
    ]
    groups = [data(GB * 5 // 2, pricing="package")]
    assert usage_lines(invoice(cycle_period(2026, 10), data_plan("package"), usage=groups)) == [
        ("Data usage (Pro)", D("2.5"), "GB", D("9.00"))  # 3 started blocks of 1 GB at 3.00
    ]


def test_minimum_charge_applies_with_little_or_no_usage() -> None:
    small = invoice(cycle_period(2026, 10), data_plan(minimum="7.50"), usage=[data(GB // 2)])
    assert usage_lines(small) == [("Data usage (Pro), minimum charge", D("0.5"), "GB", D("7.50"))]
    unused = invoice(cycle_period(2026, 10), data_plan(minimum="7.50"))
    assert usage_lines(unused) == [("Data usage (Pro), minimum charge", D(0), "GB", D("7.50"))]
    big = invoice(cycle_period(2026, 10), data_plan(minimum="7.50"), usage=[data(3 * GB)])
    assert usage_lines(big) == [("Data usage (Pro)", D(3), "GB", D("10.00"))]


def test_seconds_priced_per_minute_are_exact_before_the_line_rounds() -> None:
    voice = RateTerms("voice", "minute", "graduated", tiers=(PriceTier(None, D("0.15")),))
    group = UsageGroup("sub", "plan-1", "voice", "second", "EUR", 1, D(0), D(2), D(2), "graduated", 1)
    draft = invoice(cycle_period(2026, 10), plan("0", rates=[voice]), usage=[group])
    (line,) = [ln for ln in draft.lines if ln.kind == LineKind.USAGE]
    # 2 s at 0.15/min is exactly 0.005, which rounds half up to 0.01
    assert line.unrounded_amount == D("0.005") and line.amount.amount == D("0.01")
    assert (line.quantity, line.unit) == (D("0.033333"), "minute")


def test_usage_of_each_version_is_priced_with_that_versions_tiers() -> None:
    v1 = data_plan()
    v2 = data_plan("volume", version=2, effective_from=utc(2026, 10, 15))
    draft = invoice(cycle_period(2026, 10), v1, v2, usage=[data(GB, version=1), data(2 * GB, pricing="volume", version=2)])
    assert [line[3] for line in usage_lines(draft)] == [D("5.00"), D("5.00")]  # 1 GB at 5; 2 GB x 2 + 1


def test_quantity_priced_usage_without_a_matching_rate_or_version_is_refused() -> None:
    with pytest.raises(BillingError):
        invoice(cycle_period(2026, 10), plan("0"), usage=[data(GB)])
    with pytest.raises(UnknownPlan):
        invoice(cycle_period(2026, 10), data_plan(), usage=[data(GB, version=7)])
    closed = RateTerms("data", "GB", "graduated", tiers=(PriceTier(D(1), D(1)),))
    with pytest.raises(BillingError):
        invoice(cycle_period(2026, 10), plan("0", rates=[closed]), usage=[data(2 * GB)])


def test_a_version_unknown_on_the_record_is_the_one_in_force_at_the_period_start() -> None:
    draft = invoice(cycle_period(2026, 10), data_plan(), usage=[data(GB, version=None)])
    assert usage_lines(draft) == [("Data usage (Pro)", D(1), "GB", D("5.00"))]


# --- late usage -------------------------------------------------------------------------------
SEPT = CoveredPeriod("inv-sept", utc(2026, 8, 31, 22), utc(2026, 9, 30, 22))


def voice(amount: str, *, covered: CoveredPeriod | None = None, records: int = 1, started: datetime | None = None) -> UsageGroup:
    return UsageGroup(
        "sub", "plan-1", "voice", "second", "EUR", records, D(amount), D(60 * records), D(60 * records),
        covered=covered, first_started=started, last_started=started,
    )


def test_late_usage_gets_its_own_line_per_service() -> None:
    late = voice("0.1500", covered=SEPT, records=2, started=utc(2026, 9, 20, 10))
    draft = invoice(cycle_period(2026, 10), plan(), usage=[voice("0.1000"), late])
    assert [(ln.kind, ln.description, ln.quantity, ln.unit, ln.amount.amount) for ln in draft.lines] == [
        (LineKind.RECURRING, "Pro monthly fee 2026-10-01 to 2026-10-31", D(1), "month", D("30.00")),
        (LineKind.USAGE, "Voice usage (Pro)", D(1), "minute", D("0.10")),
        (LineKind.LATE_USAGE, "Late usage: Voice (Pro), 2026-09-20", D(2), "minute", D("0.15")),
    ]
    assert draft.total.amount == D("30.25")


def test_late_quantity_priced_usage_is_charged_what_it_adds_to_its_periods_price() -> None:
    late = data(GB, covered=SEPT, started=utc(2026, 9, 28))
    key = ("inv-sept", "sub", "data", 1)
    assert correction_keys([late], []) == {key}
    # September was invoiced with 0.5 GB (2.50); one more GB makes 1.5 GB: 5 + 0.5 x 2 + 1 = 7.00
    draft = invoice(cycle_period(2026, 10), data_plan(), usage=[late], invoiced={key: D(GB // 2)})
    (line,) = [ln for ln in draft.lines if ln.kind == LineKind.LATE_USAGE]
    assert (line.description, line.amount.amount) == ("Late usage: Data (Pro), 2026-09-28", D("4.50"))
    # with a minimum of 4.00 that September already paid, the extra is 7.00 - 4.00
    draft = invoice(cycle_period(2026, 10), data_plan(minimum="4.00"), usage=[late], invoiced={key: D(GB // 2)})
    assert [ln.amount.amount for ln in draft.lines if ln.kind == LineKind.LATE_USAGE] == [D("3.00")]


# --- adjustments ------------------------------------------------------------------------------
def test_negative_adjustments_become_a_usage_adjustment_line_and_may_make_a_credit() -> None:
    adj = AdjustmentGroup("sub", "plan-1", "voice", "second", "EUR", 3, D("-0.3050"), covered=SEPT)
    draft = invoice(cycle_period(2026, 10), plan("0"), adjustments=[adj])
    assert [(ln.kind, ln.description, ln.quantity, ln.unit, ln.amount.amount) for ln in draft.lines] == [
        (LineKind.RECURRING, "Pro monthly fee 2026-10-01 to 2026-10-31", D(1), "month", D("0.00")),
        (LineKind.ADJUSTMENT, "Usage adjustment: Voice (Pro)", D(3), "record", D("-0.31")),
    ]
    assert draft.total.amount == D("-0.31")
    plus = AdjustmentGroup("sub", "plan-1", "voice", "second", "EUR", 1, D("0.1000"), covered=SEPT)
    draft = invoice(cycle_period(2026, 10), plan("0"), adjustments=[adj, plus])
    assert [ln.amount.amount for ln in draft.lines if ln.kind == LineKind.ADJUSTMENT] == [D("-0.21")]


def test_a_changed_chargeable_quantity_is_repriced_on_its_period() -> None:
    # September invoiced 2 GB (5 + 2 + 1 = 8.00); re-rating finds 1.5 GB were chargeable
    adj = AdjustmentGroup("sub", "plan-1", "data", "byte", "EUR", 1, D(0), D(-GB // 2), "graduated", 1, SEPT)
    key = ("inv-sept", "sub", "data", 1)
    draft = invoice(cycle_period(2026, 10), data_plan(), adjustments=[adj], invoiced={key: D(2 * GB)})
    assert [(ln.kind, ln.amount.amount) for ln in draft.lines if ln.kind != LineKind.RECURRING] == [
        (LineKind.ADJUSTMENT, D("-1.00"))
    ]
    with pytest.raises(BillingError):  # cannot take away more than was invoiced
        invoice(cycle_period(2026, 10), data_plan(), adjustments=[adj], invoiced={key: D(0)})


def test_adjustments_in_another_currency_are_refused() -> None:
    adj = AdjustmentGroup("sub", "plan-1", "voice", "second", "USD", 1, D("-1"), covered=SEPT)
    with pytest.raises(CurrencyMismatch):
        invoice(cycle_period(2026, 10), plan(), adjustments=[adj])


def test_adjustment_decisions() -> None:
    open_record = StoredRecord(1, None, "EUR", D(60))
    assert decide(open_record, currency="EUR", new_chargeable=D(30), latest_pending_chargeable=None).in_place
    invoiced = StoredRecord(2, "inv-1", "EUR", D(60))
    waiting = decide(invoiced, currency="EUR", new_chargeable=D(30), latest_pending_chargeable=None)
    assert (waiting.in_place, waiting.quantity_delta) == (False, D(-30))
    # a second job measures against the first job's still pending quantity
    second = decide(invoiced, currency="EUR", new_chargeable=D(45), latest_pending_chargeable=D(30))
    assert second.quantity_delta == D(15)
    assert decide(invoiced, currency="EUR", new_chargeable=None, latest_pending_chargeable=None).quantity_delta == 0
    with pytest.raises(BillingError):
        decide(invoiced, currency="USD", new_chargeable=None, latest_pending_chargeable=None)
