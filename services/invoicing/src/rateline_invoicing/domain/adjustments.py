"""Re-rating adjustments (``usage.records.rerated``): change a record, or keep it for later.

A record that is not on an invoice yet is simply changed in place: its amount moves by the
adjustment's delta (deltas add up in any order) and its chargeable quantity becomes the new one.
A record already on an invoice, draft or finalized, keeps what that invoice charged; the
adjustment waits for the account's next invoice, which carries it as a "Usage adjustment" line
and then brings the record up to date. An invoice, once written, is never rewritten.

The quantity change of a waiting adjustment is measured against the record's latest chargeable
quantity: the newest waiting adjustment's, else the record's own (what was invoiced).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rateline_invoicing.domain.errors import BillingError


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A rated record as invoicing holds it."""

    usage_id: int
    invoice_id: str | None
    currency: str
    chargeable_quantity: Decimal  # the billed quantity when no allowance applied


@dataclass(frozen=True, slots=True)
class Decision:
    in_place: bool
    quantity_delta: Decimal  # for a waiting adjustment: new - latest chargeable quantity


def decide(
    record: StoredRecord,
    *,
    currency: str,
    new_chargeable: Decimal | None,
    latest_pending_chargeable: Decimal | None,
) -> Decision:
    """What to do with one adjustment of ``record`` (see the module docstring)."""
    if currency != record.currency:
        raise BillingError(
            f"adjustment in {currency} of a record rated in {record.currency}"
        )
    if record.invoice_id is None:
        return Decision(True, Decimal(0))
    if new_chargeable is None:
        return Decision(False, Decimal(0))
    latest = (
        latest_pending_chargeable
        if latest_pending_chargeable is not None
        else record.chargeable_quantity
    )
    return Decision(False, new_chargeable - latest)
