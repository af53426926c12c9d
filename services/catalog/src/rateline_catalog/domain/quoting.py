"""Which CGRateS rating profile prices a quote whose subject names a plan or a line.

``POST /v1/rating/quote`` takes a ``subject`` that is a line's E.164 number, a line id, a plan
id, or a plain CGRateS subject. For a line, the subscription in force at the call's start gives
the plan, and :func:`rateline_rating.versions.version_in_force` the version; for a plan, the
version in force now. That version's rate for the category's service must use ``tariff``
pricing: its :class:`TariffRef` names the profile (category, subject), ``*line`` standing for
the line's number without "+". Pure functions; the API layer loads the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from rateline_catalog.domain.plans import LINE_SUBJECT, TARIFF
from rateline_rating.cycles import known_zone, local_midnight_utc
from rateline_shared.events.payloads import UsageRate

# CGRateS categories used for each service (the tariff's own category comes from the TariffRef).
CATEGORY_SERVICES: dict[str, str] = {
    "call": "voice",
    "voice": "voice",
    "sms": "sms",
    "mms": "mms",
    "data": "data",
}


class QuoteRefused(Exception):
    """A subject was resolved but cannot be quoted: a 422 with ``slug``."""

    def __init__(self, slug: str, message: str) -> None:
        super().__init__(message)
        self.slug = slug
        self.message = message


@dataclass(frozen=True, slots=True)
class SubscriptionRef:
    id: str
    plan_id: str
    start_date: date
    activated_at: datetime


@dataclass(frozen=True, slots=True)
class ProfileKey:
    category: str
    subject: str


def is_msisdn(subject: str) -> bool:
    """An E.164 number as the customer service stores it: "+" and 1-15 digits."""
    return subject.startswith("+") and subject[1:].isdigit() and 1 <= len(subject) - 1 <= 15


def zone_of(name: str | None) -> ZoneInfo:
    """The account's time zone; UTC while its account has not reached the catalog."""
    return ZoneInfo(known_zone(name))


def started_at(sub: SubscriptionRef, zone: ZoneInfo) -> datetime:
    """The instant a subscription starts: local midnight of its start date in the account's
    time zone (as the usage service and billing cycles count it)."""
    start: datetime = local_midnight_utc(sub.start_date, zone)
    return start


def subscription_at(
    subs: Sequence[SubscriptionRef], at: datetime, zone: ZoneInfo
) -> SubscriptionRef | None:
    """The line's subscription in force at ``at``: the latest one started on or before it."""
    started = [s for s in subs if started_at(s, zone) <= at]
    if not started:
        return None
    return max(started, key=lambda s: (s.start_date, s.activated_at, s.id))


def tariff_profile(
    rates: Sequence[UsageRate], category: str, *, msisdn: str | None, version: int
) -> ProfileKey:
    """The rating profile for ``category`` under one plan version's rates."""
    service = CATEGORY_SERVICES.get(category)
    rate = next((r for r in rates if r.service == service), None) if service else None
    if rate is None:  # a category of its own ("generic", "reseller1"): match the tariff's category
        rate = next((r for r in rates if r.tariff is not None and r.tariff.category == category), None)
    if rate is None:
        raise QuoteRefused(
            "no-rate-for-category",
            f"version {version} of the plan has no rate for category {category!r}",
        )
    if rate.pricing != TARIFF or rate.tariff is None:
        raise QuoteRefused(
            "rate-not-tariff",
            f"version {version} prices {rate.service} with {rate.pricing} pricing, not by tariff; "
            "only tariff rates can be quoted",
        )
    subject = rate.tariff.subject
    if subject == LINE_SUBJECT:
        if msisdn is None:
            raise QuoteRefused(
                "line-subject-needs-line",
                f"the {rate.service} tariff's subject is *line (the line's number): quote with the "
                "line's MSISDN or id instead of the plan id",
            )
        subject = msisdn.removeprefix("+")
    return ProfileKey(rate.tariff.category, subject)


def line_at(candidates: Sequence[tuple[str, datetime]], at: datetime) -> str | None:
    """Of the lines holding one number (``(id, activated_at)``; a recycled number has several),
    the one activated last on or before ``at``, else the one activated last."""
    if not candidates:
        return None
    ordered = sorted(candidates, key=lambda c: (c[1], c[0]))
    active = [c for c in ordered if c[1] <= at]
    return (active[-1] if active else ordered[-1])[0]
