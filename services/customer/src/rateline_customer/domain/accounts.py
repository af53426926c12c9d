"""Pure rules for accounts and lines: no I/O here."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers

MIN_CYCLE_DAY, MAX_CYCLE_DAY = 1, 28


class DomainError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_timezone(name: str) -> str:
    if name not in available_timezones():
        raise DomainError("timezone", f"{name!r} is not an IANA time zone (e.g. Europe/Berlin)")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - guarded above
        raise DomainError("timezone", str(exc)) from exc
    return name


def check_cycle_day(day: int) -> int:
    """Bill-cycle days stop at 28 so every month has the day (no month-end drift)."""
    if not MIN_CYCLE_DAY <= day <= MAX_CYCLE_DAY:
        raise DomainError("bill_cycle_day", f"must be between {MIN_CYCLE_DAY} and {MAX_CYCLE_DAY}")
    return day


def normalise_msisdn(raw: str, country: str) -> str:
    """E.164 via libphonenumber: ``0171 1234567`` with country DE becomes ``+491711234567``."""
    try:
        number = phonenumbers.parse(raw, country.upper())
    except phonenumbers.NumberParseException as exc:
        raise DomainError("msisdn", f"{raw!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise DomainError("msisdn", f"{raw!r} is not a valid number for {country.upper()}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_country(code: str) -> str:
    code = code.upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise DomainError("country", f"{code!r} is not an ISO 3166 country code")
    return code
