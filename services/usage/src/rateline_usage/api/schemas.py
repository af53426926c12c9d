"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from rateline_shared.db import utcnow
from rateline_shared.money import DecimalString, MoneyModel
from rateline_usage.domain.mediation import MAX_BATCH_RECORDS, check_start


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UsageRecordIn(Input):
    """One usage record (CDR) as a switch or mediation device sends it."""

    source: str = Field(min_length=1, max_length=100, description="The sending system", examples=["switch-1"])
    record_id: str = Field(
        min_length=1, max_length=200, description="Unique per source, forever", examples=["cdr-0001"]
    )
    service: Literal["voice", "sms"]
    msisdn: str = Field(
        min_length=1, max_length=40, description="The subscriber's (calling) number, E.164 preferred",
        examples=["+4917112345678"],
    )
    destination: str | None = Field(default=None, max_length=64, examples=["+4930123456"])
    started_at: AwareDatetime = Field(description="With a time zone; at most 1 day in the future")
    duration_seconds: Annotated[int, Field(strict=True, ge=0)] | None = Field(
        default=None, description="voice only: whole seconds, >= 0"
    )
    count: Annotated[int, Field(strict=True, ge=1)] | None = Field(
        default=None, description="sms only: messages, >= 1 (default 1)"
    )

    @field_validator("started_at")
    @classmethod
    def _not_in_future(cls, value: dt.datetime) -> dt.datetime:
        problem = check_start(value, utcnow())
        if problem:
            raise ValueError(problem)
        return value


def batch_schema() -> dict[str, Any]:
    """OpenAPI schema of the batch body (the endpoint parses it itself, see records.py)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["records"],
        "properties": {
            "records": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_RECORDS,
                "items": UsageRecordIn.model_json_schema(),
            }
        },
    }


class RecordResult(BaseModel):
    index: int
    record_id: str
    status: Literal["rated", "rejected", "duplicate"]
    id: str = Field(description="The stored record (for a duplicate: the one stored first)")
    reason: str | None = Field(default=None, description="Reason code of a rejected record")
    message: str | None = None


class IngestResult(BaseModel):
    received: int
    rated: int
    rejected: int
    duplicates: int
    results: list[RecordResult]


class UsageRecord(BaseModel):
    id: str
    source: str
    record_id: str
    service: str
    msisdn: str
    destination: str | None
    started_at: dt.datetime
    quantity: DecimalString = Field(description="As measured, in `unit`")
    unit: str = Field(description="second | message")
    status: str = Field(description="rated | rejected")
    reason: str | None = Field(description="Reason code when rejected, e.g. unknown-line")
    reason_message: str | None
    line_id: str | None
    account_id: str | None
    subscription_id: str | None
    plan_id: str | None
    billed_quantity: DecimalString | None = Field(description="After increments, in `unit`")
    amount: MoneyModel | None = Field(description="Rated amount (4 decimals), not yet rounded")
    rated_at: dt.datetime | None
    created_at: dt.datetime


class UsageRecordPage(BaseModel):
    items: list[UsageRecord]
    next_cursor: str | None = None


class ReprocessRequest(Input):
    record_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH_RECORDS
    )
    all_rejected: bool | None = Field(default=None, description="true: the whole rejected queue")

    @model_validator(mode="after")
    def _one_selector(self) -> ReprocessRequest:
        if (self.record_ids is None) == (self.all_rejected is None):
            raise ValueError('give either "record_ids" or "all_rejected": true')
        if self.all_rejected is False:
            raise ValueError('"all_rejected" can only be true')
        return self


class ReprocessResult(BaseModel):
    considered: int = Field(description="Rejected records guided and rated again")
    rated: int
    rejected: int = Field(description="Still not ratable (with their new reason)")
    skipped: int = Field(description="Given ids that are unknown or not rejected")


class Rate(BaseModel):
    service: str
    unit: str
    price: DecimalString
    first_increment: int
    increment: int


class Subscriber(BaseModel):
    """What the usage projections know about a number."""

    msisdn: str
    line_id: str
    account_id: str
    activated_at: dt.datetime
    subscription_id: str | None
    plan_id: str | None
    start_date: dt.date | None
    plan_code: str | None = Field(description="null until the plan's publication has arrived")
    currency: str | None = Field(description="The plan's currency (what usage is rated in)")
    rates: list[Rate]
    account_currency: str | None = Field(description="null until the account's event arrived")
    timezone: str | None
