"""Tariff pricing: a record rated by the tenant's imported (CGRateS) tariff plan. Pure.

The tenant's latest ``catalog.tariff.imported`` is in force; :func:`compile_tariff` turns its
files into a :class:`TariffBook` once (the service caches it per import id). A record is rated
with the engine's ``get_cost`` for the rate's ``TariffRef``: category as given, subject as given
(``*line`` = the line's E.164 number without "+"), destination = the record's destination as
digits (:func:`tariff_destination`), start = the record's start, usage = seconds (voice), a
message count (sms/mms) or bytes (data). The result keeps the engine's rounding: the cost is
the destination rate's ``RoundingMethod``/``RoundingDecimals`` (not the 4 decimals of per-unit
rating).

Allowances on tariff-priced records (rule): the engine first rates the whole record; the
allowance then covers a prefix of its intervals' increments in time order (whole increments,
stopping at the first that does not fit; increment sizes in the base unit: seconds, messages,
bytes). The connect fee is still charged. When something is covered, the amount is
``connect fee + sum of the uncovered increments' costs``, capped at the destination rate's
MaxCost when the engine reached it, then rounded with the first interval's destination rate
method and decimals; when nothing is covered it is the engine's cost unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rateline_rating.tariffs.csvimport import TariffImportError, parse_tariff_plan
from rateline_rating.tariffs.engine import CostResult, Interval, get_cost, round_total
from rateline_rating.tariffs.model import NANOS_PER_SECOND, DestinationRate, RatingProfile
from rateline_shared.events.payloads import decode_tariff_files, encode_tariff_files
from rateline_usage.domain.rating import (
    QUANTITY_UNITS,
    SERVICE_VOICE,
    ZERO,
    Charge,
    TariffRef,
    covered_prefix,
)

LINE_SUBJECT = "*line"
_SEPARATORS = str.maketrans("", "", " -().")


class TariffFilesError(ValueError):
    """The import's files cannot be decoded or compiled."""


@dataclass(frozen=True, slots=True)
class TariffBook:
    """One compiled tariff import (immutable; shared by every record and batch)."""

    import_id: str
    currency: str
    timezone: str
    profiles: tuple[RatingProfile, ...]
    destination_rates: Mapping[str, DestinationRate]


def decode_files(files_gzip_b64: str) -> dict[str, str]:
    """``{file name: text}`` of an import (the contract's encoding, ``rateline_shared``)."""
    try:
        return decode_tariff_files(files_gzip_b64)
    except ValueError as exc:
        raise TariffFilesError(str(exc)) from exc


encode_files = encode_tariff_files  # what the catalog publishes (tests build imports with it)


def compile_tariff(import_id: str, currency: str, timezone: str, files_gzip_b64: str) -> TariffBook:
    """Decode and parse an import's files into a :class:`TariffBook` (once per import)."""
    files = decode_files(files_gzip_b64)
    try:
        plan = parse_tariff_plan(files)
    except TariffImportError as exc:
        raise TariffFilesError(f"the tariff plan does not compile: {exc}") from exc
    return TariffBook(import_id, currency, timezone, plan.profiles, plan.destination_rates)


def tariff_destination(raw: str | None) -> str | None:
    """The destination as CGRateS prefixes expect it: "+49 30-123" -> "4930123".

    A leading "+" and separators (space, "-", ".", parentheses) are dropped; a destination that
    is not a number (e.g. ``voicemail``) is kept as written. ``None`` when empty.
    """
    if raw is None:
        return None
    value = raw.strip()
    digits = value.lstrip("+").translate(_SEPARATORS)
    if digits.isdigit():
        return digits
    return value or None


def line_digits(msisdn: str) -> str:
    """An E.164 number without "+": the subject ``*line`` stands for."""
    return msisdn.lstrip("+")


def _usage(service: str, quantity: int) -> dt.timedelta | int:
    return dt.timedelta(seconds=quantity) if service == SERVICE_VOICE else quantity


def _scale(service: str) -> Decimal:
    """Engine units per base unit: nanoseconds per second for voice, 1 otherwise."""
    return Decimal(NANOS_PER_SECOND) if service == SERVICE_VOICE else Decimal(1)


def _interval_json(
    interval: Interval, scale: Decimal, covered: int, cost: Decimal
) -> dict[str, Any]:
    return {
        "start": interval.start.isoformat(),
        "duration": str(Decimal(interval.duration) / scale),
        "destination_rate": interval.destination_rate_id,
        "timing": interval.timing_id,
        "rate": str(interval.rate),
        "rate_unit": str(Decimal(interval.rate_unit) / scale),
        "rate_increment": str(Decimal(interval.rate_increment) / scale),
        "increments": interval.increments,
        "increment_cost": str(interval.increment_cost),
        "cost": str(cost),
        "allowance_increments": covered,
    }


def cost_of(
    book: TariffBook,
    ref: TariffRef,
    *,
    msisdn: str,
    destination: str,
    start: dt.datetime,
    service: str,
    quantity: int,
) -> CostResult:
    """The engine's cost for the whole record (raises the engine's ``TariffError`` subclasses)."""
    subject = line_digits(msisdn) if ref.subject == LINE_SUBJECT else ref.subject
    return get_cost(
        book.profiles, ref.category, subject, destination, start, _usage(service, quantity),
        timezone=book.timezone,
    )


def rate_tariff(
    book: TariffBook,
    ref: TariffRef,
    *,
    msisdn: str,
    destination: str,
    start: dt.datetime,
    service: str,
    quantity: int,
    allowance_remaining: Decimal | None = None,
    allowance_code: str | None = None,
) -> Charge:
    """Rate one record with the tariff, an allowance covering its first increments (see above)."""
    result = cost_of(
        book, ref, msisdn=msisdn, destination=destination, start=start, service=service, quantity=quantity
    )
    scale = _scale(service)
    groups = [(Decimal(i.rate_increment) / scale, i.increments) for i in result.intervals]
    covered = [0] * len(groups)
    if allowance_remaining is not None and allowance_remaining > 0 and groups:
        covered = covered_prefix(allowance_remaining, groups)
    used = sum((size * n for (size, _), n in zip(groups, covered, strict=True)), ZERO)
    amount = result.cost
    if used > 0:
        total = result.connect_fee + sum(
            ((i.increments - n) * i.increment_cost for i, n in zip(result.intervals, covered, strict=True)), ZERO
        )
        first = book.destination_rates.get(result.intervals[0].destination_rate_id)
        if first is not None:
            if result.max_cost_reached and first.max_cost > 0:
                total = min(total, first.max_cost)
            amount = round_total(total, first.rounding_method, first.rounding_decimals)
        else:  # pragma: no cover - intervals always name a destination rate of the plan
            amount = total
    intervals = tuple(
        _interval_json(i, scale, n, (i.increments - n) * i.increment_cost if used > 0 else i.cost)
        for i, n in zip(result.intervals, covered, strict=True)
    )
    return Charge(
        quantity=Decimal(quantity),
        billed_quantity=Decimal(result.usage) / scale,
        unit=QUANTITY_UNITS[service],
        amount=amount,
        pricing="tariff",
        allowance_code=allowance_code if used > 0 else None,
        allowance_used=used,
        rating_plan=result.rating_plan_id,
        intervals=intervals,
    )
