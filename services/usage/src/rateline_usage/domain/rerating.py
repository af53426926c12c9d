"""Re-rating one rated record with the projections as they are now. Pure: no I/O.

A re-rating job (``rateline_usage.rerating``) applies :func:`rerate` to every record in its
scope, chunk by chunk. The rules:

* **Guiding** is the intake's (:func:`~rateline_usage.domain.guiding.guide`): the line that held
  the number at the record's start, its subscription, the plan version in force at the
  record's start (with the plan migrations known now), that version's rate for the service.
* **Tariff**: the tenant's tariff import in force *now* (the latest one), not the one that
  priced the record: a corrected tariff is the usual reason to re-rate.
* **Allowances are neither consumed nor released.** The record keeps its ``allowance_code``
  and ``allowance_used`` and no balance moves: the covered part stays covered. The record is
  priced with exactly its previous use offered as the allowance (per-unit rates: a prefix of
  the billed increments; tariffs: a prefix of the intervals' increments, the connect fee still
  charged), so only what is charged for the uncovered part is recomputed. An allowance the
  record did not use is not consumed now, even if the current version has one.
* A record is **left unchanged and counted skipped**, with a reason, when
  - the current projections cannot rate it: the intake's reject reasons (``unknown-destination``
    when its destination is no longer in the tariff, ``no-tariff``, ``no-rate``, ...);
  - guiding now finds another subscription (``guiding-changed``): a record stays with the
    subscription, account and plan it was rated (and perhaps invoiced) for;
  - its price is now in another currency (``currency-changed``) or by another pricing model
    (``pricing-changed``: per-unit, tariff and the invoice-time models are billed differently);
  - its previous allowance use is no longer a whole-increment prefix of the current rate
    (``allowance-mismatch``: the increments changed; covering it otherwise would consume or
    release allowance).
* A record is **changed** when its amount or its chargeable quantity differs (as numbers);
  ``delta = new amount - old amount`` in the record's currency. With unchanged projections
  every delta is zero and nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rateline_usage.domain.guiding import (
    STATUS_RATED,
    UNRATABLE,
    Directory,
    Guided,
    Outcome,
    Usage,
    guide,
    tariff_charge,
)
from rateline_usage.domain.rating import PER_UNIT, TARIFF, RatingError, rate_per_unit

ZERO = Decimal(0)

# Skip reasons of re-rating (besides the intake's reject reasons).
GUIDING_CHANGED = "guiding-changed"
CURRENCY_CHANGED = "currency-changed"
PRICING_CHANGED = "pricing-changed"
ALLOWANCE_MISMATCH = "allowance-mismatch"


@dataclass(frozen=True, slots=True)
class PreviousRating:
    """What a stored rated record says about its rating."""

    subscription_id: str
    pricing: str
    currency: str
    amount: Decimal
    billed_quantity: Decimal
    chargeable_quantity: Decimal
    allowance_code: str | None = None
    allowance_used: Decimal = ZERO

    @classmethod
    def of(
        cls,
        *,
        subscription_id: str,
        pricing: str | None,
        currency: str,
        amount: Decimal,
        billed_quantity: Decimal,
        chargeable_quantity: Decimal | None,
        allowance_code: str | None,
        allowance_used: Decimal | None,
    ) -> PreviousRating:
        """From stored columns (records rated before allowances have NULLs there)."""
        used = allowance_used or ZERO
        return cls(
            subscription_id=subscription_id,
            pricing=pricing or PER_UNIT,
            currency=currency,
            amount=amount,
            billed_quantity=billed_quantity,
            chargeable_quantity=chargeable_quantity if chargeable_quantity is not None else billed_quantity - used,
            allowance_code=allowance_code if used > 0 else None,
            allowance_used=used,
        )


@dataclass(frozen=True, slots=True)
class Skipped:
    """The record cannot be re-rated now; it is left as it is."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Rerated:
    """The record priced again; ``outcome.charge`` holds the new values."""

    outcome: Outcome
    old_amount: Decimal
    new_amount: Decimal
    old_chargeable: Decimal
    new_chargeable: Decimal

    @property
    def delta(self) -> Decimal:
        return self.new_amount - self.old_amount

    @property
    def changed(self) -> bool:
        return self.new_amount != self.old_amount or self.new_chargeable != self.old_chargeable


def reprice(guided: Guided, directory: Directory, used: Decimal, code: str | None) -> Outcome:
    """Price a guided record with ``used`` of allowance ``code`` covering its first increments
    (no ledger: nothing is consumed). Like :func:`~rateline_usage.domain.guiding.price`."""
    version, rate = guided.version, guided.rate
    remaining = used if used > 0 else None
    context = {
        "line_id": guided.line.line_id,
        "account_id": guided.line.account_id,
        "subscription_id": guided.subscription.subscription_id,
        "plan_id": guided.subscription.plan_id,
        "plan_version": version.version,
    }
    try:
        if rate.pricing == TARIFF:
            charge_or_reason = tariff_charge(guided, directory, remaining, code)
            if isinstance(charge_or_reason, tuple):
                return Outcome("rejected", charge_or_reason[0], charge_or_reason[1], **context)  # type: ignore[arg-type]
            charge = charge_or_reason
        else:
            charge = rate_per_unit(
                guided.usage.service, guided.usage.quantity, rate, allowance_remaining=remaining, allowance_code=code
            )
    except RatingError as err:
        return Outcome("rejected", UNRATABLE, str(err), **context)  # type: ignore[arg-type]
    sub = guided.subscription
    return Outcome(
        STATUS_RATED, None, None, guided.line.line_id, guided.line.account_id, sub.subscription_id, sub.plan_id,
        version.version, charge, version.currency, None, guided.cycle, version.spend_cap,
    )


def rerate(usage: Usage, previous: PreviousRating, directory: Directory) -> Rerated | Skipped:
    """Re-rate one rated record with ``directory`` (the projections now); see the module rules."""
    guided = guide(usage, directory)
    if isinstance(guided, Outcome):
        return Skipped(guided.reason or UNRATABLE, guided.message or "")
    if guided.subscription.subscription_id != previous.subscription_id:
        return Skipped(
            GUIDING_CHANGED,
            f"the record now guides to subscription {guided.subscription.subscription_id}, "
            f"not {previous.subscription_id} it was rated for",
        )
    outcome = reprice(guided, directory, previous.allowance_used, previous.allowance_code)
    if outcome.status != STATUS_RATED or outcome.charge is None:
        return Skipped(outcome.reason or UNRATABLE, outcome.message or "")
    charge = outcome.charge
    if outcome.currency != previous.currency:
        return Skipped(
            CURRENCY_CHANGED, f"plan version {outcome.plan_version} prices in {outcome.currency}, "
            f"the record was rated in {previous.currency}",
        )
    if charge.pricing != previous.pricing:
        return Skipped(
            PRICING_CHANGED, f"plan version {outcome.plan_version} prices {usage.service} by {charge.pricing}, "
            f"the record was rated by {previous.pricing}",
        )
    if charge.allowance_used != previous.allowance_used:
        return Skipped(
            ALLOWANCE_MISMATCH,
            f"the {previous.allowance_used} covered by allowance {previous.allowance_code} are no longer whole "
            "increments of the current rate",
        )
    return Rerated(outcome, previous.amount, charge.amount, previous.chargeable_quantity, charge.chargeable_quantity)
