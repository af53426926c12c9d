"""File imports (Asterisk, FreeSWITCH, mapped CSV) and saved column mappings.

A file is a batch of real records: a malformed row does not refuse the file, it is stored
rejected ``malformed`` with its raw row (to be corrected and re-processed); the other rows
take the same intake path as JSON records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from sqlalchemy.engine import RowMapping

from rateline_shared.db import utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, Conflict, NotFound, ProblemDocument, Unprocessable, field_error
from rateline_usage import intake
from rateline_usage import repository as repo
from rateline_usage.api.deps import Read, Session, Settings, Write
from rateline_usage.api.records import (
    check_values,
    decode_text,
    header_problem,
    result_of,
    to_record_in,
    too_many_rows,
)
from rateline_usage.api.schemas import (
    ColumnMappingIn,
    ColumnMappingOut,
    ColumnMappingPage,
    ImportResult,
    ImportSummary,
)
from rateline_usage.domain import formats
from rateline_usage.domain.mediation import MAX_BATCH_RECORDS, check_start, quantity_of, service_field_issues
from rateline_usage.domain.rating import SERVICES
from rateline_usage.ids import new_ids

router = APIRouter(prefix="/v1/usage", tags=["usage imports"], responses=PROBLEM_RESPONSES)

Format = Literal["asterisk", "freeswitch", "mapping"]


def _problem(field: str, message: str) -> Unprocessable:
    return Unprocessable(
        message,
        errors=[{"field": field, "location": "query", "code": "value_error", "message": message}],
        slug="validation-error",
        title="Validation failed",
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _problem("timezone", f"unknown time zone {name!r}") from exc


def _mapping(row: RowMapping) -> formats.ColumnMapping:
    return formats.ColumnMapping(
        columns=row["columns"],
        header=row["header"],
        time_format=row["time_format"],
        timezone=ZoneInfo(row["timezone"]),
        service=row["service"],
    )


_QUANTITY_FIELDS = ("duration_seconds", "count", "bytes_up", "bytes_down", "quantity")


def _partial(values: dict[str, Any], unreadable: set[str]) -> dict[str, Any]:
    """The fields of a malformed row that are valid on their own (kept on the stored record).

    The quantity is kept only when every quantity field of the row could be read.
    """
    out: dict[str, Any] = {}
    service = values.get("service")
    if service in SERVICES:
        out["service"] = service
    msisdn = values.get("msisdn")
    if isinstance(msisdn, str) and 1 <= len(msisdn) <= 40:
        out["msisdn"] = msisdn
    destination = values.get("destination")
    if isinstance(destination, str) and len(destination) <= 64:
        out["destination"] = destination
    started = values.get("started_at")
    if isinstance(started, datetime) and check_start(started, utcnow()) is None:
        out["started_at"] = started
    given = {k: values.get(k) for k in _QUANTITY_FIELDS}
    readable = not unreadable.intersection(_QUANTITY_FIELDS) and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0) for v in given.values()
    )
    if service in SERVICES and readable and (given["count"] is None or given["count"] >= 1):
        if not service_field_issues(service, **given):
            out["quantity"] = quantity_of(service, **given)
    return out


def to_intake(row: formats.Row, source: str, import_id: str | None) -> intake.RecordIn | intake.MalformedIn:
    """A valid row becomes a record; anything else a malformed record keeping its raw row."""
    rec, issues = check_values(row.values)
    unreadable = {i.field for i in row.issues}
    issues = row.issues + [i for i in issues if i.field not in unreadable]
    if rec is not None and not issues:
        return to_record_in(rec, raw=row.raw, import_id=import_id)
    record_id = row.record_id
    if record_id is None or not 1 <= len(record_id) <= 200:
        record_id = row.fallback_record_id()
    message = "; ".join(f"{i.field or 'row'}: {i.message}" for i in issues)
    return intake.MalformedIn(
        source=source, record_id=record_id, raw=row.raw, message=message, import_id=import_id,
        **_partial(row.values, unreadable),
    )


def _summary(row: RowMapping) -> dict[str, Any]:
    return dict(row)


@router.post(
    "/imports",
    response_model=ImportResult,
    response_model_exclude_none=True,
    status_code=201,
    summary="Import a CDR file",
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
    responses={413: {"model": ProblemDocument, "description": "More than 10,000 rows"}},
)
async def import_file(
    request: Request,
    principal: Write,
    session: Session,
    settings: Settings,
    format: Annotated[Format, Query(description="asterisk | freeswitch | mapping")],
    source: Annotated[str, Query(min_length=1, max_length=100, description="The sending system")],
    mapping_id: Annotated[str | None, Query(description="format=mapping: a saved column mapping")] = None,
    timezone: Annotated[
        str, Query(description="asterisk/freeswitch: IANA zone of the file's local times")
    ] = "UTC",
) -> ImportResult:
    """Import up to 10,000 CDRs from a file (body = the file, ``Content-Type: text/csv``).

    ``format=asterisk``: Asterisk ``Master.csv`` (cdr_csv default columns, no header);
    ``billsec`` is the duration, calls not ``ANSWERED`` are stored with 0 s.
    ``format=freeswitch``: FreeSWITCH ``mod_cdr_csv`` default template (no header); ``billsec``
    is the duration, calls without ``answer_stamp`` are 0 s. Their times are read in
    ``timezone``. ``format=mapping`` reads the file with the saved mapping ``mapping_id``.

    Unlike ``POST /v1/usage/records``, a malformed row does not refuse the file: it is stored
    rejected with reason ``malformed`` and its raw row, and the other rows are processed
    (de-duplicated and rated as usual). The import is kept with its counts.
    """
    mapping = None
    if format == "mapping":
        if mapping_id is None:
            raise _problem("mapping_id", "format=mapping needs mapping_id")
        saved = await repo.get_mapping(session, principal.tenant, mapping_id)
        if saved is None:
            raise _problem("mapping_id", f"column mapping {mapping_id} not found")
        mapping = _mapping(saved)
        zone_name = saved["timezone"]
    else:
        if mapping_id is not None:
            raise _problem("mapping_id", "mapping_id applies to format=mapping only")
        zone_name = timezone
    zone = _zone(zone_name)
    text = decode_text(await request.body())
    try:
        if mapping is not None:
            rows = formats.parse_mapped(text, source, mapping)
        elif format == "asterisk":
            rows = formats.parse_asterisk(text, source, zone)
        else:
            rows = formats.parse_freeswitch(text, source, zone)
    except formats.HeaderError as err:
        raise header_problem(err) from err
    if len(rows) > MAX_BATCH_RECORDS:
        raise too_many_rows(len(rows))
    if not rows:
        raise Unprocessable(
            "the file has no records",
            errors=[field_error("body", "at least one row", "too_short")],
            slug="validation-error",
            title="Validation failed",
        )
    (import_id,) = new_ids(1)
    summary = await intake.ingest(
        session,
        principal.tenant,
        [to_intake(row, source, import_id) for row in rows],
        default_region=settings.default_country,
    )
    stored = await repo.insert_import(
        session,
        principal.tenant,
        {
            "id": import_id, "format": format, "source": source, "mapping_id": mapping_id,
            "timezone": zone_name, "received": summary.received, "rated": summary.rated,
            "rejected": summary.rejected, "malformed": summary.malformed,
            "duplicates": summary.duplicates, "created_at": utcnow(),
        },
    )
    return ImportResult(
        **_summary(stored),
        results=[result_of(r, rows[r.index].row) for r in summary.results],
    )


@router.get("/imports/{import_id}", response_model=ImportSummary, summary="Get a file import")
async def get_import(import_id: str, principal: Read, session: Session) -> ImportSummary:
    """An import's counts; its records are ``GET /v1/usage/records?import_id=...``."""
    row = await repo.get_import(session, principal.tenant, import_id)
    if row is None:
        raise NotFound(f"import {import_id} not found")
    return ImportSummary.model_validate(_summary(row))


@router.post(
    "/column-mappings", response_model=ColumnMappingOut, status_code=201, summary="Save a column mapping"
)
async def create_mapping(body: ColumnMappingIn, principal: Write, session: Session) -> ColumnMappingOut:
    """Save how to read a CSV layout for ``POST /v1/usage/imports?format=mapping``.

    ``columns`` maps record fields (``record_id``, ``service``, ``msisdn``, ``destination``,
    ``started_at``, ``duration_seconds``, ``count``) to header names or, with
    ``"header": false``, 0-based indexes. ``record_id``, ``msisdn`` and ``started_at`` are
    required, and ``service`` as a column or the constant ``service``. Times are read with
    ``time_format`` (``iso`` or a strptime format) in ``timezone`` when they carry no offset.
    Names are unique per tenant (409 ``conflict``).
    """
    (ident,) = new_ids(1)
    row = await repo.insert_mapping(
        session, principal.tenant, body.model_dump() | {"id": ident, "created_at": utcnow()}
    )
    if row is None:
        raise Conflict(f"a column mapping named {body.name!r} exists")
    return ColumnMappingOut.model_validate(dict(row))


@router.get("/column-mappings", response_model=ColumnMappingPage, summary="List column mappings")
async def list_mappings(
    principal: Read,
    session: Session,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ColumnMappingPage:
    """The tenant's saved column mappings, oldest first."""
    rows, nxt = await repo.list_mappings(session, principal.tenant, cursor=cursor, limit=limit)
    return ColumnMappingPage(items=[ColumnMappingOut.model_validate(dict(r)) for r in rows], next_cursor=nxt)


@router.get("/column-mappings/{mapping_id}", response_model=ColumnMappingOut, summary="Get a column mapping")
async def get_mapping(mapping_id: str, principal: Read, session: Session) -> ColumnMappingOut:
    """One saved column mapping."""
    row = await repo.get_mapping(session, principal.tenant, mapping_id)
    if row is None:
        raise NotFound(f"column mapping {mapping_id} not found")
    return ColumnMappingOut.model_validate(dict(row))


__all__ = ["router"]
