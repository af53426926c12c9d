"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rateline_payment.domain.collection import PaymentStatus
from rateline_shared.money import MoneyModel


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaymentMethodCreate(Input):
    account_id: str = Field(min_length=1, max_length=36)
    token: str = Field(
        min_length=1,
        max_length=200,
        description="The provider's token for the card (sandbox: tok_sandbox_success, "
        "tok_sandbox_declined, tok_sandbox_insufficient_funds)",
        examples=["tok_sandbox_success"],
    )
    default: bool | None = Field(
        default=None,
        description="Make it the account's default (the previous default steps down). "
        "Left out: it becomes the default only if the account has none.",
    )
    provider: Literal["sandbox"] = Field(default="sandbox", description="Who holds the token")


class PaymentMethod(BaseModel):
    id: str
    account_id: str
    provider: str
    brand: str
    last4: str
    is_default: bool
    created_at: dt.datetime


class PaymentMethodPage(BaseModel):
    items: list[PaymentMethod]
    next_cursor: str | None = None


class Payment(BaseModel):
    id: str
    invoice_id: str
    account_id: str
    amount: MoneyModel
    status: PaymentStatus
    payment_method_id: str | None
    provider: str | None
    provider_reference: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class PaymentPage(BaseModel):
    items: list[Payment]
    next_cursor: str | None = None
