"""Per-unit rating: measured quantity -> billed quantity (increments) -> chargeable -> amount.

Pure ``Decimal``/integer arithmetic, no I/O, no floats.

Every service is measured in its base unit (``rateline_rating.units``): voice in seconds,
sms/mms in messages, data in bytes. A rate bills the measured quantity in increments: the first
increment is the least billed, every further started ``increment`` is billed whole (both in the
base unit). With 60/60 a call of 1..60 s bills 60 s, 61..120 s bills 120 s; a 0 s call (not
answered) and a 0-byte session bill nothing. sms/mms are billed per message (increments 1).

An allowance covers a *prefix* of the billed increments (the first increment, then further
whole increments, while the balance lasts; see :mod:`.allowances`); the rest is chargeable:
``amount = chargeable / measured-per-priced-unit * price`` (voice per minute or second, data per
KB/MB/GB, 1024-based). For the invoice-time models (graduated, volume, package) the record
carries amount 0 and its chargeable quantity; the invoice prices the period's total.

Rounding happens exactly ONCE, on the rated amount of one record, to :data:`RATED_PRECISION`
(4 decimals) with :data:`RATED_ROUNDING` (half up). Tariff-priced records keep the tariff's own
rounding instead (see :mod:`.tariffing`). Rounding to the currency's minor unit is the
invoice's job (``Money.round_minor``), per line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from rateline_rating.units import MEASURED_PER_UNIT, MEASURED_UNITS, PRICED_UNITS

# The one rounding step of per-unit rating: every rated amount is quantized to 4 decimals, half up.
RATED_PRECISION = Decimal("0.0001")
RATED_ROUNDING = ROUND_HALF_UP

SERVICE_VOICE = "voice"
SERVICE_SMS = "sms"
SERVICE_MMS = "mms"
SERVICE_DATA = "data"
SERVICES = (SERVICE_VOICE, SERVICE_SMS, SERVICE_MMS, SERVICE_DATA)
# What the measured quantity of each service counts (also the unit of ``billed_quantity``).
QUANTITY_UNITS: dict[str, str] = dict(MEASURED_UNITS)

PER_UNIT = "per_unit"
TARIFF = "tariff"
GRADUATED = "graduated"
VOLUME = "volume"
PACKAGE = "package"
INVOICE_TIME = frozenset({GRADUATED, VOLUME, PACKAGE})
PRICINGS = frozenset({PER_UNIT, TARIFF, *INVOICE_TIME})

ZERO = Decimal(0)
# Exact until the one rounding step: products and quotients of rating are computed with 60
# significant digits (a quotient by 2**30 has 30 decimals), then quantized once.
_EXACT = Context(prec=60)
_PER_UNIT = {unit: Decimal(n) for unit, n in MEASURED_PER_UNIT.items()}


class RatingError(ValueError):
    """The rate cannot rate this usage (a unit, pricing or service this code does not know)."""


@dataclass(frozen=True, slots=True)
class TariffRef:
    category: str
    subject: str  # "*line": the line's E.164 digits without "+"


@dataclass(frozen=True, slots=True)
class Rate:
    """A plan version's usage charge for one service (``UsageRate`` of the catalog's events)."""

    service: str
    unit: str
    price: Decimal
    first_increment: int = 1
    increment: int = 1
    pricing: str = PER_UNIT
    tariff: TariffRef | None = None


@dataclass(slots=True)  # not frozen: built per record, frozen init is slower
class Charge:
    """The result of rating one record."""

    quantity: Decimal  # as measured, in ``unit``
    billed_quantity: Decimal  # after increments, same unit
    unit: str  # second | message | byte
    amount: Decimal  # per_unit: quantized to RATED_PRECISION; tariff: the tariff's rounding
    pricing: str = PER_UNIT
    allowance_code: str | None = None
    allowance_used: Decimal = ZERO  # in ``unit``
    rating_plan: str | None = None  # tariff: the CGRateS rating plan that priced it
    intervals: tuple[dict[str, Any], ...] | None = field(default=None)  # tariff: JSON-able intervals

    @property
    def chargeable_quantity(self) -> Decimal:
        return self.billed_quantity - self.allowance_used


def round_rated(amount: Decimal) -> Decimal:
    """The single rounding step of per-unit rating (see :data:`RATED_PRECISION`)."""
    return amount.quantize(RATED_PRECISION, rounding=RATED_ROUNDING)


def billed_units(quantity: int, first_increment: int, increment: int) -> int:
    """Units billed for ``quantity`` measured units with ``first_increment/increment``."""
    if first_increment < 1 or increment < 1:
        raise RatingError("increments must be at least 1")
    if quantity < 0:
        raise RatingError("a quantity cannot be negative")
    if quantity == 0:
        return 0
    if quantity <= first_increment:
        return first_increment
    steps = -(-(quantity - first_increment) // increment)  # ceiling division on integers
    return first_increment + steps * increment


billed_seconds = billed_units  # voice: the same rule in seconds


def increments_of(quantity: int, first_increment: int, increment: int) -> tuple[tuple[Decimal, int], ...]:
    """The billed quantity as ``(size, count)`` groups in order: the first increment, the rest."""
    billed = billed_units(quantity, first_increment, increment)
    if billed == 0:
        return ()
    rest = (billed - first_increment) // increment
    groups = [(Decimal(first_increment), 1)]
    if rest:
        groups.append((Decimal(increment), rest))
    return tuple(groups)


def covered_prefix(remaining: Decimal, increments: Sequence[tuple[Decimal, int]]) -> list[int]:
    """How many increments of each group an allowance with ``remaining`` covers.

    Increments are covered whole and in order; the first one that does not fit ends the
    covered prefix (the allowance is consumed before any overage, never after it).
    """
    covered: list[int] = []
    stop = remaining <= 0
    for size, count in increments:
        if stop or size <= 0:
            covered.append(0)
            continue
        fit = min(count, int(remaining // size))
        covered.append(fit)
        remaining -= size * fit
        if fit < count:
            stop = True
    return covered


def covered_units(remaining: Decimal, billed: int, first_increment: int, increment: int) -> Decimal:
    """What :func:`covered_prefix` covers of ``increments_of`` a billed quantity, in closed form:
    the first increment if it fits, then as many further whole increments as fit."""
    if billed == 0 or remaining < first_increment:
        return ZERO
    further = min(int((remaining - first_increment) // increment), (billed - first_increment) // increment)
    return Decimal(first_increment + further * increment)


def check_rate(rate: Rate) -> None:
    """Raise :class:`RatingError` when ``rate`` cannot price its service."""
    if rate.service not in PRICED_UNITS:
        raise RatingError(f"unknown service {rate.service!r}")
    if rate.pricing not in PRICINGS:
        raise RatingError(f"unknown pricing {rate.pricing!r}")
    if rate.pricing != TARIFF and rate.unit not in PRICED_UNITS[rate.service]:
        raise RatingError(f"{rate.service} cannot be priced per {rate.unit!r}")


def rate_per_unit(
    service: str,
    quantity: int,
    rate: Rate,
    *,
    allowance_remaining: Decimal | None = None,
    allowance_code: str | None = None,
) -> Charge:
    """Rate ``quantity`` (base units) with a per-unit or invoice-time ``rate``.

    ``allowance_remaining`` (base units) covers a prefix of the billed increments first.
    """
    if rate.service != service:
        raise RatingError(f"a {rate.service} rate cannot rate {service}")
    check_rate(rate)
    if rate.pricing == TARIFF:
        raise RatingError("tariff pricing is rated by the tariff engine")
    if service == SERVICE_SMS or service == SERVICE_MMS:
        first = inc = 1
    else:
        first, inc = rate.first_increment, rate.increment
    billed = Decimal(billed_units(quantity, first, inc))
    used = ZERO
    if allowance_remaining is not None and billed and allowance_remaining >= first:
        used = covered_units(allowance_remaining, int(billed), first, inc)
    if rate.pricing in INVOICE_TIME:
        amount = round_rated(ZERO)
    else:
        chargeable = billed - used if used else billed
        amount = round_rated(_EXACT.divide(_EXACT.multiply(chargeable, rate.price), _PER_UNIT[rate.unit]))
    return Charge(
        Decimal(quantity),
        billed,
        QUANTITY_UNITS[service],
        amount,
        rate.pricing,
        allowance_code if used > 0 else None,
        used,
    )


def rate_usage(service: str, quantity: int, rate: Rate) -> Charge:
    """Rate ``quantity`` (seconds, messages or bytes) with a per-unit ``rate``, no allowance."""
    return rate_per_unit(service, quantity, rate)
