"""Usage records: batch intake, the record list (incl. the rejected queue), re-processing."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import RowMapping

from rateline_shared.errors import (
    PROBLEM_RESPONSES,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    ProblemDocument,
    Unprocessable,
)
from rateline_shared.money import MoneyModel
from rateline_usage import intake
from rateline_usage import repository as repo
from rateline_usage.api.deps import Read, Session, Settings, Write
from rateline_usage.api.schemas import (
    IngestResult,
    RecordResult,
    ReprocessRequest,
    ReprocessResult,
    UsageRecord,
    UsageRecordIn,
    UsageRecordPage,
    batch_schema,
)
from rateline_usage.domain.mediation import MAX_BATCH_RECORDS, normalise_msisdn, service_field_issues

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
        raise PayloadTooLarge(
            f"a batch holds at most {MAX_BATCH_RECORDS} records, this one has {len(records)}; "
            "split it (nothing was stored)",
            extra={"max_records": MAX_BATCH_RECORDS},
        )
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
            try:
                parsed.append(UsageRecordIn.model_validate(record))
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    field = ".".join(str(p) for p in err["loc"])
                    errors.append(_error(index, record, field, err["type"], err["msg"]))
                parsed.append(None)  # type: ignore[arg-type]
    for index, rec in enumerate(parsed):
        if rec is None:
            continue
        for issue in service_field_issues(rec.service, rec.duration_seconds, rec.count):
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
        "requestBody": {"required": True, "content": {"application/json": {"schema": batch_schema()}}}
    },
    responses={413: {"model": ProblemDocument, "description": "More than 10,000 records"}},
)
async def post_records(
    request: Request, principal: Write, session: Session, settings: Settings
) -> IngestResult:
    """Store and rate a batch of 1 to 10,000 usage records (CDRs).

    Malformed records (unknown field, wrong type, missing field, negative duration, a start
    more than a day ahead) fail the whole batch with a 422 that lists each bad record's
    ``index`` and ``field``; nothing is stored. Well-formed records are stored exactly once
    per ``(source, record_id)``: a repeat, also within the batch, is reported as ``duplicate``
    and never rated again. Records that cannot be rated yet (unknown number, no subscription,
    before the line's activation, no rate for the service) are stored as ``rejected`` with a
    ``reason`` code and can be re-processed later. Rated records are announced in
    ``usage.records.rated`` events (at most 500 records each) in the same transaction.
    """
    records = _parse_batch(await request.body())
    summary = await intake.ingest(
        session,
        principal.tenant,
        [
            intake.RecordIn(
                source=r.source,
                record_id=r.record_id,
                service=r.service,
                msisdn=r.msisdn,
                started_at=r.started_at,
                destination=r.destination,
                duration_seconds=r.duration_seconds,
                count=r.count,
            )
            for r in records
        ],
        default_region=settings.default_country,
    )
    return IngestResult(
        received=summary.received,
        rated=summary.rated,
        rejected=summary.rejected,
        duplicates=summary.duplicates,
        results=[
            RecordResult(
                index=r.index, record_id=r.record_id, status=r.status,
                id=r.id, reason=r.reason, message=r.message,
            )
            for r in summary.results
        ],
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
    service: Annotated[Literal["voice", "sms"] | None, Query()] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> UsageRecordPage:
    """The tenant's usage records in the order they were received (cursor pagination).

    ``?status=rejected`` is the rejected-record queue.
    """
    number = (normalise_msisdn(msisdn, settings.default_country) or msisdn) if msisdn else None
    rows, nxt = await repo.list_records(
        session,
        principal.tenant,
        cursor=cursor,
        limit=limit,
        filters={
            "status": status, "source": source, "msisdn": number,
            "account_id": account_id, "service": service,
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

    Give ``record_ids`` or ``{"all_rejected": true}``. Records that rate now are announced in
    ``usage.records.rated``; those that still cannot be rated stay rejected with their new
    reason. Rated records are never rated twice.
    """
    summary = await intake.reprocess(
        session,
        principal.tenant,
        record_ids=body.record_ids,
        default_region=settings.default_country,
    )
    return ReprocessResult(
        considered=summary.considered,
        rated=summary.rated,
        rejected=summary.rejected,
        skipped=summary.skipped,
    )
