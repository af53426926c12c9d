"""Invoice-time pricing of a period's quantity: graduated and volume tiers, packages, minimums.

Pure ``Decimal`` arithmetic with **no rounding step**: the invoice line that shows the result
rounds it once, to the currency's minor unit. Rules (catalog, ``UsageRate``):

* **graduated**: each unit is priced in the tier it falls in (the first ``up_to`` units at the
  first tier's price, the next ones at the second's, ...), plus the ``flat_fee`` of every tier
  the quantity reaches (a tier is reached when any quantity falls in it);
* **volume**: every unit is priced at the tier the *total* falls in, plus that tier's fee;
* **package**: ``price`` per started block of ``package_size`` units (2.1 blocks pay 3);
* **minimum charge**: the component costs at least ``minimum_charge``.

Tier bounds are inclusive upper bounds (``up_to``) in strictly increasing order; only the last
tier may be open (``up_to`` is ``None``). A quantity of zero (or less) costs nothing before the
minimum.

Quantities are in the component's priced unit. A caller holding a quantity in a finer measured
unit (seconds for a per-minute price, bytes for a per-GB price) passes it with ``per`` (measured
units per priced unit, e.g. 60): bounds are then scaled up instead of the quantity being divided
down, so the single division by ``per`` comes last, in an 80-digit context. That keeps the
result exact whenever it is a terminating decimal (61 s at 0.30/min is 0.305, not 0.3049999...),
which is what rounding half up to the minor unit needs to decide ties correctly.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "INVOICE_TIME_PRICING",
    "PriceTier",
    "PricingError",
    "graduated",
    "package",
    "price",
    "validate_tiers",
    "volume",
    "with_minimum",
]

# Pricing models priced on the period's total quantity (the others are rated per record).
INVOICE_TIME_PRICING = frozenset({"graduated", "volume", "package"})

# Additions and multiplications are exact (Inexact is trapped, 80 digits is far beyond any
# amount); the one division by ``per`` may not terminate (1/60), so it has its own context.
_EXACT = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.Inexact])
_DIVIDE = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)
_ZERO = Decimal(0)


class PricingError(ValueError):
    """A component that cannot price a quantity (bad tiers, no package size, too much)."""


@dataclass(frozen=True, slots=True)
class PriceTier:
    """One tier: ``up_to`` (inclusive upper bound, ``None`` for the open last tier),
    ``unit_price`` per priced unit, ``flat_fee`` once when the tier is reached."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = _ZERO


def validate_tiers(tiers: Sequence[PriceTier]) -> None:
    """Raise :class:`PricingError` unless the tiers are usable: at least one, bounds positive and
    strictly increasing, only the last one open, no negative price or fee."""
    if not tiers:
        raise PricingError("a tiered price needs at least one tier")
    previous = _ZERO
    for index, tier in enumerate(tiers):
        if tier.unit_price < 0 or tier.flat_fee < 0:
            raise PricingError(f"tier {index + 1} has a negative price or fee")
        if tier.up_to is None:
            if index != len(tiers) - 1:
                raise PricingError(f"tier {index + 1} is open (no up_to) but is not the last")
            continue
        if tier.up_to <= previous:
            raise PricingError(f"tier {index + 1} ends at {tier.up_to}, not after {previous}")
        previous = tier.up_to


def _check_quantity(quantity: Decimal, per: Decimal) -> None:
    if not quantity.is_finite():
        raise PricingError(f"{quantity} is not a quantity")
    if not per.is_finite() or per <= 0:
        raise PricingError(f"per must be a positive number of measured units, not {per}")


def _bound(tier: PriceTier, per: Decimal) -> Decimal | None:
    return None if tier.up_to is None else _EXACT.multiply(tier.up_to, per)


def _too_much(quantity: Decimal, tiers: Sequence[PriceTier], per: Decimal) -> PricingError:
    last = tiers[-1].up_to
    return PricingError(
        f"quantity {_DIVIDE.divide(quantity, per)} is beyond the last tier (up to {last}); "
        "the last tier must be open"
    )


def graduated(quantity: Decimal, tiers: Sequence[PriceTier], *, per: Decimal | int = 1) -> Decimal:
    """Each unit at the price of the tier it falls in, plus the fee of every tier reached."""
    per = Decimal(per)
    _check_quantity(quantity, per)
    validate_tiers(tiers)
    if quantity <= 0:
        return _ZERO
    variable = _ZERO  # sum of (measured units in tier) * unit price, divided by per at the end
    fees = _ZERO
    lower = _ZERO
    for tier in tiers:
        if quantity <= lower:
            break
        upper = _bound(tier, per)
        in_tier = _EXACT.subtract(quantity if upper is None else min(quantity, upper), lower)
        variable = _EXACT.add(variable, _EXACT.multiply(in_tier, tier.unit_price))
        fees = _EXACT.add(fees, tier.flat_fee)
        if upper is None:
            lower = quantity
            break
        lower = upper
    if quantity > lower:
        raise _too_much(quantity, tiers, per)
    return _DIVIDE.add(_DIVIDE.divide(variable, per), fees)


def volume(quantity: Decimal, tiers: Sequence[PriceTier], *, per: Decimal | int = 1) -> Decimal:
    """Every unit at the price of the tier the total falls in, plus that tier's fee."""
    per = Decimal(per)
    _check_quantity(quantity, per)
    validate_tiers(tiers)
    if quantity <= 0:
        return _ZERO
    for tier in tiers:
        upper = _bound(tier, per)
        if upper is None or quantity <= upper:
            variable = _EXACT.multiply(quantity, tier.unit_price)
            return _DIVIDE.add(_DIVIDE.divide(variable, per), tier.flat_fee)
    raise _too_much(quantity, tiers, per)


def package(
    quantity: Decimal, package_size: Decimal, unit_price: Decimal, *, per: Decimal | int = 1
) -> Decimal:
    """``unit_price`` per started block of ``package_size`` priced units."""
    per = Decimal(per)
    _check_quantity(quantity, per)
    if not package_size.is_finite() or package_size <= 0:
        raise PricingError(f"a package needs a positive size, not {package_size}")
    if unit_price < 0:
        raise PricingError("a package price cannot be negative")
    if quantity <= 0:
        return _ZERO
    block = _EXACT.multiply(package_size, per)
    blocks, rest = _EXACT.divmod(quantity, block)
    if rest:
        blocks += 1
    return _EXACT.multiply(blocks, unit_price)


def with_minimum(amount: Decimal, minimum_charge: Decimal | None) -> Decimal:
    """The amount, raised to the minimum charge if there is one."""
    if minimum_charge is None:
        return amount
    return max(amount, minimum_charge)


def price(
    pricing: str,
    quantity: Decimal,
    *,
    tiers: Sequence[PriceTier] = (),
    unit_price: Decimal = _ZERO,
    package_size: Decimal | None = None,
    minimum_charge: Decimal | None = None,
    per: Decimal | int = 1,
) -> Decimal:
    """Price ``quantity`` with an invoice-time model (``graduated``, ``volume``, ``package``),
    then apply the minimum charge. ``unit_price`` is the package price."""
    if pricing == "graduated":
        amount = graduated(quantity, tiers, per=per)
    elif pricing == "volume":
        amount = volume(quantity, tiers, per=per)
    elif pricing == "package":
        if package_size is None:
            raise PricingError("package pricing needs a package_size")
        amount = package(quantity, package_size, unit_price, per=per)
    else:
        raise PricingError(f"{pricing!r} is not an invoice-time pricing model")
    return with_minimum(amount, minimum_charge)
