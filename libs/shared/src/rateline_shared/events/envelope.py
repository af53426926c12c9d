"""CloudEvents 1.0 JSON envelope with the ``tenant`` and ``correlationid`` extensions.

``type`` is the NATS subject (``<service>.<entity>.<verb-past-tense>``); the payload's schema
version is in ``dataschema`` (``urn:rateline:event:<type>:v<N>``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rateline_shared.logs import current_correlation_id


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime
    datacontenttype: str = "application/json"
    dataschema: str | None = None
    tenant: str
    correlationid: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


def new_event(
    *,
    service: str,
    type: str,
    tenant: str,
    data: BaseModel | dict[str, Any],
    subject: str | None = None,
    version: int = 1,
) -> CloudEvent:
    if not type.startswith(service + "."):
        raise ValueError(f"{service} may only publish {service}.* events, not {type}")
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=f"/rateline/{service}",
        type=type,
        subject=subject,
        time=datetime.now(UTC),
        dataschema=f"urn:rateline:event:{type}:v{version}",
        tenant=tenant,
        correlationid=current_correlation_id(),
        data=payload,
    )
