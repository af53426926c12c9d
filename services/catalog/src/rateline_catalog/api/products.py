"""Products: what the operator sells (mobile, broadband, ...); plans price a product."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_catalog import repository as repo
from rateline_catalog.api.plans import invalid
from rateline_catalog.api.schemas import Product, ProductCreate, ProductPage
from rateline_catalog.domain.plans import PlanInvalid
from rateline_catalog.domain.products import validate_product
from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow, utcnow
from rateline_shared.errors import PROBLEM_RESPONSES, Conflict, NotFound, field_error

router = APIRouter(prefix="/v1", tags=["products"], responses=PROBLEM_RESPONSES)

Read = Annotated[Principal, Depends(require_scope("catalog:read"))]
Write = Annotated[Principal, Depends(require_scope("catalog:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def _view(row: RowMapping) -> Product:
    return Product(
        id=row["id"],
        code=row["code"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
    )


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    response_model=Product,
    summary="Create a product",
)
async def create_product(body: ProductCreate, principal: Write, session: Session) -> Product:
    """Create a product (``code`` unique per tenant, 409 otherwise; 1-64 letters, digits,
    ``.``, ``_`` or ``-``). Plans reference it with ``product_id``."""
    try:
        validate_product(body.code, body.name, body.description)
    except PlanInvalid as err:
        raise invalid(err.issues, "the product is not valid") from err
    row = await repo.insert_product(
        session,
        {
            "id": str(uuid.uuid4()),
            "tenant": principal.tenant,
            "code": body.code,
            "name": body.name,
            "description": body.description,
            "created_at": utcnow(),
        },
    )
    if row is None:
        message = f"a product with code {body.code!r} already exists"
        raise Conflict(message, errors=[field_error("code", message, "taken")])
    return _view(row)


@router.get("/products", response_model=ProductPage, summary="List products")
async def list_products(
    principal: Read,
    session: Session,
    code: Annotated[str | None, Query(description="Only the product with this code")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ProductPage:
    """The tenant's products, oldest first (cursor pagination)."""
    rows, nxt = await repo.list_products(
        session, principal.tenant, cursor=cursor, limit=limit, filters={"code": code}
    )
    return ProductPage(items=[_view(r) for r in rows], next_cursor=nxt)


@router.get("/products/{product_id}", response_model=Product, summary="Get a product")
async def get_product(product_id: str, principal: Read, session: Session) -> Product:
    """One product of the tenant (404 if it does not exist for this tenant)."""
    row = await repo.get_product(session, principal.tenant, product_id)
    if row is None:
        raise NotFound(f"product {product_id} not found")
    return _view(row)
