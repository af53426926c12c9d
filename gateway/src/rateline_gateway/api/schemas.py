"""Request and response bodies. Input models forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenResponse(BaseModel):
    """RFC 6749 §5.1 access-token response."""

    access_token: str = Field(description="A JWT (RS256) to send as `Authorization: Bearer ...`")
    token_type: str = Field(default="Bearer", examples=["Bearer"])
    expires_in: int = Field(description="Seconds until the token expires", examples=[3600])
    scope: str = Field(description="The granted scopes, space separated", examples=["admin"])


class OAuthError(BaseModel):
    """RFC 6749 §5.2 error response (not problem+json: OAuth clients expect this shape)."""

    error: str = Field(
        examples=["invalid_client"],
        description="invalid_request | invalid_client | unsupported_grant_type | invalid_scope",
    )
    error_description: str | None = None


class Jwk(BaseModel):
    model_config = ConfigDict(extra="allow")

    kty: str
    kid: str
    use: str | None = None
    alg: str | None = None
    n: str
    e: str


class Jwks(BaseModel):
    keys: list[Jwk]


class OAuthClientCreate(Input):
    name: str = Field(min_length=1, max_length=200, examples=["CRM integration"])
    scopes: list[str] = Field(
        min_length=1, examples=[["customers:*", "invoices:read"]],
        description="Scopes the client may ask for: `<area>:read|write|*` or `admin`",
    )
    tenant: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="Defaults to the caller's tenant; only the caller's own tenant is allowed",
    )


class OAuthClient(BaseModel):
    client_id: str
    name: str
    tenant: str
    scopes: list[str]
    disabled: bool
    created_at: dt.datetime


class OAuthClientCreated(OAuthClient):
    client_secret: str = Field(description="Shown once; only a hash of it is stored")


class OAuthClientPage(BaseModel):
    items: list[OAuthClient]
    next_cursor: str | None = None
