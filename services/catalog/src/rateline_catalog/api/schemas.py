"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rateline_shared.money import CurrencyCode, DecimalString, MoneyModel

StrictInt = Annotated[int, Field(strict=True)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateIn(Input):
    service: str = Field(description="voice | sms", examples=["voice"])
    unit: str = Field(description="voice: minute, sms: message", examples=["minute"])
    price: DecimalString = Field(description="Price per unit, a decimal string >= 0")
    first_increment: StrictInt = Field(
        default=1, description="voice: minimum billed seconds (60 in 60/60); sms: 1"
    )
    increment: StrictInt = Field(
        default=1, description="voice: billing step in seconds after the first (60 in 60/60); sms: 1"
    )


class PlanCreate(Input):
    code: str = Field(description="Unique per tenant", examples=["MOBILE-S"])
    name: str = Field(min_length=1, max_length=200, examples=["Mobile S"])
    currency: CurrencyCode
    recurring_fee: DecimalString = Field(description="Per billing period, a decimal string >= 0")
    billing_period: str = Field(default="monthly", description="monthly")
    rates: list[RateIn] = Field(default_factory=list, max_length=10)


class Rate(BaseModel):
    service: str
    unit: str
    price: DecimalString
    first_increment: int
    increment: int


class Plan(BaseModel):
    id: str
    code: str
    name: str
    currency: str
    recurring_fee: MoneyModel
    billing_period: str
    rates: list[Rate]
    status: str
    published_at: dt.datetime | None
    created_at: dt.datetime


class PlanPage(BaseModel):
    items: list[Plan]
    next_cursor: str | None = None


class TariffImport(BaseModel):
    id: str
    format: str
    currency: str
    counts: dict[str, int] = Field(
        description="destinations, timings, rates, destination_rates, rating_plans, rating_profiles"
    )
    created_at: dt.datetime


class QuoteIn(Input):
    category: str = Field(examples=["call"], description="call, sms, data, generic, ...")
    subject: str = Field(examples=["1001"])
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
