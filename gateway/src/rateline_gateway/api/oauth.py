"""OAuth2 client-credentials token endpoint (RFC 6749 §4.4) and the public JWKS."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rateline_gateway import repository as repo
from rateline_gateway.api.deps import Keys, Session, Settings
from rateline_gateway.api.schemas import Jwks, OAuthError, TokenResponse
from rateline_gateway.domain.credentials import dummy_hash, verify_secret
from rateline_gateway.domain.scopes import SCOPE_DESCRIPTIONS, ScopeError, granted_scopes
from rateline_shared.auth import claims_for

router = APIRouter(tags=["oauth"])

GRANT_TYPE = "client_credentials"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

TOKEN_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        FORM_MEDIA_TYPE: {
            "schema": {
                "type": "object",
                "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "enum": [GRANT_TYPE]},
                    "scope": {
                        "type": "string",
                        "description": "Space-separated subset of the client's scopes "
                        "(default: all of them). Known scopes: " + ", ".join(SCOPE_DESCRIPTIONS),
                    },
                    "client_id": {
                        "type": "string",
                        "description": "client_secret_post; or use HTTP Basic instead",
                    },
                    "client_secret": {
                        "type": "string",
                        "description": "client_secret_post; or use HTTP Basic instead",
                    },
                },
            }
        }
    },
}


def _ascii_safe(text: str) -> str:
    """RFC 6749 restricts error_description to %x20-21 / %x23-5B / %x5D-7E."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)[:200]


def invalid_client(description: str) -> InvalidClientError:
    return InvalidClientError(description=description, status_code=401)


async def oauth_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """RFC 6749 §5.2 JSON error body, with the headers authlib attaches (401 gets
    ``WWW-Authenticate: Basic ...``, every error gets ``Cache-Control: no-store``)."""
    assert isinstance(exc, OAuth2Error)
    body: dict[str, Any] = {"error": exc.error}
    description = exc.get_error_description()  # get_body() skips the computed ones
    if description:
        body["error_description"] = description
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return JSONResponse(body, status_code=exc.status_code or 400, headers=headers)


async def read_form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequestError(f"the body must be {FORM_MEDIA_TYPE}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequestError("the request body is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("the body is not valid form data") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise InvalidRequestError(_ascii_safe(f"the parameter {key} is repeated"))
        if value != "":  # RFC 6749 §3.2: a parameter without a value counts as omitted
            form[key] = value
    return form


def client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """(client_id, client_secret) from HTTP Basic (client_secret_basic) or the form
    (client_secret_post); using both at once is an invalid_request."""
    authorization = request.headers.get("authorization", "")
    if authorization.split(" ", 1)[0].lower() == "basic":
        if "client_secret" in form:
            raise InvalidRequestError("use one client authentication method, not two")
        basic_id, basic_secret = extract_basic_authorization(request.headers)
        if not basic_id or basic_secret is None:
            raise invalid_client("malformed HTTP Basic client credentials")
        if "client_id" in form and form["client_id"] != basic_id:
            raise InvalidRequestError("client_id does not match the HTTP Basic credentials")
        return str(basic_id), str(basic_secret)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if not client_id or not secret:
        raise invalid_client(
            "client authentication is required (HTTP Basic or client_id and client_secret)"
        )
    return client_id, secret


@router.post(
    "/oauth/token",
    response_model=TokenResponse,
    openapi_extra={"requestBody": TOKEN_REQUEST_BODY},
    responses={
        400: {"model": OAuthError, "description": "invalid_request, unsupported_grant_type "
              "or invalid_scope"},
        401: {"model": OAuthError, "description": "invalid_client"},
    },
)
async def issue_token(request: Request, session: Session, keys: Keys, settings: Settings) -> Any:
    """Issue an access token with the OAuth2 client-credentials grant (RFC 6749 §4.4).

    Send `grant_type=client_credentials` form-encoded, authenticating the client with HTTP
    Basic (`client_secret_basic`) or with `client_id` and `client_secret` form fields
    (`client_secret_post`). An optional `scope` narrows the token to a subset of the client's
    scopes. The token is an RS256 JWT verifiable with `/.well-known/jwks.json`.
    """
    form = await read_form(request)
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequestError("grant_type is required")
    if grant_type != GRANT_TYPE:
        raise UnsupportedGrantTypeError(_ascii_safe(grant_type))
    client_id, secret = client_credentials(request, form)

    client = await repo.get_client(session, client_id)
    encoded = client["secret_hash"] if client is not None else dummy_hash()
    matches = await asyncio.to_thread(verify_secret, secret, encoded)
    if client is None or not matches:
        raise invalid_client("unknown client or wrong client secret")
    if client["disabled"]:
        raise invalid_client("the client is disabled")
    try:
        scopes = granted_scopes(form.get("scope"), client["scopes"])
    except ScopeError as err:
        raise InvalidScopeError(_ascii_safe(err.message)) from err

    claims = claims_for(
        client_id=client_id,
        tenant=client["tenant"],
        scopes=scopes,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.token_ttl,
    )
    body = TokenResponse(
        access_token=keys.sign(claims),
        token_type="Bearer",
        expires_in=settings.token_ttl,
        scope=" ".join(scopes),
    )
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.get("/.well-known/jwks.json", response_model=Jwks)
async def jwks(keys: Keys) -> JSONResponse:
    """The public keys that verify the gateway's access tokens (RFC 7517 JWK Set)."""
    return JSONResponse(keys.jwks(), headers={"Cache-Control": "public, max-age=300"})
