"""Plan migrations: move a plan's existing subscriptions to another of its versions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog import repository as repo
from rateline_catalog.api.plans import invalid
from rateline_catalog.api.schemas import MigrationCreate, PlanMigration, PlanMigrationPage
from rateline_catalog.domain.plans import MigrationDraft, PlanInvalid, validate_migration
from rateline_catalog.events import PLAN_MIGRATION_SCHEDULED, SERVICE
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound
from rateline_shared.events import new_event, publish_in_transaction
from rateline_shared.events.payloads import PlanMigrationScheduled

router = APIRouter(prefix="/v1", tags=["plans"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("catalog:read"))]
Write = Annotated[Principal, Depends(require_scope("catalog:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def _view(row: RowMapping) -> PlanMigration:
    return PlanMigration(
        id=row["id"],
        plan_id=row["plan_id"],
        to_version=row["to_version"],
        effective_from=row["effective_from"],
        subscription_ids=row["subscription_ids"],
        created_at=row["created_at"],
    )


@router.post(
    "/plans/{plan_id}/migrations",
    status_code=status.HTTP_201_CREATED,
    response_model=PlanMigration,
    summary="Schedule a plan migration",
)
async def create_migration(
    plan_id: str, body: MigrationCreate, principal: Write, session: Session
) -> PlanMigration:
    """Move subscriptions of the plan to version ``to_version`` from ``effective_from`` on:
    the listed ``subscription_ids``, or (``null``) every subscription of the plan that started
    before ``effective_from``. Usage and charges at or after ``effective_from`` are priced by
    the new version; nothing earlier is re-priced.

    422 when ``to_version`` does not exist (``unknown-version``), ``effective_from`` is in the
    past (60 s skew allowed; ``in-the-past``) or before the target version's own
    ``effective_from`` (``before-version-effective``), or ``subscription_ids`` is empty or has
    duplicates. Subscriptions are not checked against the customer service (they may not have
    reached the catalog yet). ``catalog.plan_migration.scheduled`` is emitted in the same
    transaction.
    """
    plan = await repo.lock_plan(session, principal.tenant, plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")
    versions = (await repo.versions_of(session, principal.tenant, [plan_id]))[plan_id]
    now = utcnow()
    draft = MigrationDraft(
        to_version=body.to_version,
        effective_from=body.effective_from,
        subscription_ids=tuple(body.subscription_ids) if body.subscription_ids is not None else None,
    )
    try:
        validate_migration(
            draft, versions={v["version"]: v["effective_from"] for v in versions}, now=now
        )
    except PlanInvalid as err:
        raise invalid(err.issues, "the plan migration is not valid") from err
    migration_id = str(uuid.uuid4())
    row = await repo.insert_migration(
        session,
        {
            "id": migration_id,
            "tenant": principal.tenant,
            "plan_id": plan_id,
            "to_version": draft.to_version,
            "effective_from": draft.effective_from,
            "subscription_ids": list(draft.subscription_ids) if draft.subscription_ids is not None else None,
            "created_at": now,
        },
    )
    migration = _view(row)
    await publish_in_transaction(
        session,
        new_event(
            service=SERVICE,
            type=PLAN_MIGRATION_SCHEDULED,
            tenant=principal.tenant,
            subject=plan_id,
            data=PlanMigrationScheduled(
                migration_id=migration.id,
                plan_id=plan_id,
                to_version=migration.to_version,
                effective_from=migration.effective_from,
                subscription_ids=migration.subscription_ids,
                created_at=migration.created_at,
            ),
        ),
    )
    return migration


@router.get("/plans/{plan_id}/migrations", response_model=PlanMigrationPage, summary="List plan migrations")
async def list_migrations(
    plan_id: str,
    principal: Read,
    session: Session,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PlanMigrationPage:
    """The plan's migrations, oldest first (cursor pagination); 404 for an unknown plan."""
    if await repo.get_plan(session, principal.tenant, plan_id) is None:
        raise NotFound(f"plan {plan_id} not found")
    rows, nxt = await repo.list_migrations(session, principal.tenant, plan_id, cursor=cursor, limit=limit)
    return PlanMigrationPage(items=[_view(r) for r in rows], next_cursor=nxt)
