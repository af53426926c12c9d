"""Plans and their versions: created and published in one step, listed and read back."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog import repository as repo
from rateline_catalog.api.mapping import (
    components_draft,
    plan_published,
    plan_view,
    version_published,
    version_values,
    version_view,
)
from rateline_catalog.api.schemas import Plan, PlanCreate, PlanPage, PlanVersion, PlanVersionCreate, PlanVersionPage
from rateline_catalog.domain.plans import (
    STATUS_PUBLISHED,
    Issue,
    PlanDraft,
    PlanInvalid,
    check_aware,
    check_plan,
    validate_new_version,
)
from rateline_catalog.events import PLAN_PUBLISHED, PLAN_VERSION_PUBLISHED, SERVICE
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, Conflict, NotFound, Unprocessable, field_error
from rateline_shared.events import new_event, publish_in_transaction

router = APIRouter(prefix="/v1", tags=["plans"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("catalog:read"))]
Write = Annotated[Principal, Depends(require_scope("catalog:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def invalid(issues: list[Issue], detail: str = "the plan is not valid") -> Unprocessable:
    """The one 422 for domain issues: every issue as a field error with its stable code."""
    return Unprocessable(detail, errors=[field_error(i.field, i.message, i.code) for i in issues])


@router.post(
    "/plans",
    status_code=status.HTTP_201_CREATED,
    response_model=Plan,
    summary="Create and publish a plan (its version 1)",
)
async def create_plan(body: PlanCreate, principal: Write, session: Session) -> Plan:
    """Create a plan and publish its version 1 at once (status ``published``).

    The body holds the plan (``code`` unique per tenant (409 otherwise), ``name``, ``currency``,
    optional ``product_id`` of an existing product) and version 1's components, applying from
    ``effective_from`` (default: now):

    * ``recurring_fee`` per ``billing_period`` (``monthly`` | ``quarterly`` | ``yearly``),
      charged in ``advance`` or ``arrears`` (``billing_timing``); ``one_time_charges``
      (activation, equipment) on the first invoice;
    * ``rates``: at most one usage rate per service (``voice`` per ``minute``/``second``,
      ``sms``/``mms`` per ``message``, ``data`` per ``KB``/``MB``/``GB``, 1024-based) with a
      ``pricing`` model: ``per_unit`` (``price`` with increments: voice seconds, data bytes,
      sms/mms 1), ``tariff`` (a ``tariff`` ref to an imported rating profile), ``graduated`` /
      ``volume`` (``tiers`` with strictly increasing ``up_to``, only the last open) or
      ``package`` (``price`` per started ``package_size``); ``minimum_charge`` for the last three;
    * ``allowances`` (bundled quantities per cycle of a rated service, optional destination
      prefixes, pooled, rollover cap, threshold percentages) and a ``spend_cap``.

    Amounts are decimal strings >= 0 with at most 6 decimals. Every problem is reported at once
    as a 422 field error with a stable code. ``catalog.plan.published`` and
    ``catalog.plan_version.published`` (version 1) are emitted in the same transaction.
    """
    now = utcnow()
    components = components_draft(body)
    effective_from = body.effective_from or now
    issues = check_plan(PlanDraft(body.code, body.name, body.currency, components))
    issues += check_aware("effective_from", effective_from)
    if body.product_id is not None and await repo.get_product(session, principal.tenant, body.product_id) is None:
        issues.append(Issue("product_id", "unknown-product", f"no product {body.product_id} for this tenant"))
    if issues:
        raise invalid(issues)
    plan_id = str(uuid.uuid4())
    row = await repo.insert_plan(
        session,
        {
            "id": plan_id,
            "tenant": principal.tenant,
            "code": body.code,
            "name": body.name,
            "product_id": body.product_id,
            "currency": body.currency,
            "recurring_fee": components.recurring_fee,
            "billing_period": components.billing_period,
            "status": STATUS_PUBLISHED,
            "published_at": now,
            "created_at": now,
        },
    )
    if row is None:
        message = f"a plan with code {body.code!r} already exists"
        raise Conflict(message, errors=[field_error("code", message, "taken")])
    version_row = await repo.insert_version(
        session,
        version_values(
            tenant=principal.tenant,
            plan_id=plan_id,
            version=1,
            effective_from=effective_from,
            components=components,
            now=now,
        ),
    )
    version = version_view(version_row, row["currency"])
    await publish_in_transaction(
        session,
        new_event(
            service=SERVICE,
            type=PLAN_PUBLISHED,
            tenant=principal.tenant,
            subject=plan_id,
            data=plan_published(row, version),
        ),
        new_event(
            service=SERVICE,
            type=PLAN_VERSION_PUBLISHED,
            tenant=principal.tenant,
            subject=plan_id,
            data=version_published(row, version),
        ),
    )
    return plan_view(row, [version_row], now)


@router.get("/plans", response_model=PlanPage, summary="List plans")
async def list_plans(
    principal: Read,
    session: Session,
    code: Annotated[str | None, Query(description="Only the plan with this code")] = None,
    status_: Annotated[str | None, Query(alias="status", description="e.g. published")] = None,
    product_id: Annotated[str | None, Query(description="Only plans of this product")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PlanPage:
    """The tenant's plans, oldest first, each with its ``current_version`` (cursor pagination)."""
    rows, nxt = await repo.list_plans(
        session,
        principal.tenant,
        cursor=cursor,
        limit=limit,
        filters={"code": code, "status": status_, "product_id": product_id},
    )
    versions = await repo.versions_of(session, principal.tenant, [r["id"] for r in rows])
    now = utcnow()
    return PlanPage(items=[plan_view(r, versions[r["id"]], now) for r in rows], next_cursor=nxt)


@router.get("/plans/{plan_id}", response_model=Plan, summary="Get a plan")
async def get_plan(plan_id: str, principal: Read, session: Session) -> Plan:
    """One plan of the tenant with ``current_version``, the version in force now, and its
    components (404 if the plan does not exist for this tenant). Its top-level
    ``recurring_fee``, ``billing_period`` and ``rates`` repeat the current version's."""
    row = await repo.get_plan(session, principal.tenant, plan_id)
    if row is None:
        raise NotFound(f"plan {plan_id} not found")
    versions = await repo.versions_of(session, principal.tenant, [plan_id])
    return plan_view(row, versions[plan_id], utcnow())


@router.post(
    "/plans/{plan_id}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=PlanVersion,
    summary="Publish a new version of a plan",
)
async def create_version(
    plan_id: str, body: PlanVersionCreate, principal: Write, session: Session
) -> PlanVersion:
    """Publish version N+1 of a plan with every component (same fields and rules as
    ``POST /v1/plans``), applying to subscriptions that start on or after ``effective_from``.

    ``effective_from`` must not be in the past (60 s of clock skew allowed: history is never
    rewritten) and must be after the previous version's; ``currency`` may be sent but must be
    the plan's (422 ``currency-changed``). Existing subscriptions stay on their version until a
    migration moves them. Versions are never changed afterwards. ``catalog.plan_version.published``
    is emitted in the same transaction.
    """
    plan = await repo.lock_plan(session, principal.tenant, plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")
    versions = (await repo.versions_of(session, principal.tenant, [plan_id]))[plan_id]
    latest = versions[-1]
    now = utcnow()
    components = components_draft(body)
    try:
        validate_new_version(
            components,
            effective_from=body.effective_from,
            now=now,
            previous_effective_from=latest["effective_from"],
            plan_currency=plan["currency"],
            currency=body.currency,
        )
    except PlanInvalid as err:
        raise invalid(err.issues, "the plan version is not valid") from err
    row = await repo.insert_version(
        session,
        version_values(
            tenant=principal.tenant,
            plan_id=plan_id,
            version=latest["version"] + 1,
            effective_from=body.effective_from,
            components=components,
            now=now,
        ),
    )
    version = version_view(row, plan["currency"])
    await publish_in_transaction(
        session,
        new_event(
            service=SERVICE,
            type=PLAN_VERSION_PUBLISHED,
            tenant=principal.tenant,
            subject=plan_id,
            data=version_published(plan, version),
        ),
    )
    return version


@router.get("/plans/{plan_id}/versions", response_model=PlanVersionPage, summary="List a plan's versions")
async def list_versions(
    plan_id: str,
    principal: Read,
    session: Session,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PlanVersionPage:
    """Every version of the plan, in version order, with its components (cursor pagination)."""
    plan = await repo.get_plan(session, principal.tenant, plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")
    rows, nxt = await repo.list_versions(session, principal.tenant, plan_id, cursor=cursor, limit=limit)
    return PlanVersionPage(items=[version_view(r, plan["currency"]) for r in rows], next_cursor=nxt)


@router.get("/plans/{plan_id}/versions/{version}", response_model=PlanVersion, summary="Get a plan version")
async def get_version(
    plan_id: str,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    principal: Read,
    session: Session,
) -> PlanVersion:
    """Version ``version`` of the plan with its components (404 if either does not exist)."""
    plan = await repo.get_plan(session, principal.tenant, plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")
    row = await repo.get_version(session, principal.tenant, plan_id, version)
    if row is None:
        raise NotFound(f"plan {plan_id} has no version {version}")
    return version_view(row, plan["currency"])
