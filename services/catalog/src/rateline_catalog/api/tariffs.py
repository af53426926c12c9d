"""Tariff plans: import a CGRateS tariff plan (zip of CSV files) and quote calls against it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile, status
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog import repository as repo
from rateline_catalog.api.mapping import current, rates_of, refs
from rateline_catalog.api.schemas import Quote, QuoteIn, QuoteInterval, TariffImport, TariffImportPage
from rateline_catalog.domain.quoting import (
    ProfileKey,
    QuoteRefused,
    SubscriptionRef,
    is_msisdn,
    line_at,
    started_at,
    subscription_at,
    tariff_profile,
    zone_of,
)
from rateline_catalog.events import SERVICE, TARIFF_IMPORTED
from rateline_rating.cycles import known_zone
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
from rateline_rating.versions import Migration, version_in_force
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound, PayloadTooLarge, Unprocessable, field_error
from rateline_shared.events import new_event, publish_in_transaction
from rateline_shared.events.payloads import TariffImported, encode_tariff_files
from rateline_shared.money import is_currency

router = APIRouter(prefix="/v1", tags=["tariffs"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("catalog:read"))]
Write = Annotated[Principal, Depends(require_scope("catalog:write"))]
Session = Annotated[AsyncSession, Depends(uow)]

FORMATS = frozenset({"cgrates"})
VOICE_CATEGORY = "call"
MAX_USAGE_UNITS = 31 * 86_400 * NANOS_PER_SECOND  # bounds the work of one quote
# catalog.tariff.imported carries the files (gzip + base64). NATS refuses messages over its
# max_payload (8 MB in our configurations) and one that cannot be published would block the
# outbox relay, so an import whose files would not fit comfortably is refused up front.
MAX_EVENT_FILES_B64 = 4 * 1024 * 1024


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
    timezone: Annotated[
        str, Form(description="IANA zone the timings (days, start times, holidays) are read in")
    ] = "UTC",
) -> TariffImport:
    """Import a tariff plan from a ``multipart/form-data`` upload (``format=cgrates``,
    ``file`` = zip of ``Destinations``, ``Timings``, ``Rates``, ``DestinationRates``,
    ``RatingPlans`` and ``RatingProfiles`` ``.csv``, in any folder of the zip).

    The whole plan is checked before anything is stored: any problem gives a 422 listing each
    one as ``{file, line, reason}`` and nothing is imported. On success the import becomes the
    tenant's tariff plan in force (used by ``POST /v1/rating/quote``) and
    ``catalog.tariff.imported`` is emitted in the same transaction; it carries the six files
    (``files_gzip_b64``: base64 of gzip of a JSON object ``{file name: CSV text}``) so the usage
    service compiles the same plan. A plan too large for one event (over 4 MiB once compressed
    and encoded) is refused with 413.

    ``timezone`` (CGRateS's ``default_timezone``, ``UTC`` by default) is the IANA zone whose
    wall clock the timings are read on: a band starting 08:00 starts at 08:00 local time, a
    weekday is the local weekday, and on DST days a call is split where the wall clock jumps
    (calls still last their real duration).
    """
    if format not in FORMATS:
        raise _invalid("format", "unknown-format", "format must be one of: cgrates")
    if not is_currency(currency):
        raise _invalid("currency", "unknown-currency", "must be an ISO 4217 currency code")
    if known_zone(timezone) != timezone:
        raise _invalid("timezone", "unknown-timezone", "must be an IANA time zone, e.g. Europe/Berlin")
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
    files_b64 = encode_tariff_files(files)
    if len(files_b64) > MAX_EVENT_FILES_B64:
        raise PayloadTooLarge(
            f"the tariff plan compresses to {len(files_b64)} bytes (base64), more than the "
            f"{MAX_EVENT_FILES_B64} that catalog.tariff.imported can carry; split it"
        )
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
            "timezone": timezone,
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
                files_gzip_b64=files_b64,
                timezone=timezone,
            ),
        ),
    )
    return TariffImport(
        id=import_id, format=format, currency=currency, timezone=timezone, counts=counts,
        in_force=True, created_at=now,
    )


def _import_view(row: RowMapping, in_force_id: str | None) -> TariffImport:
    return TariffImport(
        id=row["id"], format=row["format"], currency=row["currency"], timezone=row["timezone"],
        counts=row["summary"], in_force=row["id"] == in_force_id, created_at=row["created_at"],
    )


@router.get("/tariff-imports", response_model=TariffImportPage, summary="List tariff imports")
async def list_tariff_imports(
    principal: Read,
    session: Session,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TariffImportPage:
    """The tenant's tariff imports, oldest first (cursor pagination); ``in_force`` marks the
    latest, the one quotes and the usage service rate with."""
    rows, nxt = await repo.list_tariff_imports(session, principal.tenant, cursor=cursor, limit=limit)
    latest = await repo.current_tariff_import(session, principal.tenant)
    latest_id = latest["id"] if latest else None
    return TariffImportPage(items=[_import_view(r, latest_id) for r in rows], next_cursor=nxt)


@router.get("/tariff-imports/{import_id}", response_model=TariffImport, summary="Get a tariff import")
async def get_tariff_import(import_id: str, principal: Read, session: Session) -> TariffImport:
    """One tariff import of the tenant with its counts (404 if it does not exist)."""
    row = await repo.get_tariff_import(session, principal.tenant, import_id)
    if row is None:
        raise NotFound(f"tariff import {import_id} not found")
    latest = await repo.current_tariff_import(session, principal.tenant)
    return _import_view(row, latest["id"] if latest else None)


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


@dataclass(frozen=True, slots=True)
class Resolved:
    """Which rating profile a quote uses, and what the subject named."""

    profile: ProfileKey
    plan_id: str | None = None
    plan_version: int | None = None
    line_id: str | None = None
    subscription_id: str | None = None


async def _version_rates(session: AsyncSession, tenant: str, plan_id: str) -> list[RowMapping]:
    versions = (await repo.versions_of(session, tenant, [plan_id])).get(plan_id)
    if not versions:
        raise Unprocessable(f"plan {plan_id} is not in the catalog", slug="unknown-plan")
    return versions


async def _for_line(
    session: AsyncSession, tenant: str, line: RowMapping, body: QuoteIn
) -> Resolved:
    rows = await repo.subscriptions_of_line(session, tenant, line["id"])
    zone = zone_of(await repo.account_timezone(session, tenant, line["account_id"]))
    sub = subscription_at(
        [SubscriptionRef(r["id"], r["plan_id"], r["start_date"], r["activated_at"]) for r in rows],
        body.start,
        zone,
    )
    if sub is None:
        raise Unprocessable(
            f"line {line['id']} has no subscription in force at {body.start.isoformat()}",
            slug="no-subscription",
        )
    versions = await _version_rates(session, tenant, sub.plan_id)
    migrations = [
        Migration(
            m["to_version"],
            m["effective_from"],
            frozenset(m["subscription_ids"]) if m["subscription_ids"] is not None else None,
        )
        for m in await repo.migrations_of(session, tenant, sub.plan_id)
    ]
    number = version_in_force(
        refs(versions), migrations, subscription_id=sub.id, started=started_at(sub, zone), at=body.start
    )
    version = next(v for v in versions if v["version"] == number)
    profile = tariff_profile(rates_of(version), body.category, msisdn=line["msisdn"], version=number or 0)
    return Resolved(profile, sub.plan_id, number, line["id"], sub.id)


async def _resolve(session: AsyncSession, tenant: str, body: QuoteIn) -> Resolved:
    """The subject as a line's MSISDN, a line id, a plan id, or (else) a CGRateS subject."""
    subject = body.subject
    line: RowMapping | None = None
    if is_msisdn(subject):
        candidates = await repo.lines_with_msisdn(session, tenant, subject)
        chosen = line_at([(c["id"], c["activated_at"]) for c in candidates], body.start)
        line = next((c for c in candidates if c["id"] == chosen), None)
    else:
        line = await repo.get_line(session, tenant, subject)
    try:
        if line is not None:
            return await _for_line(session, tenant, line, body)
        plan = await repo.get_plan(session, tenant, subject)
        if plan is not None:
            version = current(await _version_rates(session, tenant, plan["id"]), utcnow())
            profile = tariff_profile(
                rates_of(version), body.category, msisdn=None, version=version["version"]
            )
            return Resolved(profile, plan["id"], version["version"])
    except QuoteRefused as err:
        raise Unprocessable(err.message, slug=err.slug) from err
    return Resolved(ProfileKey(body.category, subject))


@router.post("/rating/quote", response_model=Quote, summary="Quote a call")
async def quote(body: QuoteIn, principal: Read, session: Session) -> Quote:
    """The cost of one call (or SMS, data session, generic event) under the tenant's tariff
    plan in force, following CGRateS rating: rating profile by (category, subject) and
    activation time with fallback subjects, longest destination prefix, time bands, rate steps
    and increments, connect fee, rounding and MaxCost.

    ``subject`` may name, in this order:

    * a line, by its E.164 MSISDN (``+...``) or its id: the line's subscription in force at
      ``start`` gives the plan, the subscription's version at ``start`` (after migrations) its
      rate for the category's service (``call``: voice, ``sms``, ``mms``, ``data``), which must
      use ``tariff`` pricing; its tariff ref gives the profile, subject ``*line`` being the
      MSISDN without "+";
    * a plan, by its id: the same with the version in force now (``*line`` cannot be resolved
      without a line: 422 ``/line-subject-needs-line``);
    * anything else: a CGRateS subject, as is.

    ``usage`` is an integer (seconds for category ``call``; units, e.g. messages or bytes, as
    the imported rates define them otherwise) or a duration string (``1m25s``). 422
    ``/unauthorized-destination`` when no rate covers the destination;
    ``/rating-profile-not-found`` when no profile matches; ``/no-tariff-plan`` before any
    import; ``/no-subscription``, ``/no-rate-for-category``, ``/rate-not-tariff`` when a line
    or plan cannot be quoted.
    """
    if body.start.tzinfo is None:
        raise _invalid("start", "naive-datetime", "start needs a UTC offset (e.g. Z)")
    row = await repo.current_tariff_import(session, principal.tenant)
    if row is None:
        raise Unprocessable("no tariff plan has been imported", slug="no-tariff-plan")
    units, scale = _usage_units(body)
    resolved = await _resolve(session, principal.tenant, body)
    plan = _PARSED.get(row["id"])
    if plan is None:
        files = await repo.files_of_import(session, principal.tenant, row["id"])
        plan = _remember(row["id"], parse_tariff_plan(files))
    try:
        result = get_cost(
            plan.profiles,
            resolved.profile.category,
            resolved.profile.subject,
            body.destination,
            body.start,
            units,
            timezone=row["timezone"],
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
        plan_id=resolved.plan_id,
        plan_version=resolved.plan_version,
        line_id=resolved.line_id,
        subscription_id=resolved.subscription_id,
    )
