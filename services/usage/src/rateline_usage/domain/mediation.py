"""Mediation: the checks and normalisation a usage record gets before it is rated.

Structural rules (what makes a record malformed, refused with 422 and never stored) and the
normalisation of numbers to E.164 with libphonenumber. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers

from rateline_usage.domain.rating import SERVICE_DATA, SERVICE_MMS, SERVICE_SMS, SERVICE_VOICE

# Most records one POST may carry; more is refused as a whole (413).
MAX_BATCH_RECORDS = 10_000
# Clock skew tolerated between a switch and us: a record may start at most this far ahead.
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class FieldIssue:
    field: str
    code: str
    message: str


def normalise_msisdn(raw: str, default_region: str) -> str | None:
    """E.164 form of ``raw`` (national numbers read in ``default_region``); ``None`` if unreadable.

    Validity is not checked here: a number that is not a known line is rejected by guiding,
    and only valid numbers can become lines in the customer service.
    """
    try:
        number = phonenumbers.parse(raw, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_start(started_at: datetime, now: datetime) -> str | None:
    """``None`` if the start time is acceptable, else why not."""
    if started_at.tzinfo is None:
        return "must carry a time zone"
    if started_at > now + FUTURE_TOLERANCE:
        return "starts more than 1 day in the future"
    return None


def service_field_issues(
    service: str,
    duration_seconds: int | None,
    count: int | None,
    bytes_up: int | None = None,
    bytes_down: int | None = None,
    quantity: int | None = None,
) -> list[FieldIssue]:
    """Which quantity fields each service takes.

    voice: ``duration_seconds`` (required); sms/mms: ``count`` (default 1); data: bytes, as
    ``bytes_up`` and/or ``bytes_down`` (e.g. RADIUS Acct-Input/Output-Octets) or ``quantity``
    (the session's total bytes), not both.
    """
    issues: list[FieldIssue] = []
    given = {
        "duration_seconds": duration_seconds, "count": count, "bytes_up": bytes_up,
        "bytes_down": bytes_down, "quantity": quantity,
    }
    allowed = {
        SERVICE_VOICE: {"duration_seconds"},
        SERVICE_SMS: {"count"},
        SERVICE_MMS: {"count"},
        SERVICE_DATA: {"bytes_up", "bytes_down", "quantity"},
    }.get(service, set())
    for name, value in given.items():
        if value is not None and name not in allowed:
            issues.append(FieldIssue(name, "not-allowed", f"{name} does not apply to {service} records"))
    if service == SERVICE_VOICE and duration_seconds is None:
        issues.append(FieldIssue("duration_seconds", "missing", "voice records need duration_seconds"))
    if service == SERVICE_DATA:
        split = bytes_up is not None or bytes_down is not None
        if split and quantity is not None:
            issues.append(
                FieldIssue("quantity", "not-allowed", "give bytes_up/bytes_down or quantity, not both")
            )
        elif not split and quantity is None:
            issues.append(
                FieldIssue("quantity", "missing", "data records need bytes_up/bytes_down or quantity (bytes)")
            )
    return issues


def quantity_of(
    service: str,
    duration_seconds: int | None,
    count: int | None,
    bytes_up: int | None = None,
    bytes_down: int | None = None,
    quantity: int | None = None,
) -> int:
    """The measured quantity: seconds (voice), messages (sms/mms, 1 when not given), bytes (data)."""
    if service == SERVICE_VOICE:
        assert duration_seconds is not None
        return duration_seconds
    if service == SERVICE_DATA:
        if quantity is not None:
            return quantity
        return (bytes_up or 0) + (bytes_down or 0)
    return 1 if count is None else count


def first_occurrences(keys: Sequence[Hashable]) -> list[int | None]:
    """For each position, the index of an earlier equal key (a duplicate), or ``None``."""
    seen: dict[Hashable, int] = {}
    result: list[int | None] = []
    for index, key in enumerate(keys):
        earlier = seen.get(key)
        result.append(earlier)
        if earlier is None:
            seen[key] = index
    return result
