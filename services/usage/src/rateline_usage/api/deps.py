"""Dependencies shared by the usage routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_shared.auth import Principal, require_scope
from rateline_shared.db import uow
from rateline_usage.settings import UsageSettings

Read = Annotated[Principal, Depends(require_scope("usage:read"))]
Write = Annotated[Principal, Depends(require_scope("usage:write"))]
Session = Annotated[AsyncSession, Depends(uow)]


def _settings(request: Request) -> UsageSettings:
    settings: UsageSettings = request.app.state.usage_settings
    return settings


Settings = Annotated[UsageSettings, Depends(_settings)]
