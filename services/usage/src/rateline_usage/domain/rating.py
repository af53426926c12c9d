"""Rating: turn a measured quantity and a rate into a billed quantity and an amount.

Pure ``Decimal`` arithmetic, no I/O, no floats.

Voice is billed in seconds with two increments taken from the rate: the first increment is
the minimum billed time, every further started ``increment`` seconds is billed in full. With
60/60 a call of 1..60 s bills 60 s, 61..120 s bills 120 s; 90 s bills 120 s = 2 minutes. A call
of 0 s (not answered) bills nothing. The amount is ``billed_seconds / 60 * price_per_minute``.
SMS is billed per message: ``count * price``.

Rounding happens exactly ONCE, on the rated amount of one record, to :data:`RATED_PRECISION`
(4 decimals) with :data:`RATED_ROUNDING` (half up). Rated amounts keep this sub-cent precision;
rounding to the currency's minor unit is the invoice's job (``Money.round_minor``), per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

# The one rounding step of rating: every rated amount is quantized to 4 decimals, half up.
RATED_PRECISION = Decimal("0.0001")
RATED_ROUNDING = ROUND_HALF_UP

SERVICE_VOICE = "voice"
SERVICE_SMS = "sms"
# What the measured quantity of each service counts (also the unit of ``billed_quantity``).
QUANTITY_UNITS: dict[str, str] = {SERVICE_VOICE: "second", SERVICE_SMS: "message"}
# Seconds in one priced unit of voice.
SECONDS_PER_PRICED_UNIT: dict[str, int] = {"minute": 60}
PRICED_UNITS: dict[str, str] = {SERVICE_VOICE: "minute", SERVICE_SMS: "message"}


class RatingError(ValueError):
    """The rate cannot rate this usage (a unit or service this code does not know)."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A plan's price for one service (from ``catalog.plan.published``)."""

    service: str
    unit: str
    price: Decimal
    first_increment: int = 1
    increment: int = 1


@dataclass(frozen=True, slots=True)
class Charge:
    """The result of rating one record."""

    quantity: int  # as measured: seconds or messages
    billed_quantity: int  # after increments, same unit
    unit: str  # second | message
    amount: Decimal  # quantized to RATED_PRECISION


def round_rated(amount: Decimal) -> Decimal:
    """The single rounding step of rating (see :data:`RATED_PRECISION`)."""
    return amount.quantize(RATED_PRECISION, rounding=RATED_ROUNDING)


def billed_seconds(duration: int, first_increment: int, increment: int) -> int:
    """Seconds billed for a call of ``duration`` seconds with ``first_increment/increment``."""
    if first_increment < 1 or increment < 1:
        raise RatingError("increments must be at least 1 second")
    if duration < 0:
        raise RatingError("a duration cannot be negative")
    if duration == 0:
        return 0
    if duration <= first_increment:
        return first_increment
    steps = -(-(duration - first_increment) // increment)  # ceiling division on integers
    return first_increment + steps * increment


def rate_voice(duration_seconds: int, rate: Rate) -> Charge:
    per_unit = SECONDS_PER_PRICED_UNIT.get(rate.unit)
    if per_unit is None:
        raise RatingError(f"voice cannot be priced per {rate.unit!r}")
    billed = billed_seconds(duration_seconds, rate.first_increment, rate.increment)
    with localcontext() as ctx:
        ctx.prec = 50  # exact until the one rounding below
        amount = Decimal(billed) * rate.price / Decimal(per_unit)
    return Charge(duration_seconds, billed, QUANTITY_UNITS[SERVICE_VOICE], round_rated(amount))


def rate_sms(count: int, rate: Rate) -> Charge:
    if rate.unit != PRICED_UNITS[SERVICE_SMS]:
        raise RatingError(f"sms cannot be priced per {rate.unit!r}")
    if count < 0:
        raise RatingError("a message count cannot be negative")
    with localcontext() as ctx:
        ctx.prec = 50
        amount = Decimal(count) * rate.price
    return Charge(count, count, QUANTITY_UNITS[SERVICE_SMS], round_rated(amount))


def rate_usage(service: str, quantity: int, rate: Rate) -> Charge:
    """Rate ``quantity`` (seconds for voice, messages for sms) with ``rate``."""
    if rate.service != service:
        raise RatingError(f"a {rate.service} rate cannot rate {service}")
    if service == SERVICE_VOICE:
        return rate_voice(quantity, rate)
    if service == SERVICE_SMS:
        return rate_sms(quantity, rate)
    raise RatingError(f"unknown service {service!r}")
