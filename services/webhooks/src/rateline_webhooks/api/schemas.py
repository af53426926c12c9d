"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rateline_webhooks.domain.endpoints import MAX_URL_LENGTH, PARTNER_EVENT_TYPES
from rateline_webhooks.domain.retry import DeliveryStatus

EndpointStatus = Literal["enabled", "disabled"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointCreate(Input):
    url: str = Field(
        min_length=1, max_length=MAX_URL_LENGTH, examples=["https://partner.example/hooks/rateline"]
    )
    event_types: list[str] = Field(
        max_length=len(PARTNER_EVENT_TYPES) * 4,
        description="Any of: " + ", ".join(PARTNER_EVENT_TYPES),
        examples=[["invoicing.invoice.finalized", "payment.payment.succeeded"]],
    )
    description: str | None = Field(default=None, max_length=500)


class Endpoint(BaseModel):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    status: EndpointStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    disabled_at: dt.datetime | None


class EndpointWithSecret(Endpoint):
    secret: str = Field(
        description="whsec_...: verify signatures with it. Shown only in this response."
    )


class EndpointPage(BaseModel):
    items: list[Endpoint]
    next_cursor: str | None = None


class Delivery(BaseModel):
    id: str
    endpoint_id: str
    event_id: str = Field(description="The webhook-id header: the same on every attempt")
    event_type: str
    status: DeliveryStatus
    attempt_count: int = Field(description="Attempts made so far, replays included")
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


class Attempt(BaseModel):
    number: int
    url: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_ms: int | None
    status_code: int | None
    error: str | None
    response_body: str | None


class DeliveryDetail(Delivery):
    payload: dict[str, Any] = Field(description="The signed JSON body (type, timestamp, data)")
    attempts: list[Attempt] = Field(description="Every attempt, oldest first")


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = None
