"""The one public OpenAPI document (the gateway's own routes merged with every service's
``/v1`` routes) and Swagger UI on top of it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from rateline_gateway.api.deps import UpstreamsDep
from rateline_gateway.domain.openapi import merge_openapi
from rateline_gateway.domain.scopes import SCOPE_DESCRIPTIONS

router = APIRouter(include_in_schema=False)

API_TITLE = "Rateline API"
API_DESCRIPTION = (
    "Telecom billing: accounts and lines, plans and tariffs, usage rating, invoices, payments "
    "and webhooks. Get a token with the OAuth2 client-credentials grant at `/oauth/token` and "
    "send it as `Authorization: Bearer <token>`. Errors are RFC 9457 problem+json; lists are "
    "cursor-paginated; money is a decimal string with its currency."
)
TOKEN_URL = "/oauth/token"


@router.get("/openapi.json")
async def openapi(request: Request, upstreams: UpstreamsDep) -> JSONResponse:
    """The merged OpenAPI document; services that are down are listed in
    ``info.x-rateline-missing`` instead of failing the document."""
    documents = await upstreams.openapi_documents()
    merged = merge_openapi(
        gateway=request.app.openapi(),
        upstreams=documents,
        token_url=TOKEN_URL,
        scopes=SCOPE_DESCRIPTIONS,
        title=API_TITLE,
        version=request.app.version,
        description=API_DESCRIPTION,
    )
    return JSONResponse(merged)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """Swagger UI showing the merged document."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{API_TITLE} - Swagger UI",
        swagger_ui_parameters={"persistAuthorization": True},
    )
