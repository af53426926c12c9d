"""The usage.records.rated entry is built as JSON directly (intake.rated_record); it must be
exactly what the RatedRecord contract says, decimal scale included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from rateline_shared.events.payloads import RatedRecord
from rateline_usage.domain.guiding import Outcome
from rateline_usage.domain.rating import Charge
from rateline_usage.intake import rated_record


def test_rated_record_json_is_the_contract() -> None:
    started = datetime(2026, 10, 5, 15, 0, tzinfo=timezone(timedelta(hours=2)))
    charge = Charge(Decimal(240), Decimal(240), "second", Decimal("0.5002"), "tariff", "VOICE-5", Decimal(60), "RP_RETAIL2")
    outcome = Outcome("rated", line_id="l", account_id="a", subscription_id="s", plan_id="p", plan_version=2,
                      charge=charge, currency="EUR")
    entry = rated_record(source="sbc", record_id="r-1", service="voice", started_at=started,
                         destination="1002", outcome=outcome)
    parsed = RatedRecord.model_validate(entry)
    assert parsed == RatedRecord(
        record_id="r-1", source="sbc", account_id="a", line_id="l", subscription_id="s", plan_id="p",
        service="voice", started_at=started, quantity=Decimal(240), billed_quantity=Decimal(240), unit="second",
        amount=Decimal("0.5002"), currency="EUR", destination="1002", plan_version=2, pricing="tariff",
        chargeable_quantity=Decimal(180), allowance_code="VOICE-5", allowance_used=Decimal(60), rating_plan="RP_RETAIL2",
    )
    # Same keys and the same JSON values as the model's own dump (times compared as instants).
    dumped = parsed.model_dump(mode="json")
    assert set(entry) == set(dumped)
    for key, value in dumped.items():
        if key == "started_at":
            assert datetime.fromisoformat(entry[key]) == datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            assert entry[key] == value, key
    assert entry["amount"] == "0.5002" and entry["chargeable_quantity"] == "180"
