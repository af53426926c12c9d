"""Events this service publishes, and the handlers of the events it consumes.

Automatic collection (``invoicing.invoice.finalized``) charges the card *inside* the consumer's
inbox transaction. That is safe although the provider is outside our database:

1. The payment id is derived from (tenant, invoice id) (``domain.collection.payment_id_for``)
   and is the provider's idempotency key.
2. If anything after the charge fails (our UPDATE, the outbox insert, the commit, the process),
   the transaction rolls back, the event is not acked, and JetStream redelivers it. The retry
   computes the same payment id, sends the same idempotency key, and the provider returns the
   first outcome (succeeded or declined) without charging again.
3. Once committed, a redelivery stops at the inbox row; an invoice finalised again under a new
   event id stops at the payment's unique (tenant, invoice_id).

So the card is charged at most once per invoice, and the outcome event is published exactly
when the payment row that records it is committed (transactional outbox).
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_payment import repository as repo
from rateline_payment.domain.collection import (
    NO_PAYMENT_METHOD,
    NO_PROVIDER,
    Charge,
    Refuse,
    Skip,
    payment_id_for,
    plan_collection,
)
from rateline_payment.providers import provider_for
from rateline_shared.db import utcnow
from rateline_shared.events import CloudEvent, new_event, publish_in_transaction
from rateline_shared.events.consumer import ConsumerSpec
from rateline_shared.events.payloads import AccountCreated, InvoiceFinalized, PaymentOutcome

SERVICE = "payment"
PAYMENT_SUCCEEDED = "payment.payment.succeeded"
PAYMENT_FAILED = "payment.payment.failed"
ACCOUNT_CREATED = "customer.account.created"
INVOICE_FINALIZED = "invoicing.invoice.finalized"

logger = logging.getLogger("rateline.payment")


def _provider_sessions(session: AsyncSession) -> async_sessionmaker[AsyncSession]:
    """Sessions on the same engine but *other* connections: the sandbox's books are committed
    on their own, like a remote processor's, whatever happens to the caller's transaction."""
    return async_sessionmaker(bind=session.bind, expire_on_commit=False)


async def on_account_created(session: AsyncSession, event: CloudEvent) -> None:
    account = AccountCreated.model_validate(event.data)
    await repo.upsert_account(
        session,
        event.tenant,
        {
            "id": account.account_id,
            "name": account.name,
            "currency": account.currency,
            "created_at": account.created_at,
        },
    )


async def on_invoice_finalized(session: AsyncSession, event: CloudEvent) -> None:
    """Collect a finalised invoice from the account's default payment method."""
    invoice = InvoiceFinalized.model_validate(event.data)
    tenant = event.tenant
    decision = plan_collection(invoice.total, invoice.currency)
    extra = {"event_id": event.id, "tenant": tenant}
    if isinstance(decision, Skip):
        logger.info("invoice %s: no payment (%s)", invoice.invoice_id, decision.reason, extra=extra)
        return
    now = utcnow()
    payment_id = payment_id_for(tenant, invoice.invoice_id)
    payment = await repo.insert_payment_once(
        session,
        {
            "id": payment_id,
            "tenant": tenant,
            "invoice_id": invoice.invoice_id,
            "account_id": invoice.account_id,
            "amount": decision.amount.amount,
            "currency": decision.amount.currency,
            "status": "pending",
            "created_at": now,
            "updated_at": now,
        },
    )
    if payment is None:
        logger.info("invoice %s already has a payment", invoice.invoice_id, extra=extra)
        return

    outcome: dict[str, str | None]
    if isinstance(decision, Refuse):
        outcome = {
            "status": "failed",
            "provider": NO_PROVIDER,
            "failure_code": decision.failure_code,
            "failure_message": decision.failure_message,
        }
    else:
        assert isinstance(decision, Charge)
        method = await repo.default_method(session, tenant, invoice.account_id)
        if method is None:
            outcome = {
                "status": "failed",
                "provider": NO_PROVIDER,
                "failure_code": NO_PAYMENT_METHOD,
                "failure_message": "The account has no default payment method.",
            }
        else:
            provider = provider_for(
                method["provider"], tenant=tenant, sessions=_provider_sessions(session)
            )
            # The idempotency key is the payment id: see the module docstring for why a retry
            # of this transaction can never charge twice.
            result = await provider.charge(method["token"], decision.amount, payment_id)
            outcome = {
                "status": result.status,
                "payment_method_id": method["id"],
                "provider": provider.name,
                "provider_reference": result.reference,
                "failure_code": result.failure_code,
                "failure_message": result.failure_message,
            }

    row = await repo.record_outcome(session, tenant, payment_id, outcome)
    payload = PaymentOutcome(
        payment_id=payment_id,
        invoice_id=invoice.invoice_id,
        account_id=invoice.account_id,
        amount=decision.amount.amount,
        currency=decision.amount.currency,
        status=row["status"],
        provider=row["provider"],
        provider_reference=row["provider_reference"],
        failure_code=row["failure_code"],
        failure_message=row["failure_message"],
        occurred_at=row["updated_at"],
    )
    subject = PAYMENT_SUCCEEDED if row["status"] == "succeeded" else PAYMENT_FAILED
    await publish_in_transaction(
        session,
        new_event(service=SERVICE, type=subject, tenant=tenant, subject=payment_id, data=payload),
    )


CONSUMERS = [
    ConsumerSpec(
        name="payment-customer",
        stream_service="customer",
        handlers={ACCOUNT_CREATED: on_account_created},
    ),
    ConsumerSpec(
        name="payment-invoicing",
        stream_service="invoicing",
        handlers={INVOICE_FINALIZED: on_invoice_finalized},
    ),
]

__all__ = ["CONSUMERS", "PAYMENT_FAILED", "PAYMENT_SUCCEEDED", "SERVICE"]
