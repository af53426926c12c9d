"""Which version of a plan a subscription is on at an instant.

Rules (catalog, "plan versions"): a version applies to subscriptions that *start* on or after
its ``effective_from``; a subscription stays on the version in force when it started (the
earliest version when it started before any), whatever versions come later, until a migration
moves it: a migration to version N from instant T applies to the listed subscriptions (or to
every subscription of the plan that started before T) for usage and charges at or after T.
The latest applicable migration wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class VersionRef:
    version: int
    effective_from: datetime


@dataclass(frozen=True, slots=True)
class Migration:
    to_version: int
    effective_from: datetime
    subscription_ids: frozenset[str] | None = None  # None: every subscription of the plan


def version_at_start(versions: Sequence[VersionRef], started: datetime) -> int | None:
    """The version a subscription started on: latest ``effective_from <= started``, else the first."""
    if not versions:
        return None
    ordered = sorted(versions, key=lambda v: (v.effective_from, v.version))
    in_force = [v for v in ordered if v.effective_from <= started]
    return (in_force[-1] if in_force else ordered[0]).version


def version_in_force(
    versions: Sequence[VersionRef],
    migrations: Iterable[Migration],
    *,
    subscription_id: str,
    started: datetime,
    at: datetime,
) -> int | None:
    """The version of the subscription's plan that prices usage or charges at ``at``."""
    known = {v.version for v in versions}
    applicable = [
        m
        for m in migrations
        if m.effective_from <= at
        and m.to_version in known
        and started < m.effective_from
        and (m.subscription_ids is None or subscription_id in m.subscription_ids)
    ]
    if applicable:
        return max(applicable, key=lambda m: (m.effective_from, m.to_version)).to_version
    return version_at_start(versions, started)
