"""Pure invoicing rules: periods, line rounding, totals, grouping, numbering, settlement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rateline_invoicing.domain.errors import (
    CurrencyMismatch,
    PeriodError,
    UnknownPlan,
    UnsupportedBillingPeriod,
)
from rateline_invoicing.domain.invoices import (
    AccountTerms,
    InvoiceDraft,
    LineKind,
    PlanHistory,
    PlanTerms,
    SubscriptionTerms,
    UsageGroup,
    build_invoice,
    round_invoice_line,
)
from rateline_invoicing.domain.numbering import due_date, format_invoice_number
from rateline_invoicing.domain.payments import InvoiceStatus, settle
from rateline_invoicing.domain.periods import BillingPeriod, check_period
from rateline_rating.cycles import local_midnight_utc
from rateline_shared.money import Money

BERLIN = "Europe/Berlin"
OCT = BillingPeriod.of(date(2026, 10, 1), date(2026, 11, 1), BERLIN)
ACCOUNT = AccountTerms("acc-1", "EUR", BERLIN)
BASIC = PlanTerms("plan-basic", "Basic", "EUR", Decimal("10.00"), code="BASIC")
SUB = SubscriptionTerms("sub-1", "plan-basic", date(2026, 9, 15))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def usage(
    amount: str,
    *,
    records: int = 1,
    service: str = "voice",
    billed: str | None = None,
    sub: str = "sub-1",
    currency: str = "EUR",
) -> UsageGroup:
    """``records`` rated records of this period summed: ``amount`` in all, 60 s (voice) or one
    message each unless ``billed`` says otherwise."""
    each = Decimal(60 if service == "voice" else 1)
    quantity = Decimal(billed) if billed is not None else each * records
    return UsageGroup(
        subscription_id=sub,
        plan_id="plan-basic",
        service=service,
        unit="second" if service == "voice" else "message",
        currency=currency,
        records=records,
        amount=Decimal(amount),
        billed_quantity=quantity,
        chargeable_quantity=quantity,
    )


def build(
    subs: Sequence[SubscriptionTerms] = (SUB,),
    plans: dict[str, PlanTerms] | None = None,
    items: Sequence[UsageGroup] = (),
    account: AccountTerms = ACCOUNT,
    period: BillingPeriod = OCT,
) -> InvoiceDraft:
    known = plans if plans is not None else {"plan-basic": BASIC}
    return build_invoice(
        account=account,
        period=period,
        subscriptions=list(subs),
        plans={pid: PlanHistory.of(p) for pid, p in known.items()},
        usage=list(items),
        already_invoiced={s.subscription_id for s in subs},
    )


# --- periods ----------------------------------------------------------------------------------
def test_berlin_october_has_the_dst_end_and_is_745_hours() -> None:
    assert OCT.start_utc == utc(2026, 9, 30, 22, 0)  # CEST, UTC+2
    assert OCT.end_utc == utc(2026, 10, 31, 23, 0)  # CET, UTC+1 after 25 October
    assert OCT.end_utc - OCT.start_utc == timedelta(hours=745)


def test_berlin_march_has_the_dst_start_and_is_743_hours() -> None:
    march = BillingPeriod.of(date(2026, 3, 1), date(2026, 4, 1), BERLIN)
    assert march.start_utc == utc(2026, 2, 28, 23, 0)
    assert march.end_utc == utc(2026, 3, 31, 22, 0)
    assert march.end_utc - march.start_utc == timedelta(hours=743)


def test_period_boundaries_are_half_open_in_local_time() -> None:
    assert OCT.contains(utc(2026, 9, 30, 22, 0))  # local 1 Oct 00:00
    assert not OCT.contains(utc(2026, 9, 30, 21, 59, 59))  # local 30 Sep 23:59:59
    assert OCT.contains(utc(2026, 10, 31, 22, 59, 59))  # local 31 Oct 23:59:59 (CET)
    assert not OCT.contains(utc(2026, 10, 31, 23, 0))  # local 1 Nov 00:00
    assert OCT.label() == "2026-10-01 to 2026-10-31"
    with pytest.raises(ValueError):
        OCT.contains(datetime(2026, 10, 5, 12, 0))


def test_a_midnight_that_does_not_exist_starts_the_day_at_the_first_real_instant() -> None:
    # Santiago springs forward at local midnight: 2026-09-06 00:00 does not exist.
    tz = ZoneInfo("America/Santiago")
    start = local_midnight_utc(date(2026, 9, 6), tz)
    assert start.astimezone(tz).date() == date(2026, 9, 6)
    assert (start - timedelta(microseconds=1)).astimezone(tz).date() == date(2026, 9, 5)


@pytest.mark.parametrize(
    ("start", "end"), [(date(2026, 10, 1), date(2026, 10, 1)), (date(2026, 11, 1), date(2026, 10, 1))]
)
def test_empty_or_inverted_periods_are_refused(start: date, end: date) -> None:
    with pytest.raises(PeriodError) as err:
        check_period(start, end)
    assert err.value.field == "period_end"


def test_unknown_time_zone_is_a_period_error() -> None:
    with pytest.raises(PeriodError):
        BillingPeriod.of(date(2026, 10, 1), date(2026, 11, 1), "Mars/Olympus")


ZONES = ["Europe/Berlin", "America/New_York", "America/Santiago", "Asia/Beirut",
         "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata", "UTC"]


@settings(max_examples=300)
@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31)),
    st.sampled_from(ZONES),
)
def test_local_midnight_is_the_first_instant_of_the_local_day(day: date, tz_name: str) -> None:
    tz = ZoneInfo(tz_name)
    start = local_midnight_utc(day, tz)
    assert start.astimezone(tz).date() == day
    assert (start - timedelta(microseconds=1)).astimezone(tz).date() < day


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 1, 1)),
    st.integers(1, 40), st.integers(1, 40),
    st.sampled_from(ZONES),
)
def test_consecutive_periods_tile_time_without_gap_or_overlap(
    start: date, len1: int, len2: int, tz_name: str
) -> None:
    mid, end = start + timedelta(days=len1), start + timedelta(days=len1 + len2)
    first = BillingPeriod.of(start, mid, tz_name)
    second = BillingPeriod.of(mid, end, tz_name)
    assert first.end_utc == second.start_utc
    assert first.start_utc < first.end_utc


# --- invoice building -------------------------------------------------------------------------
def test_monthly_fee_and_two_voice_minutes() -> None:
    draft = build(items=[usage("0.2000", records=2)])
    assert [ln.kind for ln in draft.lines] == [LineKind.RECURRING, LineKind.USAGE]
    fee, voice = draft.lines
    assert fee.description == "Basic monthly fee 2026-10-01 to 2026-10-31"
    assert fee.amount == Money(Decimal("10.00"), "EUR")
    assert (fee.quantity, fee.unit) == (Decimal(1), "month")
    assert (voice.quantity, voice.unit, voice.service) == (Decimal(2), "minute", "voice")
    assert voice.description == "Voice usage (Basic)"
    assert voice.amount == Money(Decimal("0.20"), "EUR")
    assert voice.record_count == 2
    assert draft.total == draft.subtotal == Money(Decimal("10.20"), "EUR")


def test_usage_line_is_rounded_once_not_per_record() -> None:
    # 3 x 0.0150 = 0.0450 -> 0.05 (rounding each record first would give 3 x 0.02 = 0.06)
    draft = build(subs=(), items=[usage("0.0150", service="sms") for _ in range(3)])
    (sms,) = draft.lines
    assert sms.unrounded_amount == Decimal("0.0450")
    assert sms.amount.amount == Decimal("0.05")
    assert (sms.quantity, sms.unit) == (Decimal(3), "message")


def test_total_is_the_sum_of_rounded_lines() -> None:
    # two lines of 0.005 each round to 0.01 + 0.01 = 0.02, not round(0.010) = 0.01
    draft = build(subs=(), items=[usage("0.005"), usage("0.005", service="sms")])
    assert [ln.amount.amount for ln in draft.lines] == [Decimal("0.01"), Decimal("0.01")]
    assert draft.total.amount == Decimal("0.02")


def test_usage_is_grouped_by_subscription_and_service() -> None:
    sub2 = SubscriptionTerms("sub-2", "plan-basic", date(2026, 10, 20))
    draft = build(
        subs=(SUB, sub2),
        items=[
            usage("0.10"), usage("0.10", sub="sub-2"), usage("0.01", service="sms"),
            usage("0.10"), usage("0.01", service="sms", sub="sub-2"),
        ],
    )
    usage_lines = [(ln.subscription_id, ln.service, ln.record_count, ln.amount.amount)
                   for ln in draft.lines if ln.kind == LineKind.USAGE]
    assert usage_lines == [
        ("sub-1", "sms", 1, Decimal("0.01")),
        ("sub-1", "voice", 2, Decimal("0.20")),
        ("sub-2", "sms", 1, Decimal("0.01")),
        ("sub-2", "voice", 1, Decimal("0.10")),
    ]
    # a subscription starting mid-period pays the full fee (proration is later work)
    assert [ln.amount.amount for ln in draft.lines if ln.kind == LineKind.RECURRING] == [
        Decimal("10.00"), Decimal("10.00")]
    assert draft.total.amount == Decimal("20.32")


def test_voice_seconds_are_shown_in_minutes() -> None:
    draft = build(subs=(), items=[usage("0.1017", billed="61")])
    assert draft.lines[0].quantity == Decimal("1.016667")


def test_subscription_is_billed_only_if_it_starts_before_the_period_end() -> None:
    on_end = SubscriptionTerms("sub-late", "plan-basic", date(2026, 11, 1))
    last_day = SubscriptionTerms("sub-last", "plan-basic", date(2026, 10, 31))
    draft = build(subs=(on_end, last_day))
    assert [ln.subscription_id for ln in draft.lines] == ["sub-last"]


def test_nothing_to_bill_is_an_empty_draft() -> None:
    draft = build(subs=())
    assert draft.is_empty and draft.total == Money.zero("EUR")


def test_plan_in_another_currency_makes_the_account_unbillable() -> None:
    usd = PlanTerms("plan-basic", "Basic", "USD", Decimal("10.00"))
    with pytest.raises(CurrencyMismatch):
        build(plans={"plan-basic": usd})


def test_usage_in_another_currency_makes_the_account_unbillable() -> None:
    with pytest.raises(CurrencyMismatch):
        build(items=[usage("0.10", currency="USD")])


def test_unknown_plan_and_unknown_billing_period_or_timing_are_reported() -> None:
    with pytest.raises(UnknownPlan):
        build(plans={})
    weekly = PlanTerms("plan-basic", "Basic", "EUR", Decimal("100"), billing_period="weekly")
    with pytest.raises(UnsupportedBillingPeriod):
        build(plans={"plan-basic": weekly})
    sometimes = PlanTerms("plan-basic", "Basic", "EUR", Decimal("100"), billing_timing="sometimes")
    with pytest.raises(UnsupportedBillingPeriod):
        build(plans={"plan-basic": sometimes})


def test_zero_decimal_currency_rounds_to_whole_yen() -> None:
    account = AccountTerms("acc-jp", "JPY", "Asia/Tokyo")
    plan = PlanTerms("plan-basic", "Basic", "JPY", Decimal("1000"))
    period = BillingPeriod.of(date(2026, 10, 1), date(2026, 11, 1), "Asia/Tokyo")
    items = [usage("2.5", currency="JPY") for _ in range(3)]  # 7.5 -> 8
    draft = build(items=items, plans={"plan-basic": plan}, account=account, period=period)
    assert [ln.amount.amount for ln in draft.lines] == [Decimal("1000"), Decimal("8")]
    assert draft.total.amount == Decimal("1008")


amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("50"), places=4)


@given(st.lists(st.tuples(st.sampled_from(["sub-1", "sub-2"]), st.sampled_from(["voice", "sms"]),
                          amounts), max_size=40))
def test_lines_round_once_and_total_adds_up(records: list[tuple[str, str, Decimal]]) -> None:
    items = [usage(str(a), sub=s, service=svc) for s, svc, a in records]
    draft = build(subs=(), items=items)
    groups: dict[tuple[str, str], Decimal] = {}
    for s, svc, a in records:
        groups[(s, svc)] = groups.get((s, svc), Decimal(0)) + a
    assert {(ln.subscription_id, ln.service): ln.unrounded_amount for ln in draft.lines} == groups
    for line in draft.lines:
        assert line.amount == round_invoice_line(Money(line.unrounded_amount, "EUR"))
        assert abs(line.amount.amount - line.unrounded_amount) <= Decimal("0.005")
        assert line.amount.amount == line.amount.amount.quantize(Decimal("0.01"))
    assert draft.total.amount == sum((ln.amount.amount for ln in draft.lines), Decimal(0))
    assert sum(ln.record_count for ln in draft.lines) == len(records)


# --- numbering, due dates, payments -----------------------------------------------------------
def test_invoice_numbers() -> None:
    assert format_invoice_number(1) == "INV-000001"
    assert format_invoice_number(123456) == "INV-123456"
    assert format_invoice_number(1234567) == "INV-1234567"
    with pytest.raises(ValueError):
        format_invoice_number(0)


def test_due_date_counts_from_the_local_finalize_date() -> None:
    # 23:30 UTC on 31 Oct is already 1 Nov in Berlin
    assert due_date(utc(2026, 10, 31, 23, 30), BERLIN, 14) == date(2026, 11, 15)
    assert due_date(utc(2026, 10, 31, 22, 30), BERLIN, 14) == date(2026, 11, 14)


def test_settlement() -> None:
    total = Money(Decimal("10.20"), "EUR")
    part = settle(InvoiceStatus.FINALIZED, total, Money.zero("EUR"), Money(Decimal("5"), "EUR"))
    assert (part.amount_paid, part.becomes_paid) == (Decimal("5"), False)
    rest = settle(InvoiceStatus.FINALIZED, total, Money(Decimal("5"), "EUR"), Money(Decimal("5.20"), "EUR"))
    assert (rest.amount_paid, rest.becomes_paid) == (Decimal("10.20"), True)
    again = settle(InvoiceStatus.PAID, total, Money(Decimal("10.20"), "EUR"), Money(Decimal("1"), "EUR"))
    assert again.becomes_paid is False
    with pytest.raises(CurrencyMismatch):
        settle(InvoiceStatus.FINALIZED, total, Money.zero("EUR"), Money(Decimal("10.20"), "USD"))
