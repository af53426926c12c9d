"""Re-rating jobs: create one, follow its progress, list the adjustments it made."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy.engine import RowMapping

from rateline_shared.db import utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound
from rateline_usage import repository as repo
from rateline_usage.api.deps import Read, Session, Write
from rateline_usage.api.schemas import (
    ReratingAdjustment,
    ReratingAdjustmentPage,
    ReratingJob,
    ReratingJobIn,
    ReratingJobPage,
    ReratingPeriod,
    ReratingScope,
)
from rateline_usage.ids import new_id

router = APIRouter(prefix="/v1/usage", tags=["usage re-rating"], responses=PROBLEM_RESPONSES)


def job_out(row: RowMapping) -> ReratingJob:
    return ReratingJob(
        id=row["id"],
        status=row["status"],
        scope=ReratingScope(kind=row["scope_kind"], id=row["scope_id"]),
        period=ReratingPeriod(started_from=row["started_from"], started_before=row["started_before"]),
        reason=row["reason"],
        total=row["total"],
        processed=row["processed"],
        changed=row["changed"],
        skipped=row["skipped"],
        skipped_reasons=row["skipped_reasons"],
        deltas=row["deltas"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
    )


def adjustment_out(row: RowMapping) -> ReratingAdjustment:
    return ReratingAdjustment(
        usage_record_id=row["usage_id"],
        source=row["source"],
        record_id=row["record_id"],
        account_id=row["account_id"],
        subscription_id=row["subscription_id"],
        plan_id=row["plan_id"],
        service=row["service"],
        started_at=row["started_at"],
        currency=row["currency"],
        old_amount=row["old_amount"],
        new_amount=row["new_amount"],
        delta=row["delta"],
        old_chargeable_quantity=row["old_chargeable_quantity"],
        new_chargeable_quantity=row["new_chargeable_quantity"],
        previous=row["previous"],
        created_at=row["created_at"],
    )


@router.post(
    "/rerating-jobs", response_model=ReratingJob, status_code=202, summary="Start a re-rating job"
)
async def create_rerating_job(
    body: ReratingJobIn, principal: Write, session: Session, response: Response
) -> ReratingJob:
    """Re-rate already rated records after a correction (a tariff, a plan version, a migration).

    Give exactly one scope: ``line_id``, ``account_id``, ``plan_id`` (records rated on that plan)
    or ``"tariff": true`` (every record priced by a tariff), and the period of record starts
    ``[started_from, started_before)`` (with offsets, at most 366 days) and a ``reason``. The job
    is queued (202) and worked off in the background, chunk by chunk, resumable after a crash;
    ``total`` counts the rated records in scope now. Each record is rated again with the plan
    version in force at its start and the tariff import in force now, keeping the allowance it
    used (nothing is consumed or released). A record whose amount or chargeable quantity
    changes gets an adjustment (``GET .../adjustments``), announced in ``usage.records.rerated``:
    invoicing changes a record not yet invoiced, and puts an adjustment line on the next invoice
    for one already invoiced. A record that cannot be rated now is left unchanged and counted in
    ``skipped`` by reason. Rejected records are not re-rated (re-process them instead).
    """
    kind, scope_id = body.scope()
    tenant = principal.tenant
    total, until_id = await repo.count_in_scope(
        session, tenant, kind, scope_id, body.started_from, body.started_before
    )
    now = utcnow()
    row = await repo.insert_rerating_job(
        session,
        tenant,
        {
            "id": new_id(),
            "status": "queued",
            "scope_kind": kind,
            "scope_id": scope_id,
            "started_from": body.started_from,
            "started_before": body.started_before,
            "reason": body.reason,
            "total": total,
            "until_id": until_id,
            "created_by": principal.client_id,
            "created_at": now,
            "updated_at": now,
        },
    )
    response.headers["Location"] = f"/v1/usage/rerating-jobs/{row['id']}"
    return job_out(row)


@router.get("/rerating-jobs", response_model=ReratingJobPage, summary="List re-rating jobs")
async def list_rerating_jobs(
    principal: Read,
    session: Session,
    status: Annotated[
        Literal["queued", "running", "completed", "failed"] | None, Query(description="Only jobs in this status")
    ] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReratingJobPage:
    """The tenant's re-rating jobs, oldest first (cursor pagination)."""
    rows, nxt = await repo.list_rerating_jobs(session, principal.tenant, status=status, cursor=cursor, limit=limit)
    return ReratingJobPage(items=[job_out(r) for r in rows], next_cursor=nxt)


@router.get("/rerating-jobs/{job_id}", response_model=ReratingJob, summary="Get a re-rating job")
async def get_rerating_job(job_id: str, principal: Read, session: Session) -> ReratingJob:
    """A job with its progress: ``processed`` of ``total``, ``changed``, ``skipped`` (by reason),
    the per-currency ``deltas`` so far, and ``error`` when a chunk failed."""
    row = await repo.get_rerating_job(session, principal.tenant, job_id)
    if row is None:
        raise NotFound(f"re-rating job {job_id} not found")
    return job_out(row)


@router.get(
    "/rerating-jobs/{job_id}/adjustments",
    response_model=ReratingAdjustmentPage,
    summary="Adjustments of a re-rating job",
)
async def list_rerating_adjustments(
    job_id: str,
    principal: Read,
    session: Session,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ReratingAdjustmentPage:
    """The records the job changed, in record order: old and new amount, ``delta`` (new - old),
    old and new chargeable quantity, and the rating they had before (``previous``)."""
    if await repo.get_rerating_job(session, principal.tenant, job_id) is None:
        raise NotFound(f"re-rating job {job_id} not found")
    rows, nxt = await repo.list_rerating_adjustments(session, principal.tenant, job_id, cursor=cursor, limit=limit)
    return ReratingAdjustmentPage(items=[adjustment_out(r) for r in rows], next_cursor=nxt)
