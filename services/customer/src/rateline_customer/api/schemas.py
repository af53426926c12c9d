"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rateline_shared.money import CurrencyCode


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    currency: CurrencyCode
    timezone: str = Field(examples=["Europe/Berlin"])
    bill_cycle_day: int = Field(default=1, description="1-28; the day each billing period starts")
    country: str = Field(default="DE", description="ISO 3166 alpha-2; default region for numbers")
    external_ref: str | None = Field(default=None, max_length=120, description="Your CRM's id")


class Account(BaseModel):
    id: str
    name: str
    currency: str
    timezone: str
    bill_cycle_day: int
    country: str
    status: str
    external_ref: str | None
    created_at: dt.datetime


class LineCreate(Input):
    msisdn: str = Field(description="E.164, or a national number in the account's country")
    activated_at: AwareDatetime | None = Field(default=None, description="With a time zone; defaults to now")


class Line(BaseModel):
    id: str
    account_id: str
    msisdn: str
    status: str
    activated_at: dt.datetime
    created_at: dt.datetime


class SubscriptionCreate(Input):
    account_id: str
    plan_id: str
    line_id: str | None = None
    start_date: dt.date


class Subscription(BaseModel):
    id: str
    account_id: str
    line_id: str | None
    plan_id: str
    start_date: dt.date
    status: str
    created_at: dt.datetime


class AccountPage(BaseModel):
    items: list[Account]
    next_cursor: str | None = None


class LinePage(BaseModel):
    items: list[Line]
    next_cursor: str | None = None


class SubscriptionPage(BaseModel):
    items: list[Subscription]
    next_cursor: str | None = None
