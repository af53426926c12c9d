"""The Standard Webhooks message: the JSON body, and the headers that sign it.

Body: ``{"type": ..., "timestamp": ..., "data": ...}``. Headers: ``webhook-id`` (the event id,
the same on every attempt, so the partner de-duplicates), ``webhook-timestamp`` (the attempt's
time, in Unix seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">``), computed by the ``standardwebhooks`` package.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

USER_AGENT = "Rateline-Webhooks/0.1"


def iso_utc(moment: datetime) -> str:
    """``2026-11-01T09:30:00.123456Z``"""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_payload(event_type: str, time: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "timestamp": iso_utc(time), "data": data}


def encode_body(payload: dict[str, Any]) -> str:
    """The exact text that is signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def signed_headers(secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    timestamp = timestamp.astimezone(UTC)  # the package reads the clock time as UTC
    signature = Webhook(secret).sign(msg_id, timestamp, body)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": signature,
    }
