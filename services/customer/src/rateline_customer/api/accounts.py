"""Accounts and their lines."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_customer import repository as repo
from rateline_customer.api.schemas import Account, AccountCreate, AccountPage, Line, LineCreate, LinePage
from rateline_customer.domain.accounts import (
    DomainError,
    check_country,
    check_cycle_day,
    check_timezone,
    normalise_msisdn,
)
from rateline_customer.events import ACCOUNT_CREATED, LINE_CREATED, SERVICE
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, NotFound, Unprocessable, field_error
from rateline_shared.events import new_event, publish_in_transaction
from rateline_shared.events.payloads import AccountCreated, LineCreated

router = APIRouter(prefix="/v1", tags=["accounts"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("customers:read"))]
Write = Annotated[Principal, Depends(require_scope("customers:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def unprocessable(err: DomainError) -> Unprocessable:
    return Unprocessable(
        err.message, errors=[field_error(err.field, err.message, "invalid")]
    )


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=Account)
async def create_account(body: AccountCreate, principal: Write, session: Session) -> Account:
    """Create a billing account (currency, time zone and bill-cycle day are fixed per account)."""
    try:
        values = {
            "timezone": check_timezone(body.timezone),
            "bill_cycle_day": check_cycle_day(body.bill_cycle_day),
            "country": check_country(body.country),
        }
    except DomainError as err:
        raise unprocessable(err) from err
    row = await repo.insert_row(
        session,
        repo.accounts,
        {
            "id": str(uuid.uuid4()),
            "tenant": principal.tenant,
            "name": body.name,
            "currency": body.currency,
            "status": "active",
            "external_ref": body.external_ref,
            "created_at": utcnow(),
            **values,
        },
    )
    account = Account.model_validate(dict(row))
    payload = AccountCreated(account_id=account.id, **account.model_dump(exclude={"id", "status", "external_ref"}))
    await publish_in_transaction(
        session,
        new_event(service=SERVICE, type=ACCOUNT_CREATED, tenant=principal.tenant, subject=account.id, data=payload),
    )
    return account


@router.get("/accounts", response_model=AccountPage)
async def list_accounts(
    principal: Read,
    session: Session,
    status_: Annotated[str | None, Query(alias="status")] = None,
    external_ref: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AccountPage:
    rows, nxt = await repo.list_page(
        session, repo.accounts, principal.tenant, cursor=cursor, limit=limit,
        filters={"status": status_, "external_ref": external_ref},
    )
    return AccountPage(items=[Account.model_validate(dict(r)) for r in rows], next_cursor=nxt)


@router.get("/accounts/{account_id}", response_model=Account)
async def get_account(account_id: str, principal: Read, session: Session) -> Account:
    row = await repo.get(session, repo.accounts, principal.tenant, account_id)
    if row is None:
        raise NotFound(f"account {account_id} not found")
    return Account.model_validate(dict(row))


@router.post("/accounts/{account_id}/lines", status_code=status.HTTP_201_CREATED, response_model=Line)
async def create_line(account_id: str, body: LineCreate, principal: Write, session: Session) -> Line:
    """Add a line (subscriber) identified by an MSISDN, normalised to E.164."""
    account = await repo.get(session, repo.accounts, principal.tenant, account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    try:
        msisdn = normalise_msisdn(body.msisdn, account["country"])
    except DomainError as err:
        raise unprocessable(err) from err
    now = utcnow()
    row = await repo.insert_row(
        session,
        repo.lines,
        {
            "id": str(uuid.uuid4()),
            "tenant": principal.tenant,
            "account_id": account_id,
            "msisdn": msisdn,
            "status": "active",
            "activated_at": body.activated_at or now,
            "created_at": now,
        },
    )
    line = Line.model_validate(dict(row))
    payload = LineCreated(line_id=line.id, **line.model_dump(exclude={"id", "created_at"}))
    await publish_in_transaction(
        session,
        new_event(service=SERVICE, type=LINE_CREATED, tenant=principal.tenant, subject=line.id, data=payload),
    )
    return line


@router.get("/lines", response_model=LinePage)
async def list_lines(
    principal: Read,
    session: Session,
    account_id: str | None = None,
    msisdn: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LinePage:
    rows, nxt = await repo.list_page(
        session, repo.lines, principal.tenant, cursor=cursor, limit=limit,
        filters={"account_id": account_id, "msisdn": msisdn},
    )
    return LinePage(items=[Line.model_validate(dict(r)) for r in rows], next_cursor=nxt)


@router.get("/lines/{line_id}", response_model=Line)
async def get_line(line_id: str, principal: Read, session: Session) -> Line:
    row = await repo.get(session, repo.lines, principal.tenant, line_id)
    if row is None:
        raise NotFound(f"line {line_id} not found")
    return Line.model_validate(dict(row))
