"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rateline_shared.db import utcnow
from rateline_shared.money import DecimalString, MoneyModel
from rateline_usage.domain.formats import ISO, MAPPABLE_FIELDS
from rateline_usage.domain.mediation import MAX_BATCH_RECORDS, check_start


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UsageRecordIn(Input):
    """One usage record (CDR) as a switch or mediation device sends it."""

    source: str = Field(min_length=1, max_length=100, description="The sending system", examples=["switch-1"])
    record_id: str = Field(
        min_length=1, max_length=200, description="Unique per source, forever", examples=["cdr-0001"]
    )
    service: Literal["voice", "sms", "mms", "data"]
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
        default=None, description="sms/mms only: messages, >= 1 (default 1)"
    )
    bytes_up: Annotated[int, Field(strict=True, ge=0)] | None = Field(
        default=None, description="data only: bytes sent by the subscriber (e.g. RADIUS Acct-Input-Octets)"
    )
    bytes_down: Annotated[int, Field(strict=True, ge=0)] | None = Field(
        default=None, description="data only: bytes received by the subscriber (e.g. RADIUS Acct-Output-Octets)"
    )
    quantity: Annotated[int, Field(strict=True, ge=0)] | None = Field(
        default=None, description="data only: the session's total bytes (instead of bytes_up/bytes_down)"
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
    row: int | None = Field(default=None, description="CSV/file: the data row (1 = first after any header)")
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
    service: str | None = Field(description="null only for a malformed import row")
    msisdn: str | None = Field(description="null only for a malformed import row")
    destination: str | None
    started_at: dt.datetime | None = Field(description="null only for a malformed import row")
    quantity: DecimalString | None = Field(description="As measured, in `unit`")
    unit: str | None = Field(description="second | message | byte")
    status: str = Field(description="rated | rejected")
    reason: str | None = Field(description="Reason code when rejected, e.g. unknown-line")
    reason_message: str | None
    line_id: str | None
    account_id: str | None
    subscription_id: str | None
    plan_id: str | None
    plan_version: int | None = Field(default=None, description="The plan version in force at the record's start")
    pricing: str | None = Field(
        default=None, description="per_unit | tariff | graduated | volume | package (the last three: amount 0)"
    )
    billed_quantity: DecimalString | None = Field(description="After increments, in `unit`")
    allowance_code: str | None = Field(default=None, description="The allowance the record consumed")
    allowance_used: DecimalString | None = Field(default=None, description="Covered by the allowance, in `unit`")
    chargeable_quantity: DecimalString | None = Field(
        default=None, description="billed_quantity minus allowance_used, in `unit`"
    )
    amount: MoneyModel | None = Field(
        description="Rated amount (per unit: 4 decimals; tariff: the tariff's rounding), not yet rounded to the "
        "currency's minor unit"
    )
    rating_plan: str | None = Field(default=None, description="tariff: the rating plan that priced it")
    tariff_intervals: list[dict[str, Any]] | None = Field(
        default=None,
        description="tariff: the engine's intervals (start, duration, destination_rate, timing, rate, rate_unit, "
        "rate_increment, increments, increment_cost, cost, allowance_increments); durations in `unit`",
    )
    rated_at: dt.datetime | None
    import_id: str | None = Field(default=None, description="The file import it came from")
    raw: str | None = Field(default=None, description="The file row it came from (imports)")
    corrections: list[dict[str, Any]] | None = Field(
        default=None, description="Audit of corrections, oldest first: at, by, original, changes"
    )
    created_at: dt.datetime


class UsageRecordPage(BaseModel):
    items: list[UsageRecord]
    next_cursor: str | None = None


class ReprocessRequest(Input):
    record_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH_RECORDS
    )
    all_rejected: bool | None = Field(default=None, description="true: the whole rejected queue")
    reason: str | None = Field(default=None, max_length=40, description="Only rejected with this reason")
    source: str | None = Field(default=None, max_length=100, description="Only from this source")
    since: AwareDatetime | None = Field(default=None, description="Only received at or after this")

    @model_validator(mode="after")
    def _one_selector(self) -> ReprocessRequest:
        queue = self.all_rejected is not None or any(
            v is not None for v in (self.reason, self.source, self.since)
        )
        if (self.record_ids is not None) == queue:
            raise ValueError(
                'give either "record_ids", or "all_rejected": true and/or the filters reason, source, since'
            )
        if self.all_rejected is False:
            raise ValueError('"all_rejected" can only be true')
        return self


class RecordCorrection(Input):
    """Corrected fields of a rejected record (checked like intake); give at least one."""

    service: Literal["voice", "sms", "mms", "data"] | None = None
    msisdn: str | None = Field(default=None, min_length=1, max_length=40)
    destination: str | None = Field(default=None, min_length=1, max_length=64)
    started_at: AwareDatetime | None = Field(default=None, description="With a time zone")
    duration_seconds: Annotated[int, Field(strict=True, ge=0)] | None = None
    count: Annotated[int, Field(strict=True, ge=1)] | None = None
    bytes_up: Annotated[int, Field(strict=True, ge=0)] | None = None
    bytes_down: Annotated[int, Field(strict=True, ge=0)] | None = None
    quantity: Annotated[int, Field(strict=True, ge=0)] | None = Field(default=None, description="data: bytes")

    @field_validator("started_at")
    @classmethod
    def _not_in_future(cls, value: dt.datetime | None) -> dt.datetime | None:
        problem = check_start(value, utcnow()) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _something(self) -> RecordCorrection:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("give at least one field to correct")
        return self


class ColumnMappingIn(Input):
    """How to read a CSV: each record field from a column name (with a header) or index."""

    name: str = Field(min_length=1, max_length=100, examples=["sbc-export"])
    header: bool = Field(default=True, description="The file starts with a header line")
    columns: dict[str, str | Annotated[int, Field(ge=0)]] = Field(
        description="field -> column name or 0-based index; fields: " + ", ".join(MAPPABLE_FIELDS),
        examples=[{"record_id": "call_id", "msisdn": "caller", "started_at": "start", "duration_seconds": "secs"}],
    )
    service: Literal["voice", "sms", "mms", "data"] | None = Field(
        default=None, description="The service of every row when no column holds it"
    )
    time_format: str = Field(
        default=ISO, min_length=1, max_length=64,
        description='"iso" (ISO 8601) or a strptime format such as "%d.%m.%Y %H:%M:%S"',
    )
    timezone: str = Field(default="UTC", description="IANA zone of times without an offset")

    @model_validator(mode="after")
    def _consistent(self) -> ColumnMappingIn:
        unknown = sorted(set(self.columns) - set(MAPPABLE_FIELDS))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; fields are {list(MAPPABLE_FIELDS)}")
        missing = [f for f in ("record_id", "msisdn", "started_at") if f not in self.columns]
        if "service" not in self.columns and self.service is None:
            missing.append("service (a column or the constant service)")
        if missing:
            raise ValueError(f"columns must include {missing}")
        if not self.header and any(isinstance(c, str) for c in self.columns.values()):
            raise ValueError("without a header, columns are 0-based indexes")
        if self.time_format != ISO and "%" not in self.time_format:
            raise ValueError('time_format is "iso" or a strptime format')
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        return self


class ColumnMappingOut(BaseModel):
    id: str
    name: str
    header: bool
    columns: dict[str, str | int]
    service: str | None
    time_format: str
    timezone: str
    created_at: dt.datetime


class ColumnMappingPage(BaseModel):
    items: list[ColumnMappingOut]
    next_cursor: str | None = None


class ImportSummary(BaseModel):
    id: str
    format: Literal["asterisk", "freeswitch", "mapping"]
    source: str
    mapping_id: str | None
    timezone: str
    received: int = Field(description="Data rows in the file")
    rated: int
    rejected: int = Field(description="Stored rejected, including the malformed rows")
    malformed: int = Field(description="Rows that are not valid records (stored rejected `malformed`)")
    duplicates: int
    created_at: dt.datetime


class ImportResult(ImportSummary):
    results: list[RecordResult] = Field(description="One per data row, in file order")


class ReprocessResult(BaseModel):
    considered: int = Field(description="Rejected records guided and rated again")
    rated: int
    rejected: int = Field(description="Still not ratable (with their new reason)")
    skipped: int = Field(description="Given ids that are unknown or not rejected")


class TariffRefOut(BaseModel):
    category: str
    subject: str


class Rate(BaseModel):
    service: str
    unit: str
    price: DecimalString
    first_increment: int
    increment: int
    pricing: str = "per_unit"
    tariff: TariffRefOut | None = None


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
    plan_version: int | None = Field(default=None, description="The version in force now")
    currency: str | None = Field(description="The plan's currency (what usage is rated in)")
    rates: list[Rate]
    account_currency: str | None = Field(description="null until the account's event arrived")
    timezone: str | None


class BalanceDisplay(BaseModel):
    """The same balance in the allowance's own unit (minute, MB, ...)."""

    unit: str
    granted: DecimalString
    rollover: DecimalString
    used: DecimalString
    remaining: DecimalString


class AllowanceBalance(BaseModel):
    allowance_code: str
    service: str
    pooled: bool
    owner: Literal["subscription", "account"] = Field(description="account: pooled across the account's lines")
    subscription_id: str | None = Field(description="null for a pooled balance")
    account_id: str
    plan_id: str
    plan_version: int = Field(description="The version whose allowance is shown")
    period_start: dt.date = Field(description="The account's billing cycle (local dates)")
    period_end: dt.date = Field(description="Exclusive")
    granted: DecimalString = Field(description="quantity + rollover, in `unit`")
    rollover: DecimalString = Field(description="Carried over from the previous cycle, in `unit`")
    used: DecimalString
    remaining: DecimalString
    unit: Literal["second", "message", "byte"]
    display: BalanceDisplay


class BalanceList(BaseModel):
    at: dt.datetime = Field(description="The instant whose billing cycles are shown")
    items: list[AllowanceBalance]


# --- re-rating jobs -------------------------------------------------------------------------
MAX_RERATING_SPAN = dt.timedelta(days=366)


class ReratingJobIn(Input):
    """A re-rating job: exactly one scope, a period of record starts and a reason."""

    line_id: str | None = Field(default=None, min_length=1, max_length=36, description="The line's records")
    account_id: str | None = Field(default=None, min_length=1, max_length=36, description="The account's records")
    plan_id: str | None = Field(default=None, min_length=1, max_length=36, description="Records rated on the plan")
    tariff: StrictBool | None = Field(default=None, description="true: every record priced by a tariff")
    started_from: AwareDatetime = Field(description="Records that started at or after this (with an offset)")
    started_before: AwareDatetime = Field(
        description="...and before this; at most 366 days after started_from"
    )
    reason: str = Field(min_length=1, max_length=200, description="Why (sent on with the adjustments)",
                        examples=["RT_120C peak rate corrected"])

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the reason must not be blank")
        return value

    @field_validator("started_before")
    @classmethod
    def _period(cls, value: dt.datetime, info: ValidationInfo) -> dt.datetime:
        start = info.data.get("started_from")
        if start is not None:
            if value <= start:
                raise ValueError("started_before must be after started_from")
            if value - start > MAX_RERATING_SPAN:
                raise ValueError("the period spans at most 366 days")
        return value

    @model_validator(mode="after")
    def _one_scope(self) -> ReratingJobIn:
        if self.tariff is False:
            raise ValueError('"tariff" can only be true')
        given = [n for n in ("line_id", "account_id", "plan_id", "tariff") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError('give exactly one scope: "line_id", "account_id", "plan_id" or "tariff": true')
        return self

    def scope(self) -> tuple[str, str | None]:
        """``(kind, id)``: line | account | plan with its id, or ``("tariff", None)``."""
        for kind in ("line", "account", "plan"):
            value = getattr(self, f"{kind}_id")
            if value is not None:
                return kind, value
        return "tariff", None


class ReratingScope(BaseModel):
    kind: Literal["line", "account", "plan", "tariff"]
    id: str | None = Field(description="The line, account or plan; null for tariff")


class ReratingPeriod(BaseModel):
    started_from: dt.datetime
    started_before: dt.datetime = Field(description="Exclusive")


class ReratingJob(BaseModel):
    id: str
    status: Literal["queued", "running", "completed", "failed"]
    scope: ReratingScope
    period: ReratingPeriod
    reason: str
    total: int = Field(description="Rated records in scope when the job was created")
    processed: int = Field(description="Records re-rated so far (changed, unchanged or skipped)")
    changed: int = Field(description="Records whose amount or chargeable quantity changed (one adjustment each)")
    skipped: int = Field(description="Records that cannot be rated now, left unchanged")
    skipped_reasons: dict[str, int] = Field(description="Skipped records per reason, e.g. unknown-destination")
    deltas: dict[str, DecimalString] = Field(description="Sum of the adjustments per currency (new - old)")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None = Field(description="The last failure of a chunk (the job's error when failed)")


class ReratingJobPage(BaseModel):
    items: list[ReratingJob]
    next_cursor: str | None = None


class ReratingAdjustment(BaseModel):
    usage_record_id: str = Field(description="The usage record (its `id`)")
    source: str
    record_id: str
    account_id: str
    subscription_id: str
    plan_id: str
    service: str
    started_at: dt.datetime
    currency: str
    old_amount: DecimalString
    new_amount: DecimalString
    delta: DecimalString = Field(description="new_amount - old_amount")
    old_chargeable_quantity: DecimalString
    new_chargeable_quantity: DecimalString
    previous: dict[str, Any] = Field(
        description="The record's rating before: billed_quantity, plan_version, rating_plan, tariff_intervals, "
        "rated_at"
    )
    created_at: dt.datetime


class ReratingAdjustmentPage(BaseModel):
    items: list[ReratingAdjustment]
    next_cursor: str | None = None
