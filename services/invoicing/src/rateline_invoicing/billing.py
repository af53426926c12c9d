"""Invoicing operations inside one unit of work: bill an account, finalize, apply a payment.

These glue the pure rules in ``domain/`` to the tables: they load, call the domain, write and
put events in the outbox, all in the caller's transaction (they never commit). The API, the
bill-run worker and the event consumers are thin callers of these functions.
"""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Sequence
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
    AdjustmentGroup,
    CoveredPeriod,
    InvoiceDraft,
    OneTimeTerms,
    PlanHistory,
    PlanTerms,
    RateTerms,
    SubscriptionTerms,
    UsageGroup,
    build_invoice,
    correction_keys,
    in_minor_units,
)
from rateline_invoicing.domain.numbering import due_date, format_invoice_number
from rateline_invoicing.domain.payments import InvoiceStatus, settle
from rateline_invoicing.domain.periods import BillingPeriod
from rateline_rating.pricing import PriceTier
from rateline_rating.versions import Migration
from rateline_shared.db import advisory_xact_lock
from rateline_shared.errors import Conflict, NotFound
from rateline_shared.events import new_event, publish_in_transaction
from rateline_shared.events.consumer import PoisonEvent
from rateline_shared.events.payloads import (
    InvoiceFinalized,
    InvoicePaid,
    OneTimeCharge,
    PaymentOutcome,
    UsageRate,
)
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


class _NothingToBill(Exception):
    """Raised inside the savepoint to undo what was taken when the draft has no line."""


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
    """Create the account's invoice for the period unless one exists (at most one, ever).

    Everything it takes (usage, late usage, pending adjustments) is taken inside a savepoint:
    an account that cannot be billed, or has nothing to bill, leaves no trace.
    """
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
    invoice_id = str(uuid.uuid4())
    try:
        period = BillingPeriod.of(period_start, period_end, account["timezone"])
        async with session.begin_nested():
            draft = await _draft(session, tenant, account, period, invoice_id)
            if draft.is_empty:
                raise _NothingToBill
            await repo.insert_invoice(
                session,
                _invoice_values(tenant, invoice_id, bill_run_id, draft, now),
                _line_values(tenant, invoice_id, draft),
            )
            await repo.record_first_invoices(
                session,
                [
                    {"tenant": tenant, "subscription_id": f.subscription_id, "invoice_id": invoice_id,
                     "one_time_charges": list(f.charges), "created_at": now}
                    for f in draft.first_invoices
                ],
            )
            await repo.settle_adjusted_records(session, tenant, invoice_id)
    except _NothingToBill:
        return AccountOutcome("nothing_to_bill")
    except DomainError as err:
        return _failure(account_id, err)
    except MoneyError as err:  # e.g. a currency invoicing cannot price in
        return _failure(account_id, BillingError(str(err)))
    if auto_finalize:
        await finalize_invoice(
            session, tenant, invoice_id, now=now, payment_terms_days=payment_terms_days
        )
    return AccountOutcome("invoiced", invoice_id=invoice_id)


async def _draft(
    session: AsyncSession, tenant: str, account: RowMapping, period: BillingPeriod, invoice_id: str
) -> InvoiceDraft:
    """Take what the invoice carries and build it (a fixed number of queries per account)."""
    subs = await repo.account_subscriptions(session, tenant, account["id"])
    usage = [
        _usage_group(row)
        for row in await repo.take_usage(
            session, tenant, account["id"], invoice_id, period.start_utc, period.end_utc
        )
    ]
    adjustments = [
        _adjustment_group(row)
        for row in await repo.take_adjustments(session, tenant, account["id"], invoice_id)
    ]
    plan_ids = {s["plan_id"] for s in subs} | {u.plan_id for u in usage} | {a.plan_id for a in adjustments}
    version_rows, migration_rows = await repo.plan_histories(session, tenant, plan_ids)
    keys = correction_keys(usage, adjustments)
    invoiced = {
        (r["covered_id"], r["subscription_id"], r["service"], r["plan_version"]): r["quantity"]
        for r in await repo.invoiced_quantities(session, tenant, invoice_id, {k[0] for k in keys})
    }
    return build_invoice(
        account=AccountTerms(
            account["id"], account["currency"], account["timezone"], account["bill_cycle_day"]
        ),
        period=period,
        subscriptions=[SubscriptionTerms(s["id"], s["plan_id"], s["start_date"]) for s in subs],
        plans=plan_catalog(version_rows, migration_rows),
        usage=usage,
        adjustments=adjustments,
        invoiced_quantities={k: v for k, v in invoiced.items() if k in keys},
        already_invoiced=await repo.first_invoiced(session, tenant, {s["id"] for s in subs}),
    )


def _covered(row: RowMapping) -> CoveredPeriod | None:
    if row["covered_id"] is None:
        return None
    return CoveredPeriod(row["covered_id"], row["covered_start"], row["covered_end"])


def _usage_group(row: RowMapping) -> UsageGroup:
    return UsageGroup(
        subscription_id=row["subscription_id"],
        plan_id=row["plan_id"],
        service=row["service"],
        unit=row["unit"],
        currency=row["currency"],
        records=int(row["records"]),
        amount=row["amount"],
        billed_quantity=row["billed_quantity"],
        chargeable_quantity=row["chargeable_quantity"],
        pricing=row["pricing"],
        plan_version=row["plan_version"],
        covered=_covered(row),
        first_started=row["first_started"],
        last_started=row["last_started"],
    )


def _adjustment_group(row: RowMapping) -> AdjustmentGroup:
    return AdjustmentGroup(
        subscription_id=row["subscription_id"],
        plan_id=row["plan_id"],
        service=row["service"],
        unit=row["unit"],
        currency=row["currency"],
        records=int(row["records"]),
        delta=row["delta"],
        quantity_delta=row["quantity_delta"],
        pricing=row["pricing"],
        plan_version=row["plan_version"],
        covered=_covered(row),
    )


def plan_catalog(
    version_rows: Sequence[RowMapping], migration_rows: Sequence[RowMapping]
) -> dict[str, PlanHistory]:
    """The stored versions and migrations as the domain's plan histories."""
    versions: dict[str, list[PlanTerms]] = {}
    for v in version_rows:
        versions.setdefault(v["plan_id"], []).append(
            PlanTerms(
                plan_id=v["plan_id"],
                name=v["name"],
                currency=v["currency"],
                recurring_fee=v["recurring_fee"],
                billing_period=v["billing_period"],
                code=v["code"],
                version=v["version"],
                effective_from=v["effective_from"],
                billing_timing=v["billing_timing"],
                one_time_charges=tuple(
                    OneTimeTerms(c.code, c.description, c.amount)
                    for c in (OneTimeCharge.model_validate(x) for x in v["one_time_charges"])
                ),
                rates=tuple(rate_terms(UsageRate.model_validate(x)) for x in v["rates"]),
            )
        )
    migrations: dict[str, list[Migration]] = {}
    for m in migration_rows:
        ids = m["subscription_ids"]
        migrations.setdefault(m["plan_id"], []).append(
            Migration(m["to_version"], m["effective_from"], frozenset(ids) if ids is not None else None)
        )
    return {
        plan_id: PlanHistory.of(*items, migrations=migrations.get(plan_id, ()))
        for plan_id, items in versions.items()
    }


def rate_terms(rate: UsageRate) -> RateTerms:
    return RateTerms(
        service=rate.service,
        unit=rate.unit,
        pricing=rate.pricing,
        price=rate.price,
        tiers=tuple(PriceTier(t.up_to, t.unit_price, t.flat_fee) for t in rate.tiers),
        package_size=rate.package_size,
        minimum_charge=rate.minimum_charge,
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
    """Draft -> finalized with the tenant's next gapless number (paid at once if nothing is due:
    a total of zero or less; a negative total is a credit, not carried forward yet).

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
    # Nothing to pay (a zero total, or a credit from negative adjustments): paid at once.
    settled_at_once = invoice["total"] <= 0
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
