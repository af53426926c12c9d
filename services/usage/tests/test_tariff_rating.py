"""Tariff pricing of records with the shared CGRateS sample plans, and per-unit data rating.

Expected costs are worked out by hand from the CGRateS rules (see libs/rating's engine tests):
an increment costs ``rate * increment / unit`` rounded half up to 5 decimals, the connect fee is
charged once, the total is rounded with the destination rate's method (``*up``) to 4 decimals.
2014-08-04 and 2026-11-23 are Mondays.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_rating.units import MEASURED_PER_UNIT
from rateline_shared.testing import shared_data_dir
from rateline_usage.domain.guiding import (
    NO_DESTINATION,
    NO_RATING_PROFILE,
    NO_TARIFF,
    STATUS_RATED,
    UNKNOWN_DESTINATION,
    AccountView,
    Directory,
    LineView,
    PlanBook,
    PlanVersionView,
    SubscriptionView,
    Usage,
    rate_record,
)
from rateline_usage.domain.rating import RATED_PRECISION, Rate, TariffRef, rate_per_unit
from rateline_usage.domain.tariffing import (
    TariffBook,
    TariffFilesError,
    compile_tariff,
    decode_files,
    encode_files,
    rate_tariff,
    tariff_destination,
)

DATA = shared_data_dir() / "cgrates"


def book(name: str, timezone: str = "UTC") -> TariffBook:
    files = {p.name: p.read_text() for p in (DATA / name).glob("*.csv")}
    return compile_tariff(f"imp-{name}", "EUR", timezone, encode_files(files))


OLD = book("oldtutorial")
NEW = book("tutorial2")
MONDAY_1PM = dt.datetime(2014, 8, 4, 13, tzinfo=dt.UTC)
CALL_1001 = TariffRef("call", "1001")


def test_files_travel_as_gzip_base64_json() -> None:
    assert decode_files(encode_files({"Rates.csv": "x"})) == {"Rates.csv": "x"}
    with pytest.raises(TariffFilesError):
        decode_files("not base64!")
    with pytest.raises(TariffFilesError):
        compile_tariff("bad", "EUR", "UTC", encode_files({"Rates.csv": "x"}))


def test_destinations_are_digits_as_cgrates_prefixes_expect() -> None:
    assert tariff_destination("+49 30-123.45 (6)") == "4930123456"
    assert tariff_destination("1002") == "1002"
    assert tariff_destination(" voicemail ") == "voicemail"
    assert tariff_destination("") is None and tariff_destination(None) is None


def test_peak_call_costs_exactly_what_cgrates_says() -> None:
    # RP_RETAIL2: connect 0.4; first minute 0.2; then 25 x 0.00167 = 0.04175 -> 0.6418 (*up).
    c = rate_tariff(OLD, CALL_1001, msisdn="+4917100000001", destination="1002", start=MONDAY_1PM,
                    service="voice", quantity=85)
    assert (c.amount, c.billed_quantity, c.rating_plan, c.allowance_used, c.pricing) == (
        Decimal("0.6418"), 85, "RP_RETAIL2", 0, "tariff",
    )
    assert c.intervals is not None
    assert [(i["timing"], i["duration"], i["rate_increment"], i["increments"], i["cost"]) for i in c.intervals] == [
        ("PEAK", "60", "60", 1, "0.20000"), ("PEAK", "25", "1", 25, "0.04175"),
    ]


def test_allowance_covers_the_first_increments_and_the_connect_fee_stays() -> None:
    kw = {"msisdn": "+4917100000001", "destination": "1002", "start": MONDAY_1PM, "service": "voice", "quantity": 85}
    # 60 s cover the first-minute increment: 0.4 + 0.04175 = 0.44175 -> 0.4418
    c60 = rate_tariff(OLD, CALL_1001, allowance_remaining=Decimal(60), allowance_code="A", **kw)  # type: ignore[arg-type]
    assert (c60.amount, c60.allowance_used, c60.chargeable_quantity) == (Decimal("0.4418"), 60, 25)
    assert c60.intervals is not None and [i["allowance_increments"] for i in c60.intervals] == [1, 0]
    # 70 s: the first minute and 10 one-second increments: 0.4 + 15 x 0.00167 = 0.42505 -> 0.4251
    c70 = rate_tariff(OLD, CALL_1001, allowance_remaining=Decimal(70), allowance_code="A", **kw)  # type: ignore[arg-type]
    assert (c70.amount, c70.allowance_used) == (Decimal("0.4251"), 70)
    # 59 s: the first increment (60 s) does not fit whole: nothing is covered, full price.
    c59 = rate_tariff(OLD, CALL_1001, allowance_remaining=Decimal(59), allowance_code="A", **kw)  # type: ignore[arg-type]
    assert (c59.amount, c59.allowance_used, c59.allowance_code) == (Decimal("0.6418"), 0, None)
    # everything covered: only the connect fee
    all_ = rate_tariff(OLD, CALL_1001, allowance_remaining=Decimal(1000), allowance_code="A", **kw)  # type: ignore[arg-type]
    assert (all_.amount, all_.allowance_used) == (Decimal("0.4000"), 85)


def test_line_subject_falls_back_to_any_and_sms_and_data_rate_by_count_and_bytes() -> None:
    monday = dt.datetime(2026, 11, 23, 13, tzinfo=dt.UTC)
    line = TariffRef("call", "*line")
    # RP_STANDARD, DST_10 at PEAK: 0.2 connect + 1.2 (first minute) + 25 x 0.02 = 1.9
    voice = rate_tariff(NEW, line, msisdn="+4917100000001", destination="1002", start=monday,
                        service="voice", quantity=85)
    assert (voice.amount, voice.rating_plan) == (Decimal("1.9000"), "RP_STANDARD")
    # RP_SMS: DST_1002 0.1 per message; 3 messages, 2 covered -> 0.1
    sms = rate_tariff(NEW, TariffRef("sms", "*line"), msisdn="+4917100000001", destination="1002", start=monday,
                      service="sms", quantity=3, allowance_remaining=Decimal(2), allowance_code="S")
    assert (sms.amount, sms.allowance_used, sms.billed_quantity) == (Decimal("0.1000"), 2, 3)
    # RP_DATA: 1 per 1024 bytes in 1024-byte increments; 2 KB + 1 byte bills 3 KB = 3
    data = rate_tariff(NEW, TariffRef("data", "*line"), msisdn="+4917100000001", destination="apn", start=monday,
                       service="data", quantity=2049)
    assert (data.amount, data.billed_quantity, data.unit) == (Decimal("3.0000"), 3072, "byte")


# --- rejections through guiding ------------------------------------------------------------------
T0 = dt.datetime(2014, 8, 1, tzinfo=dt.UTC)
LINE = LineView("line-1", "acc-1", "+4917100000001", T0)
SUB = SubscriptionView("sub-1", "acc-1", "line-1", "plan-1", dt.date(2014, 8, 1), T0)


def directory(tariff: TariffBook | None, ref: TariffRef = CALL_1001) -> Directory:
    version = PlanVersionView(
        "plan-1", 1, T0, "EUR", rates={"voice": Rate("voice", "minute", Decimal(0), pricing="tariff", tariff=ref)}
    )
    return Directory(
        lines_by_msisdn={LINE.msisdn: [LINE]},
        subscriptions_by_line={"line-1": [SUB]},
        plans={"plan-1": PlanBook.of([version])},
        accounts={"acc-1": AccountView("acc-1", "EUR", "DE", "UTC")},
        tariff=tariff,
    )


def call(destination: str | None, at: dt.datetime = MONDAY_1PM) -> Usage:
    return Usage("voice", LINE.msisdn, at, 85, LINE.msisdn, destination)


def test_tariff_rejections_have_reasons() -> None:
    rated = rate_record(call("1002"), directory(OLD))
    assert (rated.status, rated.amount, rated.plan_version) == (STATUS_RATED, Decimal("0.6418"), 1)
    assert rate_record(call(None), directory(OLD)).reason == NO_DESTINATION
    assert rate_record(call("1002"), directory(None)).reason == NO_TARIFF
    # 1001 -> RP_1001, then its fallback *any -> RP_STANDARD: neither has a rate for 999
    unknown = rate_record(call("999", dt.datetime(2026, 11, 23, 13, tzinfo=dt.UTC)), directory(NEW))
    assert unknown.reason == UNKNOWN_DESTINATION and unknown.message and "999" in unknown.message
    assert rate_record(call("1002"), directory(OLD, TariffRef("fax", "1001"))).reason == NO_RATING_PROFILE


# --- per-unit data rating ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("unit", "first", "inc", "quantity", "billed", "amount"),
    [
        ("MB", 1, 1, 1_572_864, 1_572_864, "0.0150"),  # 1.5 MB at 0.01/MB, per byte
        ("MB", 2**20, 2**20, 1_572_864, 2 * 2**20, "0.0200"),  # per started MB
        ("KB", 1024, 1024, 1, 1024, "0.0100"),  # a started KB at 0.01/KB
        ("GB", 2**20, 2**20, 2**30 + 1, 2**30 + 2**20, "10.0098"),  # 1 GB + 1 MB at 10/GB
        ("MB", 1, 1, 0, 0, "0.0000"),
    ],
)
def test_data_is_rated_per_kb_mb_gb_in_byte_increments(
    unit: str, first: int, inc: int, quantity: int, billed: int, amount: str
) -> None:
    price = Decimal("10") if unit == "GB" else Decimal("0.01")
    charge = rate_per_unit("data", quantity, Rate("data", unit, price, first, inc))
    # 1 GB + 1 MB at 10/GB = 10 + 10/1024 = 10.009765625 -> 10.0098
    assert (charge.billed_quantity, charge.unit, str(charge.amount)) == (billed, "byte", amount)


@given(
    st.integers(min_value=0, max_value=10 * 2**30),
    st.sampled_from(["KB", "MB", "GB"]),
    st.integers(min_value=1, max_value=2**20),
    st.decimals(min_value=0, max_value=100, places=4),
)
def test_data_amount_is_billed_bytes_in_the_unit_times_price_rounded_once(
    quantity: int, unit: str, inc: int, price: Decimal
) -> None:
    charge = rate_per_unit("data", quantity, Rate("data", unit, price, inc, inc))
    assert charge.billed_quantity >= quantity and charge.billed_quantity - quantity < inc
    exact = charge.billed_quantity * price / MEASURED_PER_UNIT[unit]
    assert abs(charge.amount - exact) <= RATED_PRECISION / 2
