"""CGRateS tariff-plan CSV import: files -> :class:`TariffPlan`, or every problem with its place.

Pure: the caller hands in file contents (or the bytes of a zip). Six files are required
(``Destinations``, ``Timings``, ``Rates``, ``DestinationRates``, ``RatingPlans``,
``RatingProfiles``, each ``.csv``); lines starting with ``#`` and blank lines are skipped. Any
problem refuses the whole import: :class:`TariffImportError` lists them all (file, line, reason).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from rateline_rating.tariffs.model import (
    ANY,
    ANY_TIMING,
    MAX_COST_STRATEGIES,
    ROUNDING_METHODS,
    Activation,
    Binding,
    DestinationRate,
    Rate,
    RateStep,
    RatingPlan,
    RatingProfile,
    TariffPlan,
    Timing,
)

DESTINATIONS = "Destinations.csv"
TIMINGS = "Timings.csv"
RATES = "Rates.csv"
DESTINATION_RATES = "DestinationRates.csv"
RATING_PLANS = "RatingPlans.csv"
RATING_PROFILES = "RatingProfiles.csv"
REQUIRED_FILES = (DESTINATIONS, TIMINGS, RATES, DESTINATION_RATES, RATING_PLANS, RATING_PROFILES)
COLUMNS = {
    DESTINATIONS: 2,
    TIMINGS: 6,
    RATES: 6,
    DESTINATION_RATES: 7,
    RATING_PLANS: 4,
    RATING_PROFILES: 6,
}
MAX_ISSUES = 50
MAX_ZIP_BYTES = 20 * 1024 * 1024
MAX_DECIMALS = 6

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_NANOS = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "µs": 1_000,
    "ns": 1,
}


@dataclass(frozen=True, slots=True)
class ImportIssue:
    file: str
    line: int  # 1-based line in the file; 0 for the file as a whole
    reason: str


class TariffImportError(ValueError):
    def __init__(self, issues: list[ImportIssue]) -> None:
        super().__init__("; ".join(f"{i.file}:{i.line}: {i.reason}" for i in issues))
        self.issues = issues


class _Bad(ValueError):
    """A field could not be read (the message is the reason)."""


T = TypeVar("T")


def parse_duration(text: str) -> int:
    """A Go-style duration (``60s``, ``1m``, ``1m25s``) in ns; a bare integer is a unit count."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if not _DURATION.match(text):
        raise _Bad(f"{text!r} is not a duration (e.g. 60s, 1m, 1024)")
    total = Decimal(0)
    for number, unit in _DURATION_PART.findall(text):
        total += Decimal(number) * _UNIT_NANOS[unit]
    if total != total.to_integral_value():
        raise _Bad(f"{text!r} is not a whole number of nanoseconds")
    return int(total)


def parse_decimal(text: str, *, empty: Decimal | None = None) -> Decimal:
    text = text.strip()
    if not text and empty is not None:
        return empty
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Bad(f"{text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise _Bad(f"{text!r} must be a finite number >= 0")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -MAX_DECIMALS and value != value.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):
        raise _Bad(f"{text!r} has more than {MAX_DECIMALS} decimals")
    return value


def _decimal_or_zero(text: str) -> Decimal:
    return parse_decimal(text, empty=Decimal(0))


def _int_set(text: str, low: int, high: int, name: str) -> frozenset[int]:
    text = text.strip()
    if text in ("", ANY):
        return frozenset()
    values: set[int] = set()
    for part in text.split(";"):
        part = part.strip()
        if not part.isdigit() or not low <= int(part) <= high:
            raise _Bad(f"{name} {part!r} is not a number between {low} and {high} (or *any)")
        values.add(int(part))
    return frozenset(values)


def _time_of_day(text: str) -> dt.time:
    text = text.strip()
    if text in ("", ANY):
        return dt.time(0)
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise _Bad(f"time {text!r} is not HH:MM:SS") from None


def _activation_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise _Bad(f"activation time {text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def read_zip(data: bytes) -> dict[str, str]:
    """The required CSV files of a zip (found in any folder), decoded as UTF-8."""
    if len(data) > MAX_ZIP_BYTES:
        raise TariffImportError([ImportIssue("(zip)", 0, "the archive is larger than 20 MiB")])
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise TariffImportError([ImportIssue("(zip)", 0, "not a zip archive")]) from None
    files: dict[str, str] = {}
    issues: list[ImportIssue] = []
    with archive:
        for info in archive.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if info.is_dir() or name not in REQUIRED_FILES:
                continue
            if name in files:
                issues.append(ImportIssue(name, 0, "the archive holds this file twice"))
                continue
            if info.file_size > MAX_ZIP_BYTES:
                issues.append(ImportIssue(name, 0, "the file is larger than 20 MiB"))
                continue
            try:
                files[name] = archive.read(info).decode("utf-8-sig")
            except UnicodeDecodeError:
                issues.append(ImportIssue(name, 0, "not UTF-8 text"))
            except (zipfile.BadZipFile, OSError, RuntimeError) as err:
                issues.append(ImportIssue(name, 0, f"cannot be extracted: {err}"))
    if issues:
        raise TariffImportError(issues)
    return files


class _Reader:
    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files
        self.issues: list[ImportIssue] = []

    def issue(self, file: str, line: int, reason: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(ImportIssue(file, line, reason))

    def rows(self, name: str) -> Iterator[tuple[int, list[str]]]:
        text = self.files.get(name)
        if text is None:
            self.issue(name, 0, "the file is missing")
            return
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                (row,) = list(csv.reader([line]))
            except (csv.Error, ValueError) as err:
                self.issue(name, number, f"not a CSV line: {err}")
                continue
            row = [c.strip() for c in row]
            if len(row) != COLUMNS[name]:
                self.issue(name, number, f"expected {COLUMNS[name]} columns, found {len(row)}")
                continue
            if not row[0]:
                self.issue(name, number, "the first column (id) is empty")
                continue
            yield number, row

    def field(self, name: str, number: int, read: Callable[[str], T], text: str) -> T | None:
        try:
            return read(text)
        except _Bad as err:
            self.issue(name, number, str(err))
            return None


def parse_tariff_plan(files: Mapping[str, str]) -> TariffPlan:
    """Parse and cross-check the six files; raise :class:`TariffImportError` with all issues."""
    r = _Reader(files)
    for name in REQUIRED_FILES:
        if name not in files:
            r.issue(name, 0, "the file is missing")
    if r.issues:
        raise TariffImportError(r.issues)

    destinations: dict[str, set[str]] = defaultdict(set)
    for number, (dest_id, prefix) in r.rows(DESTINATIONS):
        if not prefix:
            r.issue(DESTINATIONS, number, "the prefix is empty")
        destinations[dest_id].add(prefix)

    timings: dict[str, Timing] = {}
    for number, (tag, years, months, mdays, wdays, time) in r.rows(TIMINGS):
        if tag in timings:
            r.issue(TIMINGS, number, f"timing {tag!r} is defined twice")
            continue
        try:
            timings[tag] = Timing(
                id=tag,
                years=_int_set(years, 1, 9999, "year"),
                months=_int_set(months, 1, 12, "month"),
                month_days=_int_set(mdays, 1, 31, "month day"),
                week_days=_int_set(wdays, 1, 7, "week day"),
                start=_time_of_day(time),
            )
        except _Bad as err:
            r.issue(TIMINGS, number, str(err))

    steps: dict[str, list[RateStep]] = defaultdict(list)
    for number, (rate_id, fee, price, unit, increment, start) in r.rows(RATES):
        try:
            step = RateStep(
                connect_fee=parse_decimal(fee, empty=Decimal(0)),
                rate=parse_decimal(price),
                rate_unit=parse_duration(unit),
                rate_increment=parse_duration(increment),
                group_interval_start=parse_duration(start or "0"),
            )
        except _Bad as err:
            r.issue(RATES, number, str(err))
            continue
        if step.rate_increment <= 0:
            r.issue(RATES, number, "the rate increment must be greater than 0")
        elif step.rate_unit <= 0 and step.rate != 0:
            r.issue(RATES, number, "the rate unit must be greater than 0")
        elif any(s.group_interval_start == step.group_interval_start for s in steps[rate_id]):
            r.issue(RATES, number, f"rate {rate_id!r} has two steps starting at the same point")
        else:
            steps[rate_id].append(step)
    rates: dict[str, Rate] = {}
    for rate_id, rate_steps in steps.items():
        ordered = tuple(sorted(rate_steps, key=lambda s: s.group_interval_start))
        if ordered[0].group_interval_start != 0:
            r.issue(RATES, 0, f"rate {rate_id!r} has no step starting at 0")
        rates[rate_id] = Rate(rate_id, ordered)

    destination_rates: dict[str, DestinationRate] = {}
    for number, row in r.rows(DESTINATION_RATES):
        dr_id, dest_id, rate_id, method, decimals, max_cost, strategy = row
        if dr_id in destination_rates:
            r.issue(DESTINATION_RATES, number, f"destination rate {dr_id!r} is defined twice")
            continue
        if dest_id != ANY and dest_id not in destinations:
            r.issue(DESTINATION_RATES, number, f"unknown destination {dest_id!r}")
            continue
        if rate_id not in rates:
            r.issue(DESTINATION_RATES, number, f"unknown rate {rate_id!r}")
            continue
        if method not in ROUNDING_METHODS:
            r.issue(DESTINATION_RATES, number, f"rounding method {method!r} is not *up, *down or *middle")
            continue
        if not decimals.isdigit() or int(decimals) > MAX_DECIMALS:
            r.issue(DESTINATION_RATES, number, f"rounding decimals {decimals!r} must be 0..{MAX_DECIMALS}")
            continue
        cap = r.field(DESTINATION_RATES, number, _decimal_or_zero, max_cost)
        if cap is None:
            continue
        if strategy and strategy not in MAX_COST_STRATEGIES:
            r.issue(DESTINATION_RATES, number, f"max cost strategy {strategy!r} is not *free or *disconnect")
            continue
        if cap > 0 and not strategy:
            r.issue(DESTINATION_RATES, number, "a max cost needs a strategy (*free or *disconnect)")
            continue
        destination_rates[dr_id] = DestinationRate(
            id=dr_id,
            destination_id=dest_id,
            prefixes=frozenset(destinations.get(dest_id, ())),
            rate=rates[rate_id],
            rounding_method=method,
            rounding_decimals=int(decimals),
            max_cost=cap,
            max_cost_strategy=strategy,
        )

    bindings: dict[str, list[Binding]] = defaultdict(list)
    for number, (plan_id, dr_id, timing_id, weight) in r.rows(RATING_PLANS):
        if dr_id not in destination_rates:
            r.issue(RATING_PLANS, number, f"unknown destination rate {dr_id!r}")
            continue
        timing = ANY_TIMING if timing_id == ANY else timings.get(timing_id)
        if timing is None:
            r.issue(RATING_PLANS, number, f"unknown timing {timing_id!r}")
            continue
        w = r.field(RATING_PLANS, number, _decimal_or_zero, weight)
        if w is not None:
            bindings[plan_id].append(Binding(destination_rates[dr_id], timing, w))
    rating_plans = {pid: RatingPlan(pid, tuple(bs)) for pid, bs in bindings.items()}

    activations: dict[tuple[str, str, str], list[Activation]] = defaultdict(list)
    plan_tenant: str | None = None
    for number, (tenant, category, subject, when, plan_id, fallback) in r.rows(RATING_PROFILES):
        # One import is one CGRateS tenant: it becomes the plan of one Rateline tenant.
        plan_tenant = plan_tenant or tenant
        if tenant != plan_tenant:
            r.issue(RATING_PROFILES, number, f"tenant {tenant!r} differs from {plan_tenant!r}")
            continue
        if not category or not subject:
            r.issue(RATING_PROFILES, number, "category and subject must not be empty")
            continue
        if plan_id not in rating_plans:
            r.issue(RATING_PROFILES, number, f"unknown rating plan {plan_id!r}")
            continue
        at = r.field(RATING_PROFILES, number, _activation_time, when)
        if at is None:
            continue
        key = (tenant, category, subject)
        if any(a.activation_time == at for a in activations[key]):
            r.issue(RATING_PROFILES, number, "two activations of this profile at the same time")
            continue
        fallbacks = tuple(s.strip() for s in fallback.split(";") if s.strip())
        activations[key].append(Activation(at, rating_plans[plan_id], fallbacks))

    if r.issues:
        raise TariffImportError(r.issues)
    return TariffPlan(
        destinations={k: frozenset(v) for k, v in destinations.items()},
        timings=timings,
        rates=rates,
        destination_rates=destination_rates,
        rating_plans=rating_plans,
        profiles=tuple(
            RatingProfile(t, c, s, tuple(sorted(acts, key=lambda a: a.activation_time)))
            for (t, c, s), acts in activations.items()
        ),
    )


def summary(plan: TariffPlan) -> dict[str, int]:
    """How many of each kind an import holds."""
    return {
        "destinations": len(plan.destinations),
        "timings": len(plan.timings),
        "rates": len(plan.rates),
        "destination_rates": len(plan.destination_rates),
        "rating_plans": len(plan.rating_plans),
        "rating_profiles": len(plan.profiles),
    }
