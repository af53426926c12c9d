"""``GET /v1/admin/<service>/dead-letters``: events a consumer gave up on, with the reason.

A tenant sees its own dead letters. A message that is not even a CloudEvent (no tenant to
attribute it to) is kept in the ``DEADLETTER`` stream and the table, and logged, but not listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow
from rateline_shared.errors import PROBLEM_RESPONSES, BadRequest


class DeadLetter(BaseModel):
    id: int
    consumer: str
    event_id: str
    subject: str
    deliveries: int
    error: str
    payload: dict[str, Any] | None
    created_at: datetime


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None = None


def dead_letters_router(service: str) -> APIRouter:
    router = APIRouter(prefix=f"/v1/admin/{service}", tags=["admin"], responses=PROBLEM_RESPONSES)

    @router.get("/dead-letters", response_model=DeadLetterPage, summary=f"Dead letters of {service}")
    async def list_dead_letters(
        principal: Annotated[Principal, Depends(require_scope("admin"))],
        session: Annotated[AsyncSession, Depends(uow)],
        cursor: Annotated[str | None, Query(description="id to continue after")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> DeadLetterPage:
        if cursor is not None and not cursor.isdigit():
            raise BadRequest("the cursor is not valid; use next_cursor from a previous page")
        after = int(cursor) if cursor else 0
        rows = (
            await session.execute(
                text(
                    "SELECT id, consumer, event_id, subject, deliveries, error, payload, created_at "
                    "FROM dead_letters WHERE id > :after "
                    "AND payload->>'tenant' = :tenant ORDER BY id LIMIT :n"
                ),
                {"after": after, "n": limit + 1, "tenant": principal.tenant},
            )
        ).mappings().all()
        items = [DeadLetter.model_validate(dict(r)) for r in rows[:limit]]
        nxt = str(items[-1].id) if len(rows) > limit else None
        return DeadLetterPage(items=items, next_cursor=nxt)

    return router
