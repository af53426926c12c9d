"""Plan, version and migration rules (pure functions)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_catalog.domain.plans import (
    AllowanceDraft,
    Components,
    MigrationDraft,
    OneTimeChargeDraft,
    PlanDraft,
    PlanInvalid,
    RateDraft,
    SpendCapDraft,
    TariffRefDraft,
    TierDraft,
    check_amount,
    check_components,
    check_effective_from,
    check_migration,
    check_plan,
    check_rates,
    check_thresholds,
    check_tiers,
    validate_new_version,
    validate_plan,
)
from rateline_catalog.domain.products import check_product
from rateline_catalog.domain.quoting import (
    QuoteRefused,
    SubscriptionRef,
    is_msisdn,
    line_at,
    started_at,
    subscription_at,
    tariff_profile,
    zone_of,
)
from rateline_shared.events.payloads import TariffRef, UsageRate

VOICE = RateDraft("voice", "minute", Decimal("0.10"), 60, 60)
SMS = RateDraft("sms", "message", Decimal("0.05"))
NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def draft(**changes: object) -> PlanDraft:
    plan: dict[str, object] = {k: changes.pop(k) for k in ("code", "name", "currency") if k in changes}
    components = Components(
        **{"recurring_fee": Decimal("10.00"), "billing_period": "monthly", "rates": (VOICE, SMS), **changes}  # type: ignore[arg-type]
    )
    values: dict[str, object] = {"code": "MOBILE-S", "name": "Mobile S", "currency": "EUR", **plan}
    return PlanDraft(components=components, **values)  # type: ignore[arg-type]


def fields(d: PlanDraft) -> list[str]:
    return [i.field for i in check_plan(d)]


def codes(issues: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(i.field, i.code) for i in issues]


def test_the_example_plan_is_valid() -> None:
    assert validate_plan(draft()) == draft()
    assert validate_plan(draft(rates=())).components.rates == ()


def test_every_issue_is_reported_at_once() -> None:
    bad = draft(
        code="",
        currency="EURO",
        recurring_fee=Decimal("-1"),
        billing_period="weekly",
        billing_timing="later",
        rates=(RateDraft("voice", "hour", Decimal("-0.1"), 0, 60),),
    )
    with pytest.raises(PlanInvalid) as err:
        validate_plan(bad)
    assert [i.field for i in err.value.issues] == [
        "code",
        "currency",
        "recurring_fee",
        "billing_period",
        "billing_timing",
        "rates.0.unit",
        "rates.0.first_increment",
        "rates.0.price",
    ]


@pytest.mark.parametrize(
    ("rate", "field", "code"),
    [
        (RateDraft("fax", "page", Decimal("1")), "rates.0.service", "unknown-service"),
        (RateDraft("data", "mb", Decimal("1")), "rates.0.unit", "wrong-unit"),
        (RateDraft("sms", "minute", Decimal("1")), "rates.0.unit", "wrong-unit"),
        (RateDraft("voice", "message", Decimal("1")), "rates.0.unit", "wrong-unit"),
        (RateDraft("voice", "minute", Decimal("1"), 60, 0), "rates.0.increment", "invalid-increment"),
        (RateDraft("voice", "minute", Decimal("1"), 3601, 1), "rates.0.first_increment", "invalid-increment"),
        (RateDraft("sms", "message", Decimal("1"), 1, 60), "rates.0.increment", "invalid-increment"),
        (RateDraft("mms", "message", Decimal("1"), 2, 1), "rates.0.first_increment", "invalid-increment"),
        (RateDraft("data", "MB", Decimal("1"), 1, 1024**3 + 1), "rates.0.increment", "invalid-increment"),
        (RateDraft("sms", "message", Decimal("0.0000001")), "rates.0.price", "too-many-decimals"),
        (RateDraft("sms", "message", None), "rates.0.price", "missing-price"),
        (RateDraft("sms", "message", Decimal(1), pricing="flat"), "rates.0.pricing", "unknown-pricing"),
        (RateDraft("voice", "minute", pricing="tariff"), "rates.0.tariff", "missing-tariff"),
        (
            RateDraft("voice", "minute", pricing="tariff", tariff=TariffRefDraft("call", "has space")),
            "rates.0.tariff.subject",
            "invalid-tariff-ref",
        ),
        (
            RateDraft("voice", "minute", Decimal(1), pricing="tariff", tariff=TariffRefDraft("call", "*line")),
            "rates.0.price",
            "unused-price",
        ),
        (
            RateDraft("sms", "message", Decimal(1), tariff=TariffRefDraft("sms", "*any")),
            "rates.0.tariff",
            "unused-tariff",
        ),
        (RateDraft("sms", "message", Decimal(1), tiers=(TierDraft(None, Decimal(1)),)), "rates.0.tiers", "unused-tiers"),
        (RateDraft("sms", "message", Decimal(1), package_size=Decimal(10)), "rates.0.package_size", "unused-package-size"),
        (RateDraft("sms", "message", Decimal(1), minimum_charge=Decimal(1)), "rates.0.minimum_charge", "unused-minimum-charge"),
        (RateDraft("data", "GB", pricing="graduated"), "rates.0.tiers", "missing-tiers"),
        (RateDraft("data", "GB", Decimal(5), pricing="package"), "rates.0.package_size", "missing-package-size"),
        (RateDraft("data", "GB", pricing="package", package_size=Decimal(10)), "rates.0.price", "missing-price"),
        (
            RateDraft("data", "GB", Decimal(5), pricing="package", package_size=Decimal(0)),
            "rates.0.package_size",
            "not-positive",
        ),
        (
            RateDraft("data", "GB", Decimal(5), pricing="package", package_size=Decimal(1), minimum_charge=Decimal(-1)),
            "rates.0.minimum_charge",
            "negative-amount",
        ),
    ],
)
def test_rate_rules(rate: RateDraft, field: str, code: str) -> None:
    assert codes(check_rates((rate,))) == [(field, code)]


def test_every_pricing_model_has_a_valid_form() -> None:
    tiers = (TierDraft(Decimal(100), Decimal("0.10")), TierDraft(None, Decimal("0.05"), Decimal(1)))
    rates = (
        RateDraft("voice", "second", pricing="tariff", tariff=TariffRefDraft("call", "*line"), first_increment=30),
        RateDraft("sms", "message", pricing="graduated", tiers=tiers, minimum_charge=Decimal(2)),
        RateDraft("mms", "message", Decimal(0), pricing="volume", tiers=tiers),
        RateDraft("data", "GB", Decimal(5), pricing="package", package_size=Decimal(1), increment=1024),
    )
    assert check_rates(rates) == []


def test_each_service_at_most_once() -> None:
    assert codes(check_rates((VOICE, SMS, VOICE))) == [("rates.2.service", "duplicate-service")]


def test_tier_rules() -> None:
    t = TierDraft
    assert codes(check_tiers("t", [t(None, Decimal(1)), t(None, Decimal(1))])) == [("t.0.up_to", "open-tier-not-last")]
    assert codes(check_tiers("t", [t(Decimal(10), Decimal(1))])) == [("t.0.up_to", "last-tier-bounded")]
    assert codes(check_tiers("t", [t(Decimal(10), Decimal(1)), t(Decimal(10), Decimal(1)), t(None, Decimal(1))])) == [
        ("t.1.up_to", "tiers-not-increasing")
    ]
    assert codes(check_tiers("t", [t(Decimal(0), Decimal(1)), t(None, Decimal(1))])) == [("t.0.up_to", "not-positive")]
    assert codes(check_tiers("t", [t(None, Decimal(-1), Decimal("0.1234567"))])) == [
        ("t.0.unit_price", "negative-amount"),
        ("t.0.flat_fee", "too-many-decimals"),
    ]
    assert codes(check_tiers("t", [t(Decimal(i + 1), Decimal(1)) for i in range(20)] + [t(None, Decimal(1))])) == [
        ("t", "too-many-tiers")
    ]


@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=0, max_size=8))
def test_bounded_tiers_are_valid_iff_strictly_increasing(bounds: list[int]) -> None:
    tiers = [TierDraft(Decimal(b), Decimal("0.1")) for b in bounds] + [TierDraft(None, Decimal("0.05"))]
    increasing = all(a < b for a, b in itertools.pairwise(bounds))
    assert (check_tiers("t", tiers) == []) == increasing


@given(st.lists(st.integers(min_value=-5, max_value=105), max_size=6))
def test_thresholds_are_percentages_strictly_ascending(values: list[int]) -> None:
    ok = all(1 <= v <= 100 for v in values) and values == sorted(set(values))
    assert (check_thresholds("x", values) == []) == ok


def allowance(**changes: object) -> AllowanceDraft:
    base = AllowanceDraft("VOICE-100", "voice", Decimal(100), "minute", destinations=("49", "33"))
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"code": "bad code"}, "allowances.0.code", "invalid-code"),
        ({"service": "fax"}, "allowances.0.service", "unknown-service"),
        ({"service": "data", "unit": "GB"}, "allowances.0.service", "no-rate-for-service"),
        ({"unit": "GB"}, "allowances.0.unit", "wrong-unit"),
        ({"quantity": Decimal(0)}, "allowances.0.quantity", "not-positive"),
        ({"quantity": Decimal(-1)}, "allowances.0.quantity", "negative-amount"),
        ({"destinations": ("+49",)}, "allowances.0.destinations.0", "invalid-destination"),
        ({"destinations": ("49", "49")}, "allowances.0.destinations.1", "duplicate-destination"),
        ({"destinations": tuple(str(10 + i) for i in range(201))}, "allowances.0.destinations", "too-many-destinations"),
        ({"rollover_cap": Decimal(-1)}, "allowances.0.rollover_cap", "negative-amount"),
        ({"thresholds": (0, 100)}, "allowances.0.thresholds.0", "invalid-threshold"),
        ({"thresholds": (90, 80)}, "allowances.0.thresholds", "thresholds-not-ascending"),
    ],
)
def test_allowance_rules(changes: dict[str, object], field: str, code: str) -> None:
    c = Components(Decimal(10), rates=(VOICE,), allowances=(allowance(**changes),))
    assert codes(check_components(c)) == [(field, code)]


def test_allowance_codes_are_unique_and_counted() -> None:
    c = Components(Decimal(10), rates=(VOICE,), allowances=(allowance(), allowance(destinations=())))
    assert codes(check_components(c)) == [("allowances.1.code", "duplicate-code")]
    many = tuple(allowance(code=f"A{i}") for i in range(21))
    assert ("allowances", "too-many-allowances") in codes(check_components(Components(Decimal(1), rates=(VOICE,), allowances=many)))
    valid = Components(
        Decimal(10), rates=(VOICE,), allowances=(allowance(pooled=True, rollover_cap=Decimal(50), thresholds=(50, 80, 100)),)
    )
    assert check_components(valid) == []


def test_one_time_charges_and_spend_cap() -> None:
    c = Components(
        Decimal(10),
        one_time_charges=(
            OneTimeChargeDraft("ACT", "Activation", Decimal("25.00")),
            OneTimeChargeDraft("ACT", " ", Decimal("-1")),
        ),
        spend_cap=SpendCapDraft(Decimal(0), (100, 50)),
    )
    assert codes(check_components(c)) == [
        ("one_time_charges.1.code", "duplicate-code"),
        ("one_time_charges.1.description", "blank"),
        ("one_time_charges.1.amount", "negative-amount"),
        ("spend_cap.amount", "not-positive"),
        ("spend_cap.thresholds", "thresholds-not-ascending"),
    ]
    many = tuple(OneTimeChargeDraft(f"C{i}", "x", Decimal(1)) for i in range(21))
    assert codes(check_components(Components(Decimal(1), one_time_charges=many))) == [
        ("one_time_charges", "too-many-charges")
    ]
    assert check_components(Components(Decimal(1), billing_period="yearly", billing_timing="arrears", spend_cap=SpendCapDraft(Decimal(50)))) == []


def test_code_shape() -> None:
    assert fields(draft(code="MOBILE-S_2.0")) == []
    assert fields(draft(code="-lead")) == ["code"]
    assert fields(draft(code="x" * 65)) == ["code"]
    assert fields(draft(code="has space")) == ["code"]
    assert fields(draft(name="  ")) == ["name"]


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
    assert [i.code for i in check_amount("x", Decimal("NaN"))] == ["invalid-amount"]


# --- effective dates -------------------------------------------------------------------------
@given(st.integers(min_value=-600, max_value=600))
def test_effective_from_allows_60_seconds_of_skew(offset: int) -> None:
    when = NOW + timedelta(seconds=offset)
    issues = check_effective_from(when, now=NOW, previous=NOW - timedelta(days=1))
    assert (issues == []) == (offset >= -60)
    if issues:
        assert codes(issues) == [("effective_from", "in-the-past")]


def test_effective_from_after_previous_and_aware() -> None:
    later = NOW + timedelta(days=30)
    assert codes(check_effective_from(later, now=NOW, previous=later)) == [("effective_from", "not-after-previous")]
    assert check_effective_from(later, now=NOW, previous=later - timedelta(microseconds=1)) == []
    assert codes(check_effective_from(datetime(2030, 2, 1), now=NOW, previous=None)) == [
        ("effective_from", "naive-datetime")
    ]


def test_a_new_version_keeps_the_currency_and_reports_everything() -> None:
    with pytest.raises(PlanInvalid) as err:
        validate_new_version(
            Components(Decimal(-1)),
            effective_from=NOW - timedelta(days=1),
            now=NOW,
            previous_effective_from=NOW - timedelta(days=10),
            plan_currency="EUR",
            currency="USD",
        )
    assert codes(err.value.issues) == [
        ("effective_from", "in-the-past"),
        ("currency", "currency-changed"),
        ("recurring_fee", "negative-amount"),
    ]
    ok = Components(Decimal(5))
    assert validate_new_version(
        ok, effective_from=NOW, now=NOW, previous_effective_from=NOW - timedelta(1), plan_currency="EUR", currency="EUR"
    ) is ok


def test_migration_rules() -> None:
    versions = {1: NOW - timedelta(days=90), 2: NOW + timedelta(days=10)}
    ok = MigrationDraft(2, NOW + timedelta(days=10), ("s1", "s2"))
    assert check_migration(ok, versions=versions, now=NOW) == []
    assert check_migration(MigrationDraft(1, NOW), versions=versions, now=NOW) == []
    assert codes(check_migration(MigrationDraft(3, NOW), versions=versions, now=NOW)) == [("to_version", "unknown-version")]
    assert codes(check_migration(MigrationDraft(1, NOW - timedelta(hours=1)), versions=versions, now=NOW)) == [
        ("effective_from", "in-the-past")
    ]
    assert codes(check_migration(MigrationDraft(2, NOW + timedelta(days=1)), versions=versions, now=NOW)) == [
        ("effective_from", "before-version-effective")
    ]
    assert codes(check_migration(MigrationDraft(1, NOW, ()), versions=versions, now=NOW)) == [("subscription_ids", "empty")]
    assert codes(check_migration(MigrationDraft(1, NOW, ("a", "a", " ")), versions=versions, now=NOW)) == [
        ("subscription_ids.1", "duplicate-subscription"),
        ("subscription_ids.2", "invalid-id"),
    ]
    assert codes(check_migration(MigrationDraft(1, datetime(2030, 1, 2)), versions=versions, now=NOW)) == [
        ("effective_from", "naive-datetime")
    ]


def test_product_rules() -> None:
    assert check_product("MOBILE", "Mobile", None) == []
    assert codes(check_product("bad code", " ", "")) == [
        ("code", "invalid-code"),
        ("name", "blank"),
        ("description", "blank"),
    ]


# --- quoting ---------------------------------------------------------------------------------
def tariff_rate(service: str, category: str, subject: str) -> UsageRate:
    unit = {"voice": "second", "sms": "message", "data": "KB"}[service]
    return UsageRate(service=service, unit=unit, pricing="tariff", tariff=TariffRef(category=category, subject=subject))


def test_tariff_profile_by_category() -> None:
    rates = [
        tariff_rate("voice", "call", "*line"),
        tariff_rate("data", "data", "*any"),
        UsageRate(service="sms", unit="message", price=Decimal("0.1")),
    ]
    got = tariff_profile(rates, "call", msisdn="+4915112345", version=2)
    assert (got.category, got.subject) == ("call", "4915112345")
    assert tariff_profile(rates, "data", msisdn=None, version=1).subject == "*any"
    with pytest.raises(QuoteRefused) as err:
        tariff_profile(rates, "call", msisdn=None, version=1)
    assert err.value.slug == "line-subject-needs-line"
    with pytest.raises(QuoteRefused) as err:
        tariff_profile(rates, "sms", msisdn=None, version=1)
    assert err.value.slug == "rate-not-tariff"
    with pytest.raises(QuoteRefused) as err:
        tariff_profile(rates, "mms", msisdn=None, version=1)
    assert err.value.slug == "no-rate-for-category"
    # a category of its own is matched against the tariff refs' categories
    custom = [tariff_rate("voice", "reseller1", "*any")]
    assert tariff_profile(custom, "reseller1", msisdn=None, version=1).category == "reseller1"


def test_subscription_and_line_in_force() -> None:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    utc = zone_of(None)
    subs = [
        SubscriptionRef("old", "p1", date(2029, 1, 1), t),
        SubscriptionRef("new", "p2", date(2030, 3, 1), t),
    ]
    assert subscription_at(subs, datetime(2029, 12, 31, tzinfo=UTC), utc).id == "old"  # type: ignore[union-attr]
    assert subscription_at(subs, datetime(2030, 3, 1, tzinfo=UTC), utc).id == "new"  # type: ignore[union-attr]
    assert subscription_at(subs, datetime(2028, 1, 1, tzinfo=UTC), utc) is None
    # a subscription starts at local midnight of the account's time zone (Berlin: 23:00 UTC before)
    berlin = zone_of("Europe/Berlin")
    assert started_at(subs[1], berlin) == datetime(2030, 2, 28, 23, tzinfo=UTC)
    assert subscription_at(subs, datetime(2030, 2, 28, 23, 30, tzinfo=UTC), berlin).id == "new"  # type: ignore[union-attr]
    assert subscription_at(subs, datetime(2030, 2, 28, 23, 30, tzinfo=UTC), utc).id == "old"  # type: ignore[union-attr]
    assert zone_of("Mars/Olympus") == utc and zone_of("") == utc
    assert line_at([("a", t), ("b", t + timedelta(days=5))], t + timedelta(days=1)) == "a"
    assert line_at([("a", t), ("b", t + timedelta(days=5))], t + timedelta(days=6)) == "b"
    assert line_at([("b", t + timedelta(days=5))], t) == "b"
    assert line_at([], t) is None
    assert is_msisdn("+4915112345") and not is_msisdn("4915112345") and not is_msisdn("+49 151") and not is_msisdn("+")
