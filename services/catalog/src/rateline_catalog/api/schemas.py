"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from rateline_shared.events.payloads import Allowance, OneTimeCharge, SpendCap, UsageRate
from rateline_shared.money import CurrencyCode, DecimalString, MoneyModel

StrictInt = Annotated[int, Field(strict=True)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TierIn(Input):
    up_to: DecimalString | None = Field(
        default=None, description="Inclusive upper bound in the rate's unit; null: the last, open tier"
    )
    unit_price: DecimalString = Field(description="Price per unit within the tier")
    flat_fee: DecimalString = Field(
        default=Decimal(0), description="Charged once when any quantity falls in the tier"
    )


class TariffRefIn(Input):
    category: str = Field(max_length=64, examples=["call"], description="The rating profile's Category")
    subject: str = Field(
        max_length=64,
        examples=["*line"],
        description="The rating profile's Subject; *line: the line's E.164 number without '+'",
    )


class RateIn(Input):
    service: str = Field(description="voice | sms | mms | data", examples=["voice"])
    unit: str = Field(
        description="voice: minute | second; sms, mms: message; data: KB | MB | GB (1024-based)",
        examples=["minute"],
    )
    price: DecimalString | None = Field(
        default=None,
        description="per_unit: price per unit; package: price per started package. Unused (absent "
        "or 0) for tariff, graduated and volume pricing",
    )
    first_increment: StrictInt = Field(
        default=1,
        description="Minimum billed quantity in the measured unit: voice seconds (60 in 60/60), "
        "data bytes; sms/mms: 1",
    )
    increment: StrictInt = Field(
        default=1,
        description="Billing step after the first, in the measured unit (voice seconds, data "
        "bytes); sms/mms: 1",
    )
    pricing: str = Field(
        default="per_unit", description="per_unit | tariff | graduated | volume | package"
    )
    tiers: list[TierIn] = Field(
        default_factory=list,
        max_length=100,
        description="graduated/volume: up_to strictly increasing, only the last open",
    )
    package_size: DecimalString | None = Field(default=None, description="package: units per package (> 0)")
    minimum_charge: DecimalString | None = Field(
        default=None, description="graduated/volume/package: least charged per period"
    )
    tariff: TariffRefIn | None = Field(default=None, description="tariff: the rating profile to use")


class AllowanceIn(Input):
    code: str = Field(max_length=64, examples=["VOICE-100"], description="Unique within the version")
    service: str = Field(description="voice | sms | mms | data; the version must rate it")
    quantity: DecimalString = Field(description="Per billing cycle, in unit (> 0)")
    unit: str = Field(description="minute | second | message | KB | MB | GB, valid for the service")
    destinations: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list,
        max_length=1000,
        description="E.164 prefixes (digits, no '+') the allowance covers; empty: all",
    )
    pooled: StrictBool = Field(default=False, description="Shared by the account's lines on this plan")
    rollover_cap: DecimalString | None = Field(
        default=None, description="Most unused quantity carried to the next cycle; null: none"
    )
    thresholds: list[StrictInt] = Field(
        default_factory=lambda: [80, 100], max_length=100, description="Percentages 1..100, ascending"
    )


class OneTimeChargeIn(Input):
    code: str = Field(max_length=64, examples=["ACTIVATION"])
    description: str = Field(max_length=200, examples=["Activation fee"])
    amount: DecimalString


class SpendCapIn(Input):
    amount: DecimalString = Field(description="Per billing cycle, in the plan's currency (> 0)")
    thresholds: list[StrictInt] = Field(
        default_factory=lambda: [80, 100], max_length=100, description="Percentages 1..100, ascending"
    )


class ComponentsIn(Input):
    recurring_fee: DecimalString = Field(description="Per billing period, a decimal string >= 0")
    billing_period: str = Field(default="monthly", description="monthly | quarterly | yearly")
    billing_timing: str = Field(default="advance", description="advance | arrears")
    one_time_charges: list[OneTimeChargeIn] = Field(default_factory=list, max_length=100)
    rates: list[RateIn] = Field(default_factory=list, max_length=10, description="At most one per service")
    allowances: list[AllowanceIn] = Field(default_factory=list, max_length=100)
    spend_cap: SpendCapIn | None = None


class PlanCreate(ComponentsIn):
    code: str = Field(max_length=200, description="Unique per tenant", examples=["MOBILE-S"])
    name: str = Field(min_length=1, max_length=200, examples=["Mobile S"])
    currency: CurrencyCode
    product_id: str | None = Field(default=None, max_length=64, description="A product of the tenant")
    effective_from: dt.datetime | None = Field(
        default=None, description="When version 1 applies from (RFC 3339 with offset); default: now"
    )


class PlanVersionCreate(ComponentsIn):
    effective_from: dt.datetime = Field(
        description="RFC 3339 with offset; not in the past (60 s skew allowed), after the "
        "previous version's"
    )
    currency: CurrencyCode | None = Field(
        default=None, description="Optional; must be the plan's currency (it never changes)"
    )


class PlanVersion(BaseModel):
    plan_id: str
    version: int
    effective_from: dt.datetime
    currency: str
    recurring_fee: MoneyModel
    billing_period: str
    billing_timing: str
    one_time_charges: list[OneTimeCharge]
    rates: list[UsageRate]
    allowances: list[Allowance]
    spend_cap: SpendCap | None
    published_at: dt.datetime


class PlanVersionPage(BaseModel):
    items: list[PlanVersion]
    next_cursor: str | None = None


class Plan(BaseModel):
    id: str
    code: str
    name: str
    product_id: str | None
    currency: str
    recurring_fee: MoneyModel = Field(description="The current version's (kept for first clients)")
    billing_period: str = Field(description="The current version's")
    rates: list[UsageRate] = Field(description="The current version's")
    status: str
    published_at: dt.datetime | None
    created_at: dt.datetime
    current_version: PlanVersion = Field(
        description="The version in force now: the latest whose effective_from has passed "
        "(the first while none has)"
    )


class PlanPage(BaseModel):
    items: list[Plan]
    next_cursor: str | None = None


class MigrationCreate(Input):
    to_version: StrictInt = Field(description="An existing version of the plan")
    effective_from: dt.datetime = Field(
        description="RFC 3339 with offset; not in the past, not before to_version's effective_from"
    )
    subscription_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=10_001,
        description="Subscriptions to move; null: every subscription of the plan that started "
        "before effective_from",
    )


class PlanMigration(BaseModel):
    id: str
    plan_id: str
    to_version: int
    effective_from: dt.datetime
    subscription_ids: list[str] | None
    created_at: dt.datetime


class PlanMigrationPage(BaseModel):
    items: list[PlanMigration]
    next_cursor: str | None = None


class ProductCreate(Input):
    code: str = Field(max_length=200, description="Unique per tenant", examples=["MOBILE"])
    name: str = Field(min_length=1, max_length=200, examples=["Mobile"])
    description: str | None = Field(default=None, max_length=2000)


class Product(BaseModel):
    id: str
    code: str
    name: str
    description: str | None
    created_at: dt.datetime


class ProductPage(BaseModel):
    items: list[Product]
    next_cursor: str | None = None


class TariffImport(BaseModel):
    id: str
    format: str
    currency: str
    timezone: str = Field(description="IANA zone the plan's time bands are read in")
    counts: dict[str, int] = Field(
        description="destinations, timings, rates, destination_rates, rating_plans, rating_profiles"
    )
    in_force: bool = Field(description="Whether this is the tenant's latest import (the one rating uses)")
    created_at: dt.datetime


class TariffImportPage(BaseModel):
    items: list[TariffImport]
    next_cursor: str | None


class QuoteIn(Input):
    category: str = Field(max_length=64, examples=["call"], description="call, sms, mms, data, generic, ...")
    subject: str = Field(
        max_length=200,
        examples=["1001"],
        description="A line's E.164 MSISDN (+...), a line id, a plan id, or a CGRateS subject",
    )
    destination: str = Field(examples=["1002"])
    start: dt.datetime = Field(description="Answer time, RFC 3339 with an offset")
    usage: Annotated[int, Field(strict=True, ge=0)] | Annotated[str, Field(max_length=40)] = Field(
        examples=[85],
        description="An integer: seconds for category call, units (messages, bytes) otherwise; "
        "or a duration string such as '1m25s'",
    )


class QuoteInterval(BaseModel):
    start: dt.datetime
    duration: DecimalString = Field(description="Billed, in the unit of the request's usage")
    rate: DecimalString = Field(description="Price per rate unit")
    rate_unit: DecimalString
    rate_increment: DecimalString
    increments: int
    increment_cost: DecimalString
    cost: DecimalString
    destination_rate: str
    timing: str


class Quote(BaseModel):
    cost: DecimalString
    currency: str
    rating_plan: str
    subject: str = Field(description="The subject whose profile rated it (after fallbacks)")
    connect_fee: DecimalString
    usage: DecimalString = Field(description="Billed usage (rounded up to whole increments)")
    max_cost_reached: bool
    disconnected: bool = Field(description="MaxCost *disconnect ended the call early")
    intervals: list[QuoteInterval]
    plan_id: str | None = Field(default=None, description="The plan whose tariff ref was used")
    plan_version: int | None = None
    line_id: str | None = Field(default=None, description="The line the subject named")
    subscription_id: str | None = Field(default=None, description="The line's subscription in force")
