"""Cursor pagination: stable order by (created_at, id), opaque cursors, one page model."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, and_, or_

from rateline_shared.errors import BadRequest

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    """A page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, ident: str) -> str:
    raw = json.dumps([created_at.isoformat(), str(ident)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, ident = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(ident)
    except (ValueError, TypeError) as exc:
        raise BadRequest("the cursor is not valid; use next_cursor from a previous page") from exc


def paginate(
    stmt: Select[Any],
    created_col: ColumnElement[Any],
    id_col: ColumnElement[Any],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """Order by (created, id) ascending, start after ``cursor``, fetch ``limit + 1`` rows."""
    if cursor:
        created, ident = decode_cursor(cursor)
        stmt = stmt.where(
            or_(created_col > created, and_(created_col == created, id_col > ident))
        )
    return stmt.order_by(created_col, id_col).limit(min(limit, MAX_LIMIT) + 1)


def page_of(
    rows: list[Any], limit: int, created_attr: str = "created_at", id_attr: str = "id"
) -> tuple[list[Any], str | None]:
    """Split the ``limit + 1`` rows into the page and the next cursor."""
    limit = min(limit, MAX_LIMIT)
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(getattr(last, created_attr), str(getattr(last, id_attr)))
