"""The built-in sandbox provider: a deterministic card processor of our own.

Test tokens (the outcome depends on the token only, never on chance or time):

=================================  ==========  ===================  =====
token                              outcome     failure_code         card
=================================  ==========  ===================  =====
``tok_sandbox_success``            succeeded                        visa 4242
``tok_sandbox_declined``           failed      card_declined        visa 0002
``tok_sandbox_insufficient_funds`` failed      insufficient_funds   visa 9995
=================================  ==========  ===================  =====

Like a real processor it keeps its own books (the ``sandbox_charges`` table) and is idempotent
by key: the first call with a key decides and records the outcome; every later call with the
same key returns that record and charges nothing. Its books are written in *their own*
transaction, committed before ``charge`` returns, exactly as a remote processor's would be:
if the caller's transaction later rolls back, the charge still stands, and the caller's retry
(with the same key) gets the same answer back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_payment.db import sandbox_charges
from rateline_payment.providers.base import (
    CardDetails,
    ChargeResult,
    ChargeStatus,
    IdempotencyConflict,
    UnknownToken,
)
from rateline_shared.db import unit_of_work
from rateline_shared.money import Money, minor_units

SANDBOX = "sandbox"


@dataclass(frozen=True, slots=True)
class SandboxCard:
    brand: str
    last4: str
    failure_code: str | None = None
    failure_message: str | None = None


SANDBOX_CARDS: dict[str, SandboxCard] = {
    "tok_sandbox_success": SandboxCard("visa", "4242"),
    "tok_sandbox_declined": SandboxCard(
        "visa", "0002", "card_declined", "The card was declined."
    ),
    "tok_sandbox_insufficient_funds": SandboxCard(
        "visa", "9995", "insufficient_funds", "The card has insufficient funds."
    ),
}
TOKEN_HINT = " (sandbox test tokens: " + ", ".join(sorted(SANDBOX_CARDS)) + ")"


def card_for(token: str) -> SandboxCard:
    card = SANDBOX_CARDS.get(token)
    if card is None:
        raise UnknownToken(token, TOKEN_HINT)
    return card


def charge_reference(merchant: str, idempotency_key: str) -> str:
    """The processor's charge id: a pure function of who charged and the key."""
    digest = hashlib.sha256(f"{merchant}\x00{idempotency_key}".encode()).hexdigest()
    return f"sbx_ch_{digest[:24]}"


def decide(token: str, amount: Money) -> ChargeResult:
    """The sandbox's verdict on a first charge (pure; the reference is added by the caller)."""
    if amount.amount <= 0:
        return ChargeResult("failed", None, "invalid_amount", "The amount must be positive.")
    exp = Decimal(1).scaleb(-minor_units(amount.currency))
    if amount.amount != amount.amount.quantize(exp):
        return ChargeResult(
            "failed",
            None,
            "invalid_amount",
            f"{amount.currency} amounts have at most {minor_units(amount.currency)} decimals.",
        )
    card = SANDBOX_CARDS.get(token)
    if card is None:
        return ChargeResult("failed", None, "invalid_token", "The token is not known.")
    if card.failure_code is not None:
        return ChargeResult("failed", None, card.failure_code, card.failure_message)
    return ChargeResult("succeeded", None)


class SandboxProvider:
    """The sandbox processor acting for one merchant (a Rateline tenant)."""

    name = SANDBOX

    def __init__(self, sessions: async_sessionmaker[AsyncSession], merchant: str) -> None:
        self._sessions = sessions
        self._merchant = merchant

    async def describe(self, token: str) -> CardDetails:
        card = card_for(token)
        return CardDetails(brand=card.brand, last4=card.last4)

    async def charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult:
        verdict = decide(token, amount)
        values: dict[str, Any] = {
            "tenant": self._merchant,
            "idempotency_key": idempotency_key,
            "reference": charge_reference(self._merchant, idempotency_key),
            "token": token,
            "amount": amount.amount,
            "currency": amount.currency,
            "status": verdict.status,
            "failure_code": verdict.failure_code,
            "failure_message": verdict.failure_message,
        }
        # The processor's own transaction. ON CONFLICT DO NOTHING waits for a concurrent first
        # charge with the same key to commit, then the SELECT below sees it.
        async with unit_of_work(self._sessions) as session:
            await session.execute(
                insert(sandbox_charges)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["tenant", "idempotency_key"])
            )
            row = (
                await session.execute(
                    select(sandbox_charges).where(
                        sandbox_charges.c.tenant == self._merchant,
                        sandbox_charges.c.idempotency_key == idempotency_key,
                    )
                )
            ).mappings().one()
        if (row["token"], row["currency"]) != (token, amount.currency) or Decimal(
            row["amount"]
        ) != amount.amount:
            raise IdempotencyConflict(
                f"idempotency key {idempotency_key!r} was used for a different charge"
            )
        status: ChargeStatus = "succeeded" if row["status"] == "succeeded" else "failed"
        return ChargeResult(
            status=status,
            reference=str(row["reference"]),
            failure_code=row["failure_code"],
            failure_message=row["failure_message"],
        )
