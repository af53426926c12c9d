"""Invoicing operations inside one unit of work: bill an account, finalize, apply a payment.

These glue the pure rules in ``domain/`` to the tables: they load, call the domain, write and
put events in the outbox, all in the caller's transaction (they never commit). The API, the
bill-run worker and the event consumers are thin callers of these functions.
"""

from __future__ import annotations

import decimal
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from rateline_invoicing import repository as repo
from rateline_invoicing.contracts import INVOICE_FINALIZED, INVOICE_PAID, SERVICE
from rateline_invoicing.domain.errors import BillingError, CurrencyMismatch, DomainError
from rateline_invoicing.domain.invoices import (
    AccountTerms,
    InvoiceDraft,
    PlanTerms,
    SubscriptionTerms,
    UsageItem,
    build_invoice,
    in_minor_units,
)
from rateline_invoicing.domain.numbering import due_date, format_invoice_number
from rateline_invoicing.domain.payments import InvoiceStatus, settle
from rateline_invoicing.domain.periods import BillingPeriod
from rateline_shared.db import advisory_xact_lock
from rateline_shared.errors import Conflict, NotFound
from rateline_shared.events import new_event, publish_in_transaction
from rateline_shared.events.consumer import PoisonEvent
from rateline_shared.events.payloads import InvoiceFinalized, InvoicePaid, PaymentOutcome
from rateline_shared.money import Money, MoneyError

# payment_id of the invoicing.invoice.paid event of an invoice settled without a payment.
NO_PAYMENT = ""


class InvoiceNotFound(NotFound):
    slug, title = "invoice-not-found", "Invoice not found"


class InvoiceNotDraft(Conflict):
    slug, title = "invoice-not-draft", "Invoice is not a draft"


def invoice_lock_key(tenant: str, account_id: str, period_start: date) -> str:
    """The advisory lock serialising everything that may invoice one account for one period."""
    return f"invoicing:invoice:{tenant}:{account_id}:{period_start.isoformat()}"


# --- bill an account --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AccountOutcome:
    """What billing one account of a run did: ``invoiced``, ``skipped`` (an invoice for the
    period exists), ``nothing_to_bill`` or ``error`` (with a report, nothing written)."""

    status: str
    invoice_id: str | None = None
    error: dict[str, str] | None = None


def _failure(account_id: str, err: DomainError) -> AccountOutcome:
    return AccountOutcome(
        "error", error={"account_id": account_id, "code": err.code, "reason": err.message}
    )


async def bill_account(
    session: AsyncSession,
    *,
    tenant: str,
    account_id: str,
    period_start: date,
    period_end: date,
    bill_run_id: str | None,
    auto_finalize: bool,
    now: datetime,
    payment_terms_days: int,
) -> AccountOutcome:
    """Create the account's invoice for the period unless one exists (at most one, ever)."""
    await advisory_xact_lock(session, invoice_lock_key(tenant, account_id, period_start))
    existing = await repo.invoice_for_period(session, tenant, account_id, period_start)
    if existing is not None:
        return AccountOutcome("skipped", invoice_id=existing["id"])
    account = await repo.get(session, repo.accounts, tenant, account_id)
    if account is None:
        return AccountOutcome(
            "error",
            error={"account_id": account_id, "code": "unknown-account",
                   "reason": f"account {account_id} is unknown to invoicing"},
        )
    try:
        period = BillingPeriod.of(period_start, period_end, account["timezone"])
        draft = await _draft(session, tenant, account, period)
    except DomainError as err:
        return _failure(account_id, err)
    except MoneyError as err:  # e.g. a currency invoicing cannot price in
        return _failure(account_id, BillingError(str(err)))
    if draft.is_empty:
        return AccountOutcome("nothing_to_bill")

    invoice_id = str(uuid.uuid4())
    await repo.insert_invoice(
        session, _invoice_values(tenant, invoice_id, bill_run_id, draft, now), _line_values(tenant, invoice_id, draft)
    )
    marked = await repo.mark_usage_invoiced(session, tenant, draft.usage_ids, invoice_id)
    if marked != len(draft.usage_ids):  # the rows are locked: this would be a bug, not a race
        raise RuntimeError(f"marked {marked} of {len(draft.usage_ids)} usage rows as invoiced")
    if auto_finalize:
        await finalize_invoice(
            session, tenant, invoice_id, now=now, payment_terms_days=payment_terms_days
        )
    return AccountOutcome("invoiced", invoice_id=invoice_id)


async def _draft(
    session: AsyncSession, tenant: str, account: RowMapping, period: BillingPeriod
) -> InvoiceDraft:
    subs = await repo.account_subscriptions(session, tenant, account["id"])
    usage = await repo.uninvoiced_usage(
        session, tenant, account["id"], period.start_utc, period.end_utc
    )
    plan_rows = await repo.plans_by_id(
        session, tenant, {s["plan_id"] for s in subs} | {u["plan_id"] for u in usage}
    )
    return build_invoice(
        account=AccountTerms(account["id"], account["currency"], account["timezone"]),
        period=period,
        subscriptions=[
            SubscriptionTerms(s["id"], s["plan_id"], s["start_date"]) for s in subs
        ],
        plans={
            pid: PlanTerms(
                plan_id=pid,
                name=p["name"],
                currency=p["currency"],
                recurring_fee=p["recurring_fee"],
                billing_period=p["billing_period"],
                code=p["code"],
            )
            for pid, p in plan_rows.items()
        },
        usage=[
            UsageItem(
                usage_id=u["id"],
                subscription_id=u["subscription_id"],
                plan_id=u["plan_id"],
                service=u["service"],
                started_at=u["started_at"],
                billed_quantity=u["billed_quantity"],
                unit=u["unit"],
                amount=u["amount"],
                currency=u["currency"],
                invoice_id=u["invoice_id"],
            )
            for u in usage
        ],
    )


def _invoice_values(
    tenant: str, invoice_id: str, bill_run_id: str | None, draft: InvoiceDraft, now: datetime
) -> dict[str, Any]:
    period = draft.period
    return {
        "id": invoice_id,
        "tenant": tenant,
        "account_id": draft.account_id,
        "bill_run_id": bill_run_id,
        "status": InvoiceStatus.DRAFT.value,
        "currency": draft.currency,
        "timezone": period.timezone,
        "period_start": period.start,
        "period_end": period.end,
        "period_start_utc": period.start_utc,
        "period_end_utc": period.end_utc,
        "subtotal": draft.subtotal.amount,
        "total": draft.total.amount,
        "amount_paid": Decimal(0),
        "created_at": now,
        "updated_at": now,
    }


def _line_values(tenant: str, invoice_id: str, draft: InvoiceDraft) -> list[dict[str, Any]]:
    return [
        {
            "tenant": tenant,
            "invoice_id": invoice_id,
            "position": position,
            "kind": line.kind.value,
            "description": line.description,
            "subscription_id": line.subscription_id,
            "plan_id": line.plan_id,
            "service": line.service,
            "quantity": line.quantity,
            "unit": line.unit,
            "amount": line.amount.amount,
            "unrounded_amount": line.unrounded_amount,
            "currency": line.amount.currency,
            "record_count": line.record_count,
        }
        for position, line in enumerate(draft.lines, start=1)
    ]


# --- finalize ---------------------------------------------------------------------------------
async def finalize_invoice(
    session: AsyncSession,
    tenant: str,
    invoice_id: str,
    *,
    now: datetime,
    payment_terms_days: int,
) -> RowMapping:
    """Draft -> finalized with the tenant's next gapless number (paid at once if nothing is due).

    The number comes from the tenant's counter row, locked until this transaction ends: if it
    rolls back, the number is not used and the next finalize takes it.
    """
    invoice = await repo.lock_invoice(session, tenant, invoice_id)
    if invoice is None:
        raise InvoiceNotFound(f"invoice {invoice_id} not found")
    if invoice["status"] != InvoiceStatus.DRAFT:
        raise InvoiceNotDraft(
            f"invoice {invoice_id} is {invoice['status']} ({invoice['number']}); "
            "only a draft can be finalized"
        )
    number = format_invoice_number(await repo.next_invoice_number(session, tenant))
    values: dict[str, Any] = {
        "status": InvoiceStatus.FINALIZED.value,
        "number": number,
        "issued_at": now,
        "due_date": due_date(now, invoice["timezone"], payment_terms_days),
    }
    settled_at_once = invoice["total"] == 0
    if settled_at_once:
        values.update(status=InvoiceStatus.PAID.value, paid_at=now)
    row = await repo.update_invoice(session, tenant, invoice_id, values)
    events = [
        new_event(
            service=SERVICE, type=INVOICE_FINALIZED, tenant=tenant, subject=invoice_id,
            data=InvoiceFinalized(
                invoice_id=invoice_id,
                number=number,
                account_id=row["account_id"],
                period_start=row["period_start"],
                period_end=row["period_end"],
                total=in_minor_units(row["total"], row["currency"]),
                currency=row["currency"],
                due_date=row["due_date"],
                finalized_at=now,
            ),
        )
    ]
    if settled_at_once:
        events.append(_paid_event(tenant, row, NO_PAYMENT))
    await publish_in_transaction(session, *events)
    return row


def _paid_event(tenant: str, row: RowMapping, payment_id: str) -> Any:
    return new_event(
        service=SERVICE, type=INVOICE_PAID, tenant=tenant, subject=row["id"],
        data=InvoicePaid(
            invoice_id=row["id"],
            number=row["number"],
            account_id=row["account_id"],
            amount_paid=in_minor_units(row["amount_paid"], row["currency"]),
            currency=row["currency"],
            payment_id=payment_id,
            paid_at=row["paid_at"],
        ),
    )


# --- payments ---------------------------------------------------------------------------------
async def apply_payment(
    session: AsyncSession, tenant: str, outcome: PaymentOutcome, *, succeeded: bool
) -> None:
    """Apply a payment outcome once (by payment id): a success adds to ``amount_paid`` and pays
    a finalized invoice once nothing is due; a failure keeps it finalized and records why."""
    invoice = await repo.lock_invoice(session, tenant, outcome.invoice_id)
    if invoice is None or invoice["account_id"] != outcome.account_id:
        raise PoisonEvent(
            f"payment {outcome.payment_id} is for invoice {outcome.invoice_id} of account "
            f"{outcome.account_id}, which invoicing does not know"
        )
    try:
        amount = in_minor_units(outcome.amount, outcome.currency)
    except (decimal.Inexact, MoneyError) as exc:
        raise PoisonEvent(
            f"payment {outcome.payment_id}: {outcome.amount} {outcome.currency} is not an amount "
            "in a currency's minor unit"
        ) from exc
    fresh = await repo.record_payment(
        session,
        {
            "tenant": tenant,
            "payment_id": outcome.payment_id,
            "status": "succeeded" if succeeded else "failed",
            "invoice_id": outcome.invoice_id,
            "amount": amount,
            "currency": outcome.currency,
            "failure_code": outcome.failure_code,
            "failure_message": outcome.failure_message,
            "occurred_at": outcome.occurred_at,
        },
    )
    if not fresh:
        return
    status = InvoiceStatus(invoice["status"])
    if not succeeded:
        if status == InvoiceStatus.FINALIZED:
            reason = ": ".join(
                p for p in (outcome.failure_code, outcome.failure_message) if p
            ) or "payment failed"
            await repo.update_invoice(
                session, tenant, outcome.invoice_id, {"last_payment_error": reason}
            )
        return
    if status == InvoiceStatus.DRAFT:
        raise PoisonEvent(f"payment {outcome.payment_id} is for draft invoice {outcome.invoice_id}")
    try:
        settlement = settle(
            status,
            Money(invoice["total"], invoice["currency"]),
            Money(invoice["amount_paid"], invoice["currency"]),
            Money(amount, outcome.currency),
        )
    except CurrencyMismatch as exc:
        raise PoisonEvent(str(exc)) from exc
    values: dict[str, Any] = {"amount_paid": settlement.amount_paid}
    if settlement.becomes_paid:
        values.update(status=InvoiceStatus.PAID.value, paid_at=outcome.occurred_at)
    row = await repo.update_invoice(session, tenant, outcome.invoice_id, values)
    if settlement.becomes_paid:
        await publish_in_transaction(session, _paid_event(tenant, row, outcome.payment_id))
