"""Pure webhook rules: retry maths, endpoint validation, secrets and signatures."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from rateline_webhooks.domain.endpoints import (
    PARTNER_EVENT_TYPES,
    DomainError,
    EventTypesError,
    check_event_types,
    check_url,
    new_secret,
)
from rateline_webhooks.domain.messages import encode_body, signed_headers, webhook_payload
from rateline_webhooks.domain.retry import after_attempt, is_success, max_attempts, retry_delay
from rateline_webhooks.settings import STANDARD_RETRY_SCHEDULE, WebhooksSettings

NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
schedules = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=12)


# --- retry schedule maths ---------------------------------------------------------------------
def test_the_default_is_the_standard_webhooks_schedule() -> None:
    assert WebhooksSettings().retry_schedule_seconds == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert max_attempts(STANDARD_RETRY_SCHEDULE) == 8
    delays = [retry_delay(n, STANDARD_RETRY_SCHEDULE) for n in range(1, 9)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert sum(d for d in delays if d is not None) == 99305  # about 27.6 hours in all


@given(schedules)
def test_a_delivery_that_always_fails_makes_len_plus_one_attempts(schedule: list[float]) -> None:
    now, attempts, waited = NOW, 0, timedelta(0)
    while True:
        attempts += 1
        move = after_attempt(status_code=500, round_attempts=attempts, schedule=schedule, now=now)
        if move.status == "failed":
            break
        assert move.status == "pending" and move.next_attempt_at is not None
        waited += move.next_attempt_at - now
        now = move.next_attempt_at
    assert attempts == max_attempts(schedule) == len(schedule) + 1
    assert abs(waited.total_seconds() - sum(schedule)) < 1e-3 * max(1.0, sum(schedule))


@given(schedules, st.integers(min_value=1, max_value=20), st.integers(min_value=200, max_value=299))
def test_any_2xx_delivers_whatever_the_attempt(schedule: list[float], n: int, code: int) -> None:
    move = after_attempt(status_code=code, round_attempts=n, schedule=schedule, now=NOW)
    assert (move.status, move.next_attempt_at) == ("delivered", None)


@pytest.mark.parametrize("code", [None, 100, 199, 301, 302, 400, 404, 410, 429, 500, 503])
def test_everything_else_is_retried(code: int | None) -> None:
    assert not is_success(code)
    move = after_attempt(status_code=code, round_attempts=1, schedule=[5.0], now=NOW)
    assert move == after_attempt(status_code=None, round_attempts=1, schedule=[5.0], now=NOW)
    assert move.next_attempt_at == NOW + timedelta(seconds=5)


def test_retry_delay_needs_an_attempt() -> None:
    with pytest.raises(ValueError):
        retry_delay(0, [1.0])


def test_settings_refuse_negative_delays_and_short_leases() -> None:
    with pytest.raises(ValueError):
        WebhooksSettings(retry_schedule_seconds=[5, -1])
    with pytest.raises(ValueError):
        WebhooksSettings(delivery_timeout=10, delivery_lease_seconds=10)


# --- endpoints --------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["https://partner.example/hooks", "http://127.0.0.1:9000/x?y=1"])
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url", ["ftp://x.example/", "partner.example/hooks", "https://", "https://a b/", "https://x:99999/",
            "javascript:alert(1)", ""],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(DomainError) as err:
        check_url(url)
    assert err.value.field == "url"


def test_event_types_must_be_known_and_are_deduplicated() -> None:
    assert check_event_types(["payment.payment.failed", "payment.payment.failed"]) == [
        "payment.payment.failed"
    ]
    assert check_event_types(list(PARTNER_EVENT_TYPES)) == list(PARTNER_EVENT_TYPES)
    with pytest.raises(EventTypesError) as err:
        check_event_types(["invoicing.invoice.finalized", "usage.records.rated", "nope"])
    assert [e.field for e in err.value.errors] == ["event_types.1", "event_types.2"]
    with pytest.raises(EventTypesError):
        check_event_types([])


def test_secret_is_whsec_and_24_random_bytes() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24


# --- the signed message -----------------------------------------------------------------------
def test_payload_and_signature_verify_with_the_standardwebhooks_package() -> None:
    secret = new_secret()
    payload = webhook_payload(
        "payment.payment.succeeded", datetime(2026, 11, 1, 9, 30, 0, 123456, tzinfo=UTC),
        {"payment_id": "p1", "amount": "12.30"},
    )
    assert payload["timestamp"] == "2026-11-01T09:30:00.123456Z"
    body = encode_body(payload)
    sent_at = datetime.now(UTC)
    headers = signed_headers(secret, "evt-1", sent_at, body)
    assert headers["webhook-id"] == "evt-1"
    assert headers["webhook-timestamp"] == str(int(sent_at.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == payload
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("12.30", "99.99"), headers)
