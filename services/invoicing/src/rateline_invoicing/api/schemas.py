"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import RowMapping

from rateline_invoicing.domain.invoices import in_minor_units
from rateline_shared.money import DecimalString, MoneyModel, minor_units

BillRunStatus = Literal["pending", "running", "completed", "completed_with_errors"]
InvoiceStatus = Literal["draft", "finalized", "paid"]
LineKind = Literal["recurring", "one_time", "usage", "late_usage", "adjustment"]


def money(amount: Decimal, currency: str) -> MoneyModel:
    """An invoice amount (already rounded when it was stored) shown with the currency's minor
    unit: 10.200000 -> "10.20". Exact: it raises rather than round a second time."""
    return MoneyModel(amount=in_minor_units(amount, currency), currency=currency)


def rated(amount: Decimal, currency: str) -> MoneyModel:
    """A rated (unrounded) amount without storage padding but with at least the minor unit:
    0.200000000000 -> "0.20", 0.045000000000 -> "0.045". Never rounds."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    value = amount.normalize()
    padded = value.quantize(exponent, rounding=decimal.ROUND_DOWN)
    return MoneyModel(amount=padded if padded == value else value, currency=currency)


def plain(value: Decimal) -> Decimal:
    """A quantity without storage padding: 2.000000 -> 2."""
    return value.normalize() if value else Decimal(0)


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- bill runs --------------------------------------------------------------------------------
class BillRunCreate(Input):
    period_start: dt.date = Field(description="First local day of the period", examples=["2026-10-01"])
    period_end: dt.date = Field(
        description="Day after the last local day (exclusive)", examples=["2026-11-01"]
    )
    bill_cycle_day: int | None = Field(
        default=None, ge=1, le=28, description="Only accounts with this bill-cycle day"
    )
    auto_finalize: bool = Field(default=False, description="Finalize each invoice the run creates")


class BillRunError(BaseModel):
    account_id: str
    code: str
    reason: str


class BillRun(BaseModel):
    id: str
    status: BillRunStatus
    period_start: dt.date
    period_end: dt.date
    bill_cycle_day: int | None
    auto_finalize: bool
    accounts_total: int
    accounts_done: int
    invoices_created: int
    errors: list[BillRunError]
    created_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None

    @classmethod
    def of(cls, row: RowMapping) -> BillRun:
        return cls.model_validate(dict(row))


class BillRunPage(BaseModel):
    items: list[BillRun]
    next_cursor: str | None = None


# --- invoices ---------------------------------------------------------------------------------
class InvoiceLine(BaseModel):
    kind: LineKind = Field(
        description=(
            "recurring: a monthly/quarterly/yearly fee (covered dates in the description); "
            "one_time: a one-time charge on the subscription's first invoice; usage: this "
            "period's usage of a service or a tiered/package component; late_usage: usage of an "
            "earlier, already invoiced period that arrived after it was invoiced; adjustment: "
            "re-rating of usage already invoiced (may be negative)"
        )
    )
    description: str
    service: str | None
    subscription_id: str | None
    quantity: DecimalString = Field(
        description="In `unit`; for adjustment lines the number of records adjusted"
    )
    unit: str
    amount: MoneyModel


class Invoice(BaseModel):
    id: str
    number: str | None = Field(description="Assigned when finalized; null while draft")
    account_id: str
    bill_run_id: str | None
    status: InvoiceStatus
    currency: str
    period_start: dt.date
    period_end: dt.date = Field(description="Exclusive: the day after the period's last day")
    lines: list[InvoiceLine]
    subtotal: MoneyModel
    total: MoneyModel
    amount_paid: MoneyModel
    amount_due: MoneyModel
    issued_at: dt.datetime | None
    due_date: dt.date | None
    paid_at: dt.datetime | None
    last_payment_error: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: RowMapping, lines: list[RowMapping]) -> Invoice:
        cur = row["currency"]
        due = max(row["total"] - row["amount_paid"], Decimal(0))
        return cls(
            id=row["id"],
            number=row["number"],
            account_id=row["account_id"],
            bill_run_id=row["bill_run_id"],
            status=row["status"],
            currency=cur,
            period_start=row["period_start"],
            period_end=row["period_end"],
            lines=[
                InvoiceLine(
                    kind=ln["kind"],
                    description=ln["description"],
                    service=ln["service"],
                    subscription_id=ln["subscription_id"],
                    quantity=plain(ln["quantity"]),
                    unit=ln["unit"],
                    amount=money(ln["amount"], ln["currency"]),
                )
                for ln in lines
            ],
            subtotal=money(row["subtotal"], cur),
            total=money(row["total"], cur),
            amount_paid=money(row["amount_paid"], cur),
            amount_due=money(due, cur),
            issued_at=row["issued_at"],
            due_date=row["due_date"],
            paid_at=row["paid_at"],
            last_payment_error=row["last_payment_error"],
            created_at=row["created_at"],
        )


class InvoicePage(BaseModel):
    items: list[Invoice]
    next_cursor: str | None = None


# --- billable usage ---------------------------------------------------------------------------
class ServiceUsage(BaseModel):
    service: str
    unit: str
    records: int
    uninvoiced: int
    billed_quantity: DecimalString
    chargeable_quantity: DecimalString = Field(
        description="Billed quantity less what allowances covered (tiered/package components "
        "are priced on it at invoice time)"
    )
    amount: MoneyModel = Field(
        description="Sum of rated amounts (rated precision, unrounded); 0 for tiered/package "
        "components, which are priced on the period's total when invoiced"
    )


class KnownPlan(BaseModel):
    code: str
    name: str
    currency: str
    recurring_fee: DecimalString
    version: int = Field(description="The latest version invoicing knows")


class KnownSubscription(BaseModel):
    subscription_id: str
    plan_id: str
    start_date: dt.date
    plan: KnownPlan | None = Field(
        description="The plan's latest known version; null until the catalog published it"
    )


class BillableUsage(BaseModel):
    account_id: str
    currency: str
    timezone: str
    period_start: dt.date
    period_end: dt.date
    period_start_utc: dt.datetime
    period_end_utc: dt.datetime
    records: int
    uninvoiced: int
    services: list[ServiceUsage]
    subscriptions: list[KnownSubscription]
    pending_adjustments: int = Field(
        description="Re-rating adjustments of already invoiced usage (any period) that the "
        "account's next invoice will carry"
    )
