"""Retry maths for deliveries: after a failed attempt, when is the next one, or is it over?

``schedule[i]`` is the delay before attempt ``i + 2``: the first attempt goes out at once,
and a delivery has ``len(schedule) + 1`` attempts in a round (a replay starts a new round).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

DeliveryStatus = Literal["pending", "sending", "delivered", "failed"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "sending", "delivered", "failed")


def max_attempts(schedule: Sequence[float]) -> int:
    return len(schedule) + 1


def retry_delay(failed_attempts: int, schedule: Sequence[float]) -> float | None:
    """Seconds to wait after the ``failed_attempts``-th failure, or ``None``: give up."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts counts attempts made, starting at 1")
    if failed_attempts > len(schedule):
        return None
    return float(schedule[failed_attempts - 1])


def is_success(status_code: int | None) -> bool:
    """Standard Webhooks: any 2xx is a success; everything else (3xx included) is retried."""
    return status_code is not None and 200 <= status_code < 300


@dataclass(frozen=True, slots=True)
class Transition:
    status: DeliveryStatus
    next_attempt_at: datetime | None


def after_attempt(
    *, status_code: int | None, round_attempts: int, schedule: Sequence[float], now: datetime
) -> Transition:
    """Where a delivery goes after its ``round_attempts``-th attempt of this round ended."""
    if is_success(status_code):
        return Transition("delivered", None)
    delay = retry_delay(round_attempts, schedule)
    if delay is None:
        return Transition("failed", None)
    return Transition("pending", now + timedelta(seconds=delay))
