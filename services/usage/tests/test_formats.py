"""Intake parsers: CSV with a header, Asterisk Master.csv, FreeSWITCH cdr_csv, mapped CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rateline_usage.domain.formats import (
    ColumnMapping,
    HeaderError,
    parse_asterisk,
    parse_csv,
    parse_freeswitch,
    parse_mapped,
)

BERLIN = ZoneInfo("Europe/Berlin")

# Asterisk cdr_csv default columns: accountcode, src, dst, dcontext, clid, channel, dstchannel,
# lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags, uniqueid, userfield
AST_ANSWERED = (
    '"acct","+4917111111111","+4930123456","from-internal","""Anna"" <+4917111111111>",'
    '"SIP/100-0001","SIP/trunk-0002","Dial","SIP/trunk/+4930123456,30",'
    '"2026-10-05 10:00:00","2026-10-05 10:00:05","2026-10-05 10:01:35",95,90,"ANSWERED","DOCUMENTATION",'
    '"1759651200.1",""'
)
AST_BUSY = (
    '"","+4917111111111","+4930999999","from-internal","","SIP/100-0003","","Dial","",'
    '"2026-10-05 11:00:00","","2026-10-05 11:00:10",10,7,"BUSY","DOCUMENTATION","1759654800.2",""'
)
# FreeSWITCH mod_cdr_csv default template (13 columns), here the "example" one with 2 codecs more.
FS_ANSWERED = (
    '"Anna","+4917111111111","+4930123456","default","2026-10-05 10:00:00","2026-10-05 10:00:04",'
    '"2026-10-05 10:01:04","64","60","NORMAL_CLEARING","a5c9f6c0-e752-11e3-8bfb-65b6c3cdac7d","","acct",'
    '"PCMA","PCMA"'
)
FS_UNANSWERED = (
    '"9007","9007","0034688886392","public","2026-10-05 16:59:50","","2026-10-05 16:59:50","0","5",'
    '"NO_ANSWER","e29ff0ae-e752-11e3-8bff-65b6c3cdac7d","",""'
)


def test_csv_with_header_reads_json_fields() -> None:
    text = (
        "source,record_id,service,msisdn,destination,started_at,duration_seconds,count\n"
        "sw1,c-1,voice,+4917111111111,+4930123456,2026-10-05T10:00:00Z,90,\n"
        "\n"
        "sw1,s-1,sms,+4917111111111,,2026-10-05T12:00:00+02:00,,3\n"
    )
    rows = parse_csv(text)
    assert [r.row for r in rows] == [1, 2]
    assert rows[0].issues == [] and rows[0].values == {
        "source": "sw1", "record_id": "c-1", "service": "voice", "msisdn": "+4917111111111",
        "destination": "+4930123456", "started_at": datetime(2026, 10, 5, 10, tzinfo=UTC),
        "duration_seconds": 90,
    }
    assert rows[1].values["count"] == 3 and "destination" not in rows[1].values
    assert rows[1].values["started_at"] == datetime(2026, 10, 5, 10, tzinfo=UTC)


def test_csv_malformed_rows_have_issues() -> None:
    text = (
        "record_id,service,msisdn,started_at,duration_seconds\n"
        "c-1,voice,+49171,2026-10-05T10:00:00Z,1.5\n"
        "c-2,voice,+49171,yesterday,60\n"
        "c-3,voice,+49171,2026-10-05T10:00:00,60\n"
        "c-4,voice,,2026-10-05T10:00:00Z,60,extra\n"
    )
    rows = parse_csv(text, source="sw1")
    assert [(i.field, i.code) for i in rows[0].issues] == [("duration_seconds", "int_parsing")]
    assert "duration_seconds" not in rows[0].values and rows[0].values["source"] == "sw1"
    assert [(i.field, i.code) for i in rows[1].issues] == [("started_at", "datetime_parsing")]
    assert [(i.field, i.code) for i in rows[2].issues] == [("started_at", "timezone_aware")]
    assert [i.code for i in rows[3].issues] == ["too_many_values"]
    assert "msisdn" not in rows[3].values  # empty cell = missing, reported by validation


def test_csv_header_must_name_fields() -> None:
    with pytest.raises(HeaderError) as err:
        parse_csv("record_id,caller,record_id\nx,y,z\n")
    assert {(i.field, i.code) for i in err.value.issues} == {
        ("header.caller", "extra_forbidden"), ("header.record_id", "duplicate"),
    }
    with pytest.raises(HeaderError):
        parse_csv("")


def test_asterisk_master_csv() -> None:
    rows = parse_asterisk(f"{AST_ANSWERED}\n{AST_BUSY}\n", "pbx-1", BERLIN)
    assert rows[0].issues == []
    assert rows[0].values == {
        "source": "pbx-1", "service": "voice", "record_id": "1759651200.1", "msisdn": "+4917111111111",
        "destination": "+4930123456", "started_at": datetime(2026, 10, 5, 10, tzinfo=BERLIN),
        "duration_seconds": 90,  # billsec, not duration
    }
    assert rows[1].values["duration_seconds"] == 0  # BUSY: not answered, 0 s
    assert rows[1].values["record_id"] == "1759654800.2"


def test_asterisk_malformed_rows() -> None:
    bad_billsec = AST_ANSWERED.replace(",95,90,", ",95,ninety,")
    no_src = AST_ANSWERED.replace('"acct","+4917111111111"', '"acct",""')
    bad_start = AST_ANSWERED.replace('"2026-10-05 10:00:00"', '"05/10/2026 10:00"')
    rows = parse_asterisk("\n".join([bad_billsec, no_src, bad_start, '"a","b","c"']), "pbx-1", UTC)
    assert [(i.field, i.code) for i in rows[0].issues] == [("duration_seconds", "int_parsing")]
    assert [(i.field, i.code) for i in rows[1].issues] == [("msisdn", "missing")]
    assert [(i.field, i.code) for i in rows[2].issues] == [("started_at", "datetime_parsing")]
    short = rows[3]
    assert short.issues[0].code == "too_few_values" and short.record_id is None
    assert short.fallback_record_id() != rows[0].fallback_record_id()
    assert short.fallback_record_id().startswith("malformed:") and short.raw == "a,b,c"


def test_freeswitch_default_template() -> None:
    rows = parse_freeswitch(f"{FS_ANSWERED}\n{FS_UNANSWERED}\n", "fs-1", UTC)
    assert rows[0].issues == []
    assert rows[0].values == {
        "source": "fs-1", "service": "voice", "record_id": "a5c9f6c0-e752-11e3-8bfb-65b6c3cdac7d",
        "msisdn": "+4917111111111", "destination": "+4930123456",
        "started_at": datetime(2026, 10, 5, 10, tzinfo=UTC), "duration_seconds": 60,
    }
    assert rows[1].issues == [] and rows[1].values["duration_seconds"] == 0  # no answer_stamp
    assert rows[1].values["msisdn"] == "9007"


def test_freeswitch_malformed_row() -> None:
    rows = parse_freeswitch(FS_ANSWERED.replace('"64","60"', '"64",""'), "fs-1", UTC)
    assert [(i.field, i.code) for i in rows[0].issues] == [("duration_seconds", "missing")]


def test_mapped_csv_by_name_and_by_index() -> None:
    by_name = ColumnMapping(
        columns={"record_id": "id", "msisdn": "caller", "started_at": "when", "duration_seconds": "secs"},
        time_format="%d.%m.%Y %H:%M", timezone=BERLIN, service="voice",
    )
    rows = parse_mapped(
        "id,caller,when,secs,other\nA1,+4917111111111,05.10.2026 10:00,42,x\nA2,+4917111111111,bad,4x,y\n",
        "sbc", by_name,
    )
    assert rows[0].values == {
        "source": "sbc", "service": "voice", "record_id": "A1", "msisdn": "+4917111111111",
        "started_at": datetime(2026, 10, 5, 10, tzinfo=BERLIN), "duration_seconds": 42,
    }
    assert {i.field for i in rows[1].issues} == {"started_at", "duration_seconds"}
    by_index = ColumnMapping(
        columns={"record_id": 0, "service": 1, "msisdn": 2, "started_at": 3, "count": 4}, header=False,
    )
    rows = parse_mapped("m-1,sms,+4917111111111,2026-10-05T10:00:00Z,2\nm-2,sms\n", "smsc", by_index)
    assert rows[0].values["count"] == 2 and rows[0].values["service"] == "sms"
    assert rows[1].values == {"source": "smsc", "record_id": "m-2", "service": "sms"}


def test_mapped_csv_header_must_have_the_columns() -> None:
    mapping = ColumnMapping(columns={"record_id": "id", "msisdn": "caller", "started_at": "when"}, service="sms")
    with pytest.raises(HeaderError) as err:
        parse_mapped("id,when\n1,2\n", "sbc", mapping)
    assert [i.field for i in err.value.issues] == ["header.caller"]


# --- NATS mediation messages ----------------------------------------------------------------
def test_mediation_subject_names_tenant_and_source() -> None:
    from rateline_usage.mediation_feed import parse_subject

    assert parse_subject("mediation.records.acme.msc-1") == ("acme", "msc-1")
    assert parse_subject("mediation.records.acme") is None
    assert parse_subject("mediation.records.acme.msc.1") is None
    assert parse_subject("usage.records.acme.msc-1") is None
    assert parse_subject("mediation.records." + "t" * 65 + ".s") is None


def test_mediation_message_rows() -> None:
    from rateline_usage.mediation_feed import rows_of

    rows = rows_of(b'{"records": [{"record_id": "r1"}, 7, {"record_id": "r2", "source": "other"}]}', "msc")
    assert [r.values.get("source") for r in rows] == ["msc", "msc", "msc"]
    assert rows[0].issues == [] and rows[0].raw == '{"record_id": "r1"}'
    assert [i.code for i in rows[1].issues] == ["object_type"]
    assert [(i.field, i.code) for i in rows[2].issues] == [("source", "subject")]
    for body in (b"not json", b'{"records": []}', b'{"records": [{}], "x": 1}', b"\xff"):
        [row] = rows_of(body, "msc")
        assert row.issues[0].code == "batch" and row.record_id is None


@given(
    record_id=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                      min_size=1, max_size=30),
    seconds=st.integers(min_value=0, max_value=10**9),
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_csv_round_trip(record_id: str, seconds: int, at: datetime) -> None:
    """Whatever csv.writer quotes (commas, quotes, newlines), the values come back unchanged."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["record_id", "duration_seconds", "started_at"])
    writer.writerow([record_id, seconds, at.isoformat()])
    [row] = parse_csv(out.getvalue(), source="s")
    assert row.issues == []
    assert row.values == {"source": "s", "record_id": record_id.strip(), "duration_seconds": seconds, "started_at": at}
