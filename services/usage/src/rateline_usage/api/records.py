"""Usage records: batch intake, the record list (incl. the rejected queue), re-processing."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import RowMapping

from rateline_shared.db import utcnow
from rateline_shared.errors import (
    PROBLEM_RESPONSES,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ProblemDocument,
    Unprocessable,
    field_error,
)
from rateline_shared.money import MoneyModel
from rateline_usage import intake
from rateline_usage import repository as repo
from rateline_usage.api.deps import Read, Session, Settings, Write
from rateline_usage.api.schemas import (
    IngestResult,
    RecordCorrection,
    RecordResult,
    ReprocessRequest,
    ReprocessResult,
    UsageRecord,
    UsageRecordIn,
    UsageRecordPage,
    batch_schema,
)
from rateline_usage.domain import formats
from rateline_usage.domain.formats import HeaderError
from rateline_usage.domain.guiding import STATUS_REJECTED
from rateline_usage.domain.mediation import (
    MAX_BATCH_RECORDS,
    FieldIssue,
    normalise_msisdn,
    quantity_of,
    service_field_issues,
)
from rateline_usage.domain.rating import QUANTITY_UNITS

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=PROBLEM_RESPONSES)

_RECORDS = TypeAdapter(list[UsageRecordIn])
# At most this many field errors are listed in one 422 (the total is in ``invalid_records``).
MAX_LISTED_ERRORS = 1_000


def _error(index: int, record: Any, field: str, code: str, message: str) -> dict[str, Any]:
    record_id = record.get("record_id") if isinstance(record, dict) else None
    return {
        "index": index,
        "record_id": record_id if isinstance(record_id, str) else None,
        "field": f"records.{index}" + (f".{field}" if field else ""),
        "location": "body",
        "code": code,
        "message": message,
    }


def _parse_batch(raw: bytes) -> list[UsageRecordIn]:
    """Parse and check a batch; 400/413/422 problems before anything is stored."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(
            f"the request body is not valid JSON: {exc}", slug="malformed-json", title="Malformed JSON"
        ) from exc
    records = body.get("records") if isinstance(body, dict) else None
    if isinstance(records, list) and len(records) > MAX_BATCH_RECORDS:
        raise too_many_rows(len(records))
    shape: list[dict[str, Any]] = []
    if not isinstance(body, dict):
        shape.append({"field": "", "code": "object_type", "message": 'expected {"records": [...]}'})
    else:
        shape += [
            {"field": key, "code": "extra_forbidden", "message": "unknown field"}
            for key in body
            if key != "records"
        ]
        if not isinstance(records, list):
            shape.append({"field": "records", "code": "list_type", "message": "a list of records is required"})
        elif not records:
            shape.append({"field": "records", "code": "too_short", "message": "at least one record"})
    if shape:
        raise Unprocessable(
            "the request did not validate",
            errors=[{**e, "location": "body"} for e in shape],
            slug="validation-error",
            title="Validation failed",
        )
    assert isinstance(records, list)

    errors: list[dict[str, Any]] = []
    try:
        parsed = _RECORDS.validate_python(records)
    except ValidationError:
        parsed = []
        for index, record in enumerate(records):
            rec, issues = check_values(record)
            errors += [_error(index, record, i.field, i.code, i.message) for i in issues]
            parsed.append(rec)  # type: ignore[arg-type]
    else:
        for index, rec in enumerate(parsed):
            for issue in field_issues(rec):
                errors.append(_error(index, records[index], issue.field, issue.code, issue.message))
    if errors:
        bad = len({e["index"] for e in errors})
        raise Unprocessable(
            f"{bad} of {len(records)} records are malformed; nothing was stored",
            errors=sorted(errors, key=lambda e: e["index"])[:MAX_LISTED_ERRORS],
            extra={"invalid_records": bad},
            slug="validation-error",
            title="Validation failed",
        )
    return parsed


def check_values(values: Any) -> tuple[UsageRecordIn | None, list[FieldIssue]]:
    """The intake checks of one record (model rules, then the service's quantity field)."""
    try:
        rec = UsageRecordIn.model_validate(values)
    except ValidationError as exc:
        return None, [
            FieldIssue(".".join(str(p) for p in err["loc"]), err["type"], err["msg"])
            for err in exc.errors(include_url=False)
        ]
    return rec, field_issues(rec)


def field_issues(rec: UsageRecordIn) -> list[FieldIssue]:
    return service_field_issues(
        rec.service, rec.duration_seconds, rec.count, rec.bytes_up, rec.bytes_down, rec.quantity
    )


def decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the file is not UTF-8 text: {exc}", slug="malformed-csv", title="Malformed CSV"
        ) from exc


def header_problem(err: HeaderError) -> Unprocessable:
    return Unprocessable(
        "the CSV header cannot be read; nothing was stored",
        errors=[
            field_error(i.field, i.message, i.code)
            for i in err.issues
        ],
        slug="validation-error",
        title="Validation failed",
    )


def too_many_rows(count: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"a batch holds at most {MAX_BATCH_RECORDS} records, this one has {count}; "
        "split it (nothing was stored)",
        extra={"max_records": MAX_BATCH_RECORDS},
    )


def _parse_csv_batch(raw: bytes) -> list[tuple[int, UsageRecordIn]]:
    """A CSV batch (header of field names): all rows valid, or a 422 listing each bad row."""
    try:
        rows = formats.parse_csv(decode_text(raw))
    except HeaderError as err:
        raise header_problem(err) from err
    if len(rows) > MAX_BATCH_RECORDS:
        raise too_many_rows(len(rows))
    if not rows:
        raise Unprocessable(
            "the CSV has no records",
            errors=[field_error("rows", "at least one record", "too_short")],
            slug="validation-error",
            title="Validation failed",
        )
    errors: list[dict[str, Any]] = []
    parsed: list[tuple[int, UsageRecordIn]] = []
    for row in rows:
        rec, issues = check_values(row.values)
        # A value the parser could not read is reported as such, not again as "missing".
        unreadable = {i.field for i in row.issues}
        issues = row.issues + [i for i in issues if i.field not in unreadable]
        for issue in issues:
            errors.append(
                {
                    "index": row.row - 1,
                    "row": row.row,
                    "record_id": row.record_id,
                    "field": f"rows.{row.row}" + (f".{issue.field}" if issue.field else ""),
                    "location": "body",
                    "code": issue.code,
                    "message": issue.message,
                }
            )
        if rec is not None and not issues:
            parsed.append((row.row, rec))
    if errors:
        bad = len({e["row"] for e in errors})
        raise Unprocessable(
            f"{bad} of {len(rows)} rows are malformed; nothing was stored",
            errors=errors[:MAX_LISTED_ERRORS],
            extra={"invalid_records": bad},
            slug="validation-error",
            title="Validation failed",
        )
    return parsed


def _record(row: RowMapping) -> UsageRecord:
    amount = None
    if row["amount"] is not None and row["currency"] is not None:
        amount = MoneyModel(amount=row["amount"], currency=row["currency"])
    return UsageRecord.model_validate({**row, "amount": amount})


@router.post(
    "/records",
    response_model=IngestResult,
    response_model_exclude_none=True,
    summary="Submit a batch of usage records",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": batch_schema()},
                "text/csv": {"schema": {"type": "string", "description": "header of field names"}},
            },
        }
    },
    responses={413: {"model": ProblemDocument, "description": "More than 10,000 records"}},
)
async def post_records(
    request: Request, principal: Write, session: Session, settings: Settings
) -> IngestResult:
    """Store and rate a batch of 1 to 10,000 usage records (CDRs), as JSON or CSV.

    With ``Content-Type: text/csv`` the body is a header line of the JSON field names, then one
    record per line (empty cell = no value; ``started_at`` with an offset). A malformed row
    fails the whole batch like a malformed JSON record; its errors carry ``row`` (1 = the first
    line after the header).

    Quantities: voice ``duration_seconds``; sms/mms ``count`` (default 1); data sessions (e.g.
    RADIUS accounting) ``bytes_up`` and/or ``bytes_down``, or ``quantity`` in bytes.

    Malformed records (unknown field, wrong type, missing field, negative duration, a start
    more than a day ahead) fail the whole batch with a 422 that lists each bad record's
    ``index`` and ``field``; nothing is stored. Well-formed records are stored exactly once
    per ``(source, record_id)``: a repeat, also within the batch, is reported as ``duplicate``
    and never rated again. Each record is rated with the plan version in force at its start:
    per unit, by the imported tariff (by destination), or carried at amount 0 with its
    chargeable quantity for tiered/package pricing; allowances of the version are consumed
    before any overage. Records that cannot be rated yet (unknown number, no subscription,
    before the line's activation, no rate for the service, no destination or an unknown one
    for a tariff, no tariff imported, ...) are stored as ``rejected`` with a ``reason`` code
    and can be re-processed later. Rated records are announced in
    ``usage.records.rated`` events (at most 500 records each) in the same transaction.
    """
    raw = await request.body()
    csv_body = request.headers.get("content-type", "").split(";")[0].strip().lower() == "text/csv"
    rows = _parse_csv_batch(raw) if csv_body else [(None, r) for r in _parse_batch(raw)]
    summary = await intake.ingest(
        session,
        principal.tenant,
        [to_record_in(r) for _, r in rows],
        default_region=settings.default_country,
    )
    result = IngestResult.model_construct(
        received=summary.received,
        rated=summary.rated,
        rejected=summary.rejected,
        duplicates=summary.duplicates,
        results=[result_of(r, rows[r.index][0]) for r in summary.results],
    )
    # Serialized here, once: returned as a model, FastAPI would dump it to dicts and validate
    # them again against the response model, which for 10,000 results costs more than rating.
    return Response(result.model_dump_json(exclude_none=True), media_type="application/json")  # type: ignore[return-value]


def to_record_in(r: UsageRecordIn, *, raw: str | None = None, import_id: str | None = None) -> intake.RecordIn:
    return intake.RecordIn(
        source=r.source,
        record_id=r.record_id,
        service=r.service,
        msisdn=r.msisdn,
        started_at=r.started_at,
        destination=r.destination,
        duration_seconds=r.duration_seconds,
        count=r.count,
        bytes_up=r.bytes_up,
        bytes_down=r.bytes_down,
        quantity=r.quantity,
        raw=raw,
        import_id=import_id,
    )


def result_of(r: intake.ItemResult, row: int | None) -> RecordResult:
    # Built from values the intake produced (already typed): no validation needed.
    return RecordResult.model_construct(
        index=r.index, row=row, record_id=r.record_id,
        status=r.status,  # type: ignore[arg-type]  # intake's statuses are the Literal's values
        id=r.id, reason=r.reason, message=r.message,
    )


@router.get("/records", response_model=UsageRecordPage, summary="List usage records")
async def list_records(
    principal: Read,
    session: Session,
    settings: Settings,
    status: Annotated[Literal["rated", "rejected"] | None, Query(description="rated | rejected")] = None,
    source: str | None = None,
    msisdn: Annotated[str | None, Query(description="E.164 or national format")] = None,
    account_id: str | None = None,
    service: Annotated[Literal["voice", "sms", "mms", "data"] | None, Query()] = None,
    reason: Annotated[str | None, Query(description="reason code of rejected records, e.g. malformed")] = None,
    import_id: Annotated[str | None, Query(description="records of one file import")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> UsageRecordPage:
    """The tenant's usage records in the order they were received (cursor pagination).

    ``?status=rejected`` is the rejected-record queue; ``&reason=unknown-line`` narrows it.
    """
    number = (normalise_msisdn(msisdn, settings.default_country) or msisdn) if msisdn else None
    rows, nxt = await repo.list_records(
        session,
        principal.tenant,
        cursor=cursor,
        limit=limit,
        filters={
            "status": status, "source": source, "msisdn": number,
            "account_id": account_id, "service": service, "reason": reason, "import_id": import_id,
        },
    )
    return UsageRecordPage(items=[_record(r) for r in rows], next_cursor=nxt)


@router.get("/records/{record_id}", response_model=UsageRecord, summary="Get a usage record")
async def get_record(record_id: str, principal: Read, session: Session) -> UsageRecord:
    """One stored record: its rating (``amount``, ``billed_quantity``) or why it was rejected."""
    row = await repo.get_record(session, principal.tenant, record_id)
    if row is None:
        raise NotFound(f"usage record {record_id} not found")
    return _record(row)


@router.post(
    "/records/reprocess", response_model=ReprocessResult, summary="Re-process rejected records"
)
async def reprocess_records(
    body: ReprocessRequest, principal: Write, session: Session, settings: Settings
) -> ReprocessResult:
    """Guide and rate rejected records again, e.g. after the line's event has arrived.

    Give ``record_ids``, or ``{"all_rejected": true}`` and/or the filters ``reason``,
    ``source`` and ``since`` (received at or after) to take the rejected queue. Records that
    rate now are announced in ``usage.records.rated``; those that still cannot be rated stay
    rejected with their new reason. Rated records are never rated twice.
    """
    summary = await intake.reprocess(
        session,
        principal.tenant,
        record_ids=body.record_ids,
        default_region=settings.default_country,
        filters=repo.RejectedFilter(reason=body.reason, source=body.source, since=body.since),
    )
    return ReprocessResult(
        considered=summary.considered,
        rated=summary.rated,
        rejected=summary.rejected,
        skipped=summary.skipped,
    )


async def _locked_rejected(session: Session, tenant: str, record_id: str) -> RowMapping:
    row = await repo.lock_record(session, tenant, record_id)
    if row is None:
        raise NotFound(f"usage record {record_id} not found")
    if row["status"] != STATUS_REJECTED:
        raise Conflict(
            f"usage record {record_id} is {row['status']}; only rejected records can be "
            "corrected or re-processed",
            slug="not-rejected",
            title="Record is not rejected",
        )
    return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


@router.patch("/records/{record_id}", response_model=UsageRecord, summary="Correct a rejected record")
async def correct_record(
    record_id: str, body: RecordCorrection, principal: Write, session: Session, settings: Settings
) -> UsageRecord:
    """Correct ``service``, ``msisdn``, ``destination``, ``started_at`` or the quantity
    (``duration_seconds``; ``count``; ``bytes_up``/``bytes_down`` or ``quantity`` for data) of a
    rejected record (checked like intake: a voice record needs a duration, ``count`` is for
    sms/mms only, bytes for data only). Only rejected records can be corrected (409
    otherwise). The record stays rejected until it is re-processed. Each correction is appended to ``corrections`` with
    the values it replaced, the time and the client.
    """
    row = await _locked_rejected(session, principal.tenant, record_id)
    service = body.service or row["service"]
    issues: list[FieldIssue] = []
    values: dict[str, Any] = {}
    if service is None:
        issues.append(FieldIssue("service", "missing", "the record has no service; give one"))
    else:
        issues = service_field_issues(
            service, body.duration_seconds, body.count, body.bytes_up, body.bytes_down, body.quantity
        )
        given = any(
            v is not None for v in (body.duration_seconds, body.count, body.bytes_up, body.bytes_down, body.quantity)
        )
        keeps = row["unit"] == QUANTITY_UNITS[service] and row["quantity"] is not None
        if (given or not keeps) and not any(i.code == "missing" for i in issues):
            values["quantity"] = Decimal(
                quantity_of(
                    service, body.duration_seconds, body.count, body.bytes_up, body.bytes_down, body.quantity
                )
            )
        if keeps and not given:  # the stored quantity stands: the "missing" issues do not apply
            issues = [i for i in issues if i.code != "missing"]
    if issues:
        raise Unprocessable(
            "the correction did not validate",
            errors=[field_error(i.field, i.message, i.code) for i in issues],
            slug="validation-error",
            title="Validation failed",
        )
    if service is not None:
        values |= {"service": service, "unit": QUANTITY_UNITS[service]}
    if body.destination is not None:
        values["destination"] = body.destination
    if body.msisdn is not None:
        values["msisdn"] = normalise_msisdn(body.msisdn, settings.default_country) or body.msisdn
    if body.started_at is not None:
        values["started_at"] = body.started_at
    now = utcnow()
    audit = {
        "at": now.isoformat(),
        "by": principal.client_id,
        "original": {
            k: _jsonable(row[k]) for k in ("service", "msisdn", "destination", "started_at", "quantity", "unit")
        },
        "changes": body.model_dump(mode="json", exclude_unset=True),
    }
    await repo.correct_record(session, principal.tenant, record_id, values, audit, now)
    updated = await repo.get_record(session, principal.tenant, record_id)
    assert updated is not None
    return _record(updated)


@router.post(
    "/records/{record_id}/reprocess", response_model=UsageRecord, summary="Re-process one rejected record"
)
async def reprocess_record(
    record_id: str, principal: Write, session: Session, settings: Settings
) -> UsageRecord:
    """Guide and rate one rejected record again (e.g. after a correction). Returns the record:
    ``rated`` now, or still ``rejected`` with its new reason. 409 if it is not rejected.
    """
    await _locked_rejected(session, principal.tenant, record_id)
    await intake.reprocess(
        session, principal.tenant, record_ids=[record_id], default_region=settings.default_country
    )
    row = await repo.get_record(session, principal.tenant, record_id)
    assert row is not None
    return _record(row)
