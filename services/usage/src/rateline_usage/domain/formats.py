"""Intake formats: turn CSV text into record fields, one row at a time. Pure, no I/O.

Every parser yields :class:`Row` objects whose ``values`` use the field names of a JSON usage
record (``source``, ``record_id``, ``service``, ``msisdn``, ``destination``, ``started_at``,
``duration_seconds``, ``count``, and for data ``bytes_up``, ``bytes_down`` or ``quantity``),
already converted to Python types. Whatever could not be
converted is an ``issue`` of the row (and the value is left out). The rows then take the same
validation, normalisation, de-duplication and rating path as JSON records; parsers decide
nothing else.

Formats:

* ``csv``: a header line naming the JSON fields, then one record per line.
* ``asterisk``: Asterisk ``cdr_csv`` ``Master.csv`` with its default columns and no header.
  ``billsec`` is the billed duration; a call whose ``disposition`` is not ``ANSWERED`` is
  stored with 0 seconds. Record id = ``uniqueid``, subscriber = ``src``.
* ``freeswitch``: FreeSWITCH ``mod_cdr_csv`` default template (13 columns, more are ignored,
  e.g. the codecs of the shipped ``example`` template). ``billsec`` is the billed duration; a
  call without ``answer_stamp`` is stored with 0 seconds. Record id = ``uuid``, subscriber =
  ``caller_id_number``.
* ``mapping``: a saved :class:`ColumnMapping` (column names or 0-based indexes to fields).

Asterisk and FreeSWITCH write local times without an offset (``2026-10-05 10:00:00``); they
are read in the time zone given with the import.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from rateline_usage.domain.mediation import FieldIssue

RECORD_FIELDS = (
    "source", "record_id", "service", "msisdn", "destination", "started_at", "duration_seconds", "count",
    "bytes_up", "bytes_down", "quantity",
)
INT_FIELDS = ("duration_seconds", "count", "bytes_up", "bytes_down", "quantity")
# Fields a column mapping may fill (the source comes with the import).
MAPPABLE_FIELDS = RECORD_FIELDS[1:]
ISO = "iso"
SWITCH_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

ASTERISK_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
    "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
)
FREESWITCH_COLUMNS = (
    "caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp",
    "answer_stamp", "end_stamp", "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid",
    "accountcode",
)


class HeaderError(ValueError):
    """The file as a whole cannot be read (e.g. an unknown column in a CSV header)."""

    def __init__(self, issues: list[FieldIssue]) -> None:
        super().__init__("; ".join(f"{i.field}: {i.message}" for i in issues))
        self.issues = issues


@dataclass
class Row:
    """One data row: ``row`` is its 1-based position among the data rows (header excluded)."""

    row: int
    raw: str
    values: dict[str, Any] = field(default_factory=dict)
    issues: list[FieldIssue] = field(default_factory=list)

    @property
    def record_id(self) -> str | None:
        value = self.values.get("record_id")
        return value if isinstance(value, str) else None

    def fallback_record_id(self) -> str:
        """A stable id for a row without a usable one: the same raw row maps to the same id."""
        return "malformed:" + hashlib.sha256(self.raw.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Where each field is: a column name (needs ``header``) or a 0-based index."""

    columns: Mapping[str, str | int]
    header: bool = True
    time_format: str = ISO
    timezone: tzinfo | None = None
    service: str | None = None  # used when no column holds the service


def _raw(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


def _rows(text: str) -> Iterator[list[str]]:
    for cells in csv.reader(io.StringIO(text)):
        if cells and any(c.strip() for c in cells):  # blank lines are not records
            yield cells


def parse_int(value: str, name: str, row: Row) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        row.issues.append(FieldIssue(name, "int_parsing", f"{value!r} is not a whole number"))
        return None


def parse_time(value: str, name: str, row: Row, fmt: str, zone: tzinfo | None) -> datetime | None:
    """``fmt`` is ``iso`` or a ``strptime`` format; a time without offset is read in ``zone``."""
    try:
        at = datetime.fromisoformat(value.strip()) if fmt == ISO else datetime.strptime(value.strip(), fmt)
    except ValueError:
        expected = "ISO 8601" if fmt == ISO else fmt
        row.issues.append(FieldIssue(name, "datetime_parsing", f"{value!r} is not a time ({expected})"))
        return None
    if at.tzinfo is None:
        if zone is None:
            row.issues.append(FieldIssue(name, "timezone_aware", f"{value!r} has no offset"))
            return None
        at = at.replace(tzinfo=zone)
    return at


def parse_csv(text: str, source: str | None = None) -> list[Row]:
    """CSV with a header of JSON field names; empty cells are missing values.

    ``started_at`` must carry an offset like in JSON. ``source`` fills a missing source column.
    """
    reader = _rows(text)
    header = next(reader, None)
    if header is None:
        raise HeaderError([FieldIssue("header", "missing", "the CSV has no header line")])
    names = [h.strip() for h in header]
    issues = [
        FieldIssue(f"header.{n}", "extra_forbidden", f"unknown column {n!r}")
        for n in names
        if n not in RECORD_FIELDS
    ]
    issues += [
        FieldIssue(f"header.{n}", "duplicate", f"column {n!r} appears twice")
        for n in sorted({n for n in names if names.count(n) > 1})
    ]
    if issues:
        raise HeaderError(issues)
    rows = []
    for number, cells in enumerate(reader, start=1):
        row = Row(number, _raw(cells))
        if len(cells) > len(names):
            row.issues.append(FieldIssue("", "too_many_values", f"{len(cells)} values for {len(names)} columns"))
        for name, cell in zip(names, cells, strict=False):
            if cell.strip() == "":
                continue
            if name in INT_FIELDS:
                row.values[name] = parse_int(cell, name, row)
            elif name == "started_at":
                row.values[name] = parse_time(cell, name, row, ISO, None)
            else:
                row.values[name] = cell.strip()
        row.values = {k: v for k, v in row.values.items() if v is not None}
        if source is not None:
            row.values.setdefault("source", source)
        rows.append(row)
    return rows


def _switch_row(
    number: int, cells: list[str], columns: tuple[str, ...], source: str, zone: tzinfo
) -> tuple[Row, dict[str, str]]:
    row = Row(number, _raw(cells), values={"source": source, "service": "voice"})
    if len(cells) < len(columns):
        row.issues.append(
            FieldIssue("", "too_few_values", f"{len(cells)} values, the format has {len(columns)} columns")
        )
    named = {name: cells[i].strip() for i, name in enumerate(columns) if i < len(cells)}
    return row, named


def _required(row: Row, named: dict[str, str], column: str, target: str) -> str | None:
    value = named.get(column, "")
    if not value:
        row.issues.append(FieldIssue(target, "missing", f"column {column!r} is empty"))
        return None
    return value


def _switch_fields(
    row: Row, named: dict[str, str], *, record: str, subscriber: str, destination: str, start: str,
    answered: bool, zone: tzinfo,
) -> None:
    if (value := _required(row, named, record, "record_id")) is not None:
        row.values["record_id"] = value
    if (value := _required(row, named, subscriber, "msisdn")) is not None:
        row.values["msisdn"] = value
    if named.get(destination):
        row.values["destination"] = named[destination]
    if (value := _required(row, named, start, "started_at")) is not None:
        if (at := parse_time(value, "started_at", row, SWITCH_TIME_FORMAT, zone)) is not None:
            row.values["started_at"] = at
    if (value := _required(row, named, "billsec", "duration_seconds")) is not None:
        seconds = parse_int(value, "duration_seconds", row)
        if seconds is not None:
            row.values["duration_seconds"] = seconds if answered else 0


def parse_asterisk(text: str, source: str, zone: tzinfo) -> list[Row]:
    """Asterisk ``Master.csv`` (cdr_csv default columns, no header)."""
    rows = []
    for number, cells in enumerate(_rows(text), start=1):
        row, named = _switch_row(number, cells, ASTERISK_COLUMNS, source, zone)
        _switch_fields(
            row, named, record="uniqueid", subscriber="src", destination="dst", start="start",
            answered=named.get("disposition", "").upper() == "ANSWERED", zone=zone,
        )
        rows.append(row)
    return rows


def parse_freeswitch(text: str, source: str, zone: tzinfo) -> list[Row]:
    """FreeSWITCH ``mod_cdr_csv`` default template (no header)."""
    rows = []
    for number, cells in enumerate(_rows(text), start=1):
        row, named = _switch_row(number, cells, FREESWITCH_COLUMNS, source, zone)
        _switch_fields(
            row, named, record="uuid", subscriber="caller_id_number", destination="destination_number",
            start="start_stamp", answered=bool(named.get("answer_stamp")), zone=zone,
        )
        rows.append(row)
    return rows


def parse_mapped(text: str, source: str, mapping: ColumnMapping) -> list[Row]:
    """A CSV read through a saved column mapping."""
    reader = _rows(text)
    index: dict[str, int] = {}
    if mapping.header:
        header = next(reader, None)
        names = [h.strip() for h in header] if header else []
        missing = []
        for target, column in mapping.columns.items():
            if isinstance(column, int):
                index[target] = column
            elif column in names:
                index[target] = names.index(column)
            else:
                missing.append(FieldIssue(f"header.{column}", "missing", f"no column {column!r} for {target}"))
        if missing:
            raise HeaderError(missing)
    else:
        index = {target: int(column) for target, column in mapping.columns.items()}
    rows = []
    for number, cells in enumerate(reader, start=1):
        row = Row(number, _raw(cells), values={"source": source})
        if mapping.service is not None:
            row.values["service"] = mapping.service
        for target, i in index.items():
            cell = cells[i].strip() if i < len(cells) else ""
            if not cell:
                continue
            if target in INT_FIELDS:
                value: Any = parse_int(cell, target, row)
            elif target == "started_at":
                value = parse_time(cell, target, row, mapping.time_format, mapping.timezone)
            else:
                value = cell
            if value is not None:
                row.values[target] = value
        rows.append(row)
    return rows
