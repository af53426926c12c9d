"""Tariff plans: import a CGRateS tariff plan (zip of CSV files) and quote calls against it."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile, status
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog import repository as repo
from rateline_catalog.api.schemas import Quote, QuoteIn, QuoteInterval, TariffImport
from rateline_catalog.events import SERVICE, TARIFF_IMPORTED
from rateline_rating.tariffs.csvimport import (
    MAX_ZIP_BYTES,
    TariffImportError,
    parse_duration,
    parse_tariff_plan,
    read_zip,
    summary,
)
from rateline_rating.tariffs.engine import TariffError, get_cost
from rateline_rating.tariffs.model import NANOS_PER_SECOND, TariffPlan
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, PayloadTooLarge, Unprocessable, field_error
from rateline_shared.events import new_event, publish_in_transaction
from rateline_shared.events.payloads import TariffImported
from rateline_shared.money import is_currency

router = APIRouter(prefix="/v1", tags=["tariffs"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("catalog:read"))]
Write = Annotated[Principal, Depends(require_scope("catalog:write"))]
Session = Annotated[AsyncSession, Depends(uow)]

FORMATS = frozenset({"cgrates"})
VOICE_CATEGORY = "call"
MAX_USAGE_UNITS = 31 * 86_400 * NANOS_PER_SECOND  # bounds the work of one quote


def _invalid(field: str, code: str, message: str) -> Unprocessable:
    return Unprocessable(
        message, errors=[field_error(field, message, code)]
    )


@router.post(
    "/tariff-imports",
    status_code=status.HTTP_201_CREATED,
    response_model=TariffImport,
    summary="Import a CGRateS tariff plan",
)
async def import_tariffs(
    principal: Write,
    session: Session,
    file: Annotated[UploadFile, File(description="Zip of the tariff plan folder")],
    format: Annotated[str, Form(description="cgrates")],
    currency: Annotated[str, Form(description="ISO 4217 code the rates are in")] = "EUR",
) -> TariffImport:
    """Import a tariff plan from a ``multipart/form-data`` upload (``format=cgrates``,
    ``file`` = zip of ``Destinations``, ``Timings``, ``Rates``, ``DestinationRates``,
    ``RatingPlans`` and ``RatingProfiles`` ``.csv``, in any folder of the zip).

    The whole plan is checked before anything is stored: any problem gives a 422 listing each
    one as ``{file, line, reason}`` and nothing is imported. On success the import becomes the
    tenant's tariff plan in force (used by ``POST /v1/rating/quote``) and
    ``catalog.tariff.imported`` is emitted in the same transaction.
    """
    if format not in FORMATS:
        raise _invalid("format", "unknown-format", "format must be one of: cgrates")
    if not is_currency(currency):
        raise _invalid("currency", "unknown-currency", "must be an ISO 4217 currency code")
    data = await file.read(MAX_ZIP_BYTES + 1)
    if len(data) > MAX_ZIP_BYTES:
        raise PayloadTooLarge("the archive is larger than 20 MiB")
    try:
        files = read_zip(data)
        plan = parse_tariff_plan(files)
    except TariffImportError as err:
        raise Unprocessable(
            "the tariff plan is not valid; nothing was imported",
            errors=[{"file": i.file, "line": i.line, "reason": i.reason} for i in err.issues],
            slug="invalid-tariff-plan",
        ) from err
    now = utcnow()
    import_id = str(uuid.uuid4())
    counts = summary(plan)
    await repo.insert_tariff_import(
        session,
        {
            "id": import_id,
            "tenant": principal.tenant,
            "format": format,
            "currency": currency,
            "summary": counts,
            "created_at": now,
        },
        files,
    )
    await publish_in_transaction(
        session,
        new_event(
            service=SERVICE,
            type=TARIFF_IMPORTED,
            tenant=principal.tenant,
            subject=import_id,
            data=TariffImported(
                import_id=import_id,
                format=format,
                currency=currency,
                counts=counts,
                imported_at=now,
            ),
        ),
    )
    return TariffImport(
        id=import_id, format=format, currency=currency, counts=counts, created_at=now
    )


_PARSED: dict[str, TariffPlan] = {}
_PARSED_MAX = 32


def _remember(import_id: str, plan: TariffPlan) -> TariffPlan:
    """Keep parsed plans per process (an import never changes; oldest evicted first)."""
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[import_id] = plan
    return plan


def _usage_units(body: QuoteIn) -> tuple[int, int]:
    """(usage in engine units, units per reported unit): seconds for calls, units otherwise."""
    scale = NANOS_PER_SECOND if body.category == VOICE_CATEGORY else 1
    if isinstance(body.usage, int) or body.usage.strip().isdigit():
        units = int(body.usage) * scale
    else:
        try:
            units = parse_duration(body.usage)
        except ValueError as err:
            raise _invalid("usage", "invalid-usage", str(err)) from err
    if units > MAX_USAGE_UNITS:
        raise _invalid("usage", "usage-too-large", "usage must be at most 31 days")
    return units, scale


@router.post("/rating/quote", response_model=Quote, summary="Quote a call")
async def quote(body: QuoteIn, principal: Read, session: Session) -> Quote:
    """The cost of one call (or SMS, data, generic event) under the tenant's tariff plan in
    force, following CGRateS rating: rating profile by (category, subject) and activation
    time with fallback subjects, longest destination prefix, time bands, rate steps and
    increments, connect fee, rounding and MaxCost.

    ``usage`` is an integer (seconds for category ``call``, units otherwise) or a duration
    string (``1m25s``). 422 ``/unauthorized-destination`` when no rate covers the destination;
    422 ``/rating-profile-not-found`` when no profile matches; 422 ``/no-tariff-plan`` before
    any import.
    """
    if body.start.tzinfo is None:
        raise _invalid("start", "naive-datetime", "start needs a UTC offset (e.g. Z)")
    row = await repo.current_tariff_import(session, principal.tenant)
    if row is None:
        raise Unprocessable("no tariff plan has been imported", slug="no-tariff-plan")
    units, scale = _usage_units(body)
    plan = _PARSED.get(row["id"])
    if plan is None:
        files = await repo.files_of_import(session, principal.tenant, row["id"])
        plan = _remember(row["id"], parse_tariff_plan(files))
    try:
        result = get_cost(
            plan.profiles, body.category, body.subject, body.destination, body.start, units
        )
    except TariffError as err:
        raise Unprocessable(str(err), slug=err.slug) from err

    def scaled(value: int) -> Decimal:
        return (Decimal(value) / scale).normalize() if scale != 1 else Decimal(value)

    return Quote(
        cost=result.cost,
        currency=row["currency"],
        rating_plan=result.rating_plan_id,
        subject=result.subject,
        connect_fee=result.connect_fee,
        usage=scaled(result.usage),
        max_cost_reached=result.max_cost_reached,
        disconnected=result.disconnected,
        intervals=[
            QuoteInterval(
                start=i.start.astimezone(dt.UTC),
                duration=scaled(i.duration),
                rate=i.rate,
                rate_unit=scaled(i.rate_unit),
                rate_increment=scaled(i.rate_increment),
                increments=i.increments,
                increment_cost=i.increment_cost,
                cost=i.cost,
                destination_rate=i.destination_rate_id,
                timing=i.timing_id,
            )
            for i in result.intervals
        ],
    )
