"""Typed access to what the app holds (settings, signing keys, upstreams, the verifier)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_gateway.keys import SigningKeys
from rateline_gateway.settings import GatewaySettings
from rateline_gateway.upstreams import Upstreams
from rateline_shared.auth import JwksVerifier
from rateline_shared.db import uow
from rateline_shared.errors import ServiceUnavailable


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def get_keys(request: Request) -> SigningKeys:
    keys: SigningKeys | None = getattr(request.app.state, "keys", None)
    if keys is None:
        raise ServiceUnavailable("the gateway is starting; signing keys are not loaded yet")
    return keys


def get_upstreams(request: Request) -> Upstreams:
    upstreams: Upstreams = request.app.state.upstreams
    return upstreams


def get_verifier(request: Request) -> JwksVerifier:
    verifier: JwksVerifier | None = getattr(request.app.state, "verifier", None)
    if verifier is None:
        raise ServiceUnavailable("the gateway is starting; signing keys are not loaded yet")
    return verifier


Settings = Annotated[GatewaySettings, Depends(get_settings)]
Keys = Annotated[SigningKeys, Depends(get_keys)]
UpstreamsDep = Annotated[Upstreams, Depends(get_upstreams)]
Verifier = Annotated[JwksVerifier, Depends(get_verifier)]
Session = Annotated[AsyncSession, Depends(uow)]
