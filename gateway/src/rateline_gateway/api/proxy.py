"""Every other ``/v1`` request: verify the bearer token, then stream it to the owning service.

The gateway checks only that the token is genuine (401 otherwise); scopes and tenants are the
services' business (they verify the token again and answer 403 themselves).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rateline_gateway.api.deps import UpstreamsDep, Verifier
from rateline_gateway.domain.routing import GATEWAY, owner_of
from rateline_shared.auth import bearer_token
from rateline_shared.errors import NotFound, Problem

router = APIRouter(include_in_schema=False)

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@router.api_route("/v1/{path:path}", methods=METHODS)
async def proxy(request: Request, verifier: Verifier, upstreams: UpstreamsDep) -> Response:
    service = owner_of(request.url.path)
    if service is None:
        raise NotFound(f"no service serves {request.url.path}")
    if service == GATEWAY:  # a gateway route exists there, but not for this method
        raise Problem(
            f"{request.method} is not allowed on {request.url.path}",
            status=405, slug="method-not-allowed", title="Method not allowed",
        )
    await verifier.verify(bearer_token(request))
    return await upstreams.forward(request, service)
