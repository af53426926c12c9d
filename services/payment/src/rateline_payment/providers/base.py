"""The interface every payment provider implements (the built-in sandbox, later real processors).

A provider is a system we do not own. The contract Rateline relies on is the one real card
processors offer: a charge carries an *idempotency key*, and calling ``charge`` again with the
same key returns the first outcome instead of charging twice. Everything about automatic
collection being safe to retry rests on that promise (see ``rateline_payment.events``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from rateline_shared.money import Money

ChargeStatus = Literal["succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """What the provider says about one charge.

    A *declined* charge is a normal result (``status="failed"`` with a ``failure_code``), not
    an exception: it is an answer, and it is final for this idempotency key.
    """

    status: ChargeStatus
    reference: str | None
    failure_code: str | None = None
    failure_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True, slots=True)
class CardDetails:
    """What may be shown about a tokenised instrument."""

    brand: str
    last4: str


class ProviderError(Exception):
    """The provider could not give an answer (unreachable, misuse). Not a decline.

    Raised inside an event handler it rolls the transaction back and the event is retried;
    the idempotency key makes the retry safe.
    """


class UnknownToken(ProviderError):
    """The provider does not know this token (refused when a payment method is created)."""

    def __init__(self, token: str, hint: str = "") -> None:
        super().__init__(f"the token {token!r} is not known to the provider{hint}")
        self.token = token


class IdempotencyConflict(ProviderError):
    """The idempotency key was used before for a different charge (token, amount, currency)."""


class PaymentProvider(Protocol):
    """A payment processor behind one interface. ``name`` is stored on each payment method."""

    name: str

    async def describe(self, token: str) -> CardDetails:
        """Brand and last four digits of a token; raises :class:`UnknownToken`."""
        ...

    async def charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult:
        """Charge ``amount`` to ``token``; the same ``idempotency_key`` returns the first result."""
        ...
