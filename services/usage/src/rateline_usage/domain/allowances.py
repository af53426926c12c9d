"""Allowances (bundled minutes, messages, bytes) and their balances per billing cycle. Pure.

Rules:

* **Which allowance**: an allowance of the record's plan version applies to a record of its
  ``service`` whose destination (digits, no "+") starts with one of its ``destinations``
  prefixes (no prefixes: any destination, also none). Of the applicable allowances the first
  one in the version's order that still has something left is consumed (one allowance per
  record); when none has, the record is all overage.
* **Balance**: one per (owner, plan, allowance code, cycle). The owner is the subscription,
  or the account when the allowance is ``pooled`` (shared by every subscription of the account
  on that plan; the pool holds the allowance's ``quantity`` once). The cycle is the account's
  billing cycle containing the record's start (``rateline_rating.cycles``).
* **Granted**: fixed when the cycle's balance is first needed:
  ``quantity + min(rollover_cap, unused of the previous cycle's balance)`` (no cap: nothing
  rolls over; no previous balance: nothing rolls over). Everything is in the base unit of the
  service (seconds, messages, bytes; data units 1024-based).
* **Consumption** is in whole increments of the rated quantity and *before* any overage: the
  allowance covers a prefix of the record's increments (per-unit rates: the first increment,
  then each further increment; tariffs: the engine's intervals' increments in time order) and
  stops at the first increment that does not fit whole. ``used`` only grows and never passes
  ``granted``; covered + chargeable = billed.
* **Thresholds**: a percentage ``t`` is reached when ``used`` goes from below
  ``granted * t / 100`` to at or above it; each (balance, threshold) emits one event, ever
  (a unique table decides). Spend caps use the same rule on the subscription's rated amount.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import NamedTuple

ZERO = Decimal(0)
OWNER_SUBSCRIPTION = "subscription"
OWNER_ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class AllowanceView:
    """An ``Allowance`` of a plan version, quantities in the service's base unit."""

    code: str
    service: str
    quantity: Decimal  # base unit
    unit: str  # the allowance's own unit (minute, MB, ...), for display
    destinations: tuple[str, ...] = ()
    pooled: bool = False
    rollover_cap: Decimal | None = None  # base unit; None: unused quantity expires
    thresholds: tuple[int, ...] = (80, 100)

    def applies_to(self, service: str, destination: str | None) -> bool:
        if service != self.service:
            return False
        if not self.destinations:
            return True
        return destination is not None and destination.startswith(self.destinations)


class BalanceKey(NamedTuple):
    """Identifies one balance; sorts deterministically (rows are locked in this order)."""

    owner_kind: str  # subscription | account
    owner_id: str
    plan_id: str
    code: str
    period_start: date


@dataclass(slots=True)
class Balance:
    """A balance as the batch sees it (``used`` grows as records consume it)."""

    key: BalanceKey
    granted: Decimal
    used: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.granted - self.used)


def granted_for(
    quantity: Decimal, rollover_cap: Decimal | None, previous: tuple[Decimal, Decimal] | None
) -> tuple[Decimal, Decimal]:
    """``(granted, rollover)`` of a new cycle's balance; ``previous`` = (granted, used) before."""
    rollover = ZERO
    if rollover_cap is not None and previous is not None:
        unused = max(ZERO, previous[0] - previous[1])
        rollover = min(max(ZERO, rollover_cap), unused)
    return quantity + rollover, rollover


def thresholds_crossed(limit: Decimal, before: Decimal, after: Decimal, thresholds: Iterable[int]) -> list[int]:
    """The percentages of ``limit`` that ``before -> after`` reaches (from below to at/above)."""
    if limit <= 0 or after <= before:
        return []
    out = []
    for t in sorted(set(thresholds)):
        level = limit * t / 100
        if before < level <= after:
            out.append(t)
    return out


class Ledger:
    """The balances a batch may consume, keyed by :class:`BalanceKey` (an in-memory view).

    Built from the locked rows; :meth:`consume` is the only mutation, so ``used`` never
    decreases and never passes ``granted``.
    """

    def __init__(self, balances: Iterable[Balance] = ()) -> None:
        self.balances: dict[BalanceKey, Balance] = {b.key: b for b in balances}

    def get(self, key: BalanceKey) -> Balance | None:
        return self.balances.get(key)

    def consume(self, key: BalanceKey, quantity: Decimal) -> None:
        balance = self.balances[key]
        if quantity < 0 or quantity > balance.remaining:
            raise ValueError(f"cannot consume {quantity} of {balance.remaining} left on {key}")
        balance.used += quantity


def choose(
    candidates: Sequence[tuple[AllowanceView, BalanceKey]], ledger: Ledger
) -> tuple[AllowanceView, Balance] | None:
    """The first applicable allowance whose balance has something left."""
    for allowance, key in candidates:
        balance = ledger.get(key)
        if balance is not None and balance.remaining > 0:
            return allowance, balance
    return None


def balance_now(
    allowance: AllowanceView,
    current: tuple[Decimal, Decimal, Decimal] | None,
    previous: tuple[Decimal, Decimal] | None,
) -> tuple[Decimal, Decimal, Decimal]:
    """``(granted, rollover, used)`` of a cycle's balance: as stored (``current`` = granted,
    rollover, used), or, not touched yet, as it will be created (used 0)."""
    if current is not None:
        return current
    granted, rollover = granted_for(allowance.quantity, allowance.rollover_cap, previous)
    return granted, rollover, ZERO


def in_unit(base: Decimal, per_unit: int, places: int = 6) -> Decimal:
    """A base-unit quantity in a display unit of ``per_unit`` base units (6 decimals at most)."""
    value = (base / Decimal(per_unit)).quantize(Decimal(1).scaleb(-places))
    return value.normalize() if value else Decimal(0)
