"""Payment providers behind one interface, and the one place that picks an implementation.

Only the deterministic sandbox exists today; a real processor is added by implementing
:class:`~rateline_payment.providers.base.PaymentProvider` and naming it in :func:`provider_for`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_payment.providers.base import (
    CardDetails,
    ChargeResult,
    IdempotencyConflict,
    PaymentProvider,
    ProviderError,
    UnknownToken,
)
from rateline_payment.providers.sandbox import SANDBOX, SandboxProvider

PROVIDERS = (SANDBOX,)
DEFAULT_PROVIDER = SANDBOX


class UnknownProvider(ProviderError):
    """No provider of that name is configured."""


def provider_for(
    name: str, *, tenant: str, sessions: async_sessionmaker[AsyncSession]
) -> PaymentProvider:
    """The provider ``name`` acting for ``tenant`` (the merchant at the processor)."""
    if name == SANDBOX:
        return SandboxProvider(sessions, tenant)
    raise UnknownProvider(f"payment provider {name!r} is not configured")


__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "CardDetails",
    "ChargeResult",
    "IdempotencyConflict",
    "PaymentProvider",
    "ProviderError",
    "UnknownProvider",
    "UnknownToken",
    "provider_for",
]
