"""The sandbox provider: deterministic outcomes, and idempotency on its own books (real PG)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_payment.app import MIGRATIONS
from rateline_payment.db import sandbox_charges
from rateline_payment.providers import IdempotencyConflict, UnknownToken, provider_for
from rateline_payment.providers.sandbox import SANDBOX_CARDS, SandboxProvider, charge_reference, decide
from rateline_shared.db import create_engine, session_factory, unit_of_work
from rateline_shared.migrations import upgrade_async
from rateline_shared.money import Money
from rateline_shared.testing import fresh_database

EXPECTED = {
    "tok_sandbox_success": ("succeeded", None, "visa", "4242"),
    "tok_sandbox_declined": ("failed", "card_declined", "visa", "0002"),
    "tok_sandbox_insufficient_funds": ("failed", "insufficient_funds", "visa", "9995"),
}


# --- pure: the verdict depends on the token and amount only ----------------------------------
@given(
    st.sampled_from(sorted(SANDBOX_CARDS)),
    st.integers(min_value=1, max_value=10**12).map(lambda c: Decimal(c).scaleb(-2)),
)
def test_verdict_is_a_function_of_the_token(token: str, amount: Decimal) -> None:
    verdict = decide(token, Money(amount, "EUR"))
    assert verdict == decide(token, Money(amount, "EUR"))
    assert (verdict.status, verdict.failure_code) == EXPECTED[token][:2]


def test_invalid_amounts_and_unknown_tokens_fail_without_an_exception() -> None:
    assert decide("tok_sandbox_success", Money(Decimal("0"), "EUR")).failure_code == "invalid_amount"
    assert decide("tok_sandbox_success", Money(Decimal("1.001"), "EUR")).failure_code == "invalid_amount"
    assert decide("tok_nope", Money(Decimal("1.00"), "EUR")).failure_code == "invalid_token"


def test_reference_is_deterministic_and_per_merchant() -> None:
    assert charge_reference("acme", "k1") == charge_reference("acme", "k1")
    assert charge_reference("acme", "k1").startswith("sbx_ch_")
    assert charge_reference("acme", "k1") != charge_reference("acme", "k2")
    assert charge_reference("acme", "k1") != charge_reference("globex", "k1")


async def test_describe_derives_brand_and_last4_and_refuses_unknown_tokens() -> None:
    provider = SandboxProvider(None, "acme")  # type: ignore[arg-type]  # describe needs no books
    for token, (_s, _c, brand, last4) in EXPECTED.items():
        card = await provider.describe(token)
        assert (card.brand, card.last4) == (brand, last4)
    with pytest.raises(UnknownToken):
        await provider.describe("tok_visa_4242")


# --- against PostgreSQL: the sandbox's books -------------------------------------------------
@pytest.fixture(scope="module")
async def sessions(pg_server) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = fresh_database(pg_server, "paysbx")
    await upgrade_async(MIGRATIONS, url)
    engine = create_engine(url, pool_size=12)
    yield session_factory(engine)
    await engine.dispose()


async def count_charges(sessions: async_sessionmaker[AsyncSession], key: str) -> int:
    async with unit_of_work(sessions) as s:
        stmt = select(func.count()).select_from(sandbox_charges).where(
            sandbox_charges.c.idempotency_key == key
        )
        return int((await s.execute(stmt)).scalar_one())


async def test_same_key_returns_the_first_outcome_and_charges_once(sessions) -> None:
    provider = provider_for("sandbox", tenant="acme", sessions=sessions)
    first = await provider.charge("tok_sandbox_success", Money.of("42.10", "EUR"), "key-1")
    again = await provider.charge("tok_sandbox_success", Money.of("42.10", "EUR"), "key-1")
    assert first.succeeded and first == again
    assert first.reference == charge_reference("acme", "key-1")
    assert await count_charges(sessions, "key-1") == 1
    declined = await provider.charge("tok_sandbox_declined", Money.of("5.00", "EUR"), "key-2")
    assert (declined.status, declined.failure_code) == ("failed", "card_declined")
    assert await provider.charge("tok_sandbox_declined", Money.of("5.00", "EUR"), "key-2") == declined


async def test_key_reused_for_another_charge_is_refused(sessions) -> None:
    provider = provider_for("sandbox", tenant="acme", sessions=sessions)
    await provider.charge("tok_sandbox_success", Money.of("10.00", "EUR"), "key-3")
    with pytest.raises(IdempotencyConflict):
        await provider.charge("tok_sandbox_success", Money.of("10.01", "EUR"), "key-3")
    with pytest.raises(IdempotencyConflict):
        await provider.charge("tok_sandbox_declined", Money.of("10.00", "EUR"), "key-3")
    assert await count_charges(sessions, "key-3") == 1


async def test_concurrent_charges_with_one_key_make_one_charge(sessions) -> None:
    provider = provider_for("sandbox", tenant="acme", sessions=sessions)
    results = await asyncio.gather(
        *(provider.charge("tok_sandbox_success", Money.of("3.00", "EUR"), "key-4") for _ in range(8))
    )
    assert len(set(results)) == 1
    assert await count_charges(sessions, "key-4") == 1


async def test_the_charge_survives_the_callers_rollback(sessions) -> None:
    """Like a remote processor: the caller's rollback does not undo the charge, and the
    caller's retry with the same key gets the first outcome back."""
    provider = provider_for("sandbox", tenant="acme", sessions=sessions)
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions):
            await provider.charge("tok_sandbox_success", Money.of("9.99", "EUR"), "key-5")
            raise RuntimeError("caller crashed after the charge")
    assert await count_charges(sessions, "key-5") == 1
    retry = await provider.charge("tok_sandbox_success", Money.of("9.99", "EUR"), "key-5")
    assert retry.reference == charge_reference("acme", "key-5")
    assert await count_charges(sessions, "key-5") == 1


async def test_keys_are_per_merchant(sessions) -> None:
    a = provider_for("sandbox", tenant="acme", sessions=sessions)
    b = provider_for("sandbox", tenant="globex", sessions=sessions)
    ra = await a.charge("tok_sandbox_success", Money.of("1.00", "EUR"), "key-6")
    rb = await b.charge("tok_sandbox_success", Money.of("2.00", "EUR"), "key-6")
    assert ra.reference != rb.reference
    assert await count_charges(sessions, "key-6") == 2
