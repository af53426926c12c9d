"""CSV import of CGRateS tariff plans: the shared samples and broken copies of them."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from rateline_rating.tariffs.csvimport import (
    ImportIssue,
    TariffImportError,
    parse_duration,
    parse_tariff_plan,
    read_zip,
    summary,
)
from rateline_shared.testing import shared_data_dir

DATA = shared_data_dir() / "cgrates"


def zip_folder(folder: Path, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(folder.glob("*.csv")):
            z.writestr(prefix + p.name, p.read_text())
    return buf.getvalue()


def broken_copy(tmp_path: Path, name: str, file: str, old: str, new: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(DATA / name, folder)
    target = folder / file
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    return folder


def issues_of(folder: Path) -> list[ImportIssue]:
    with pytest.raises(TariffImportError) as err:
        parse_tariff_plan(read_zip(zip_folder(folder)))
    return err.value.issues


def test_both_samples_import() -> None:
    old = parse_tariff_plan(read_zip(zip_folder(DATA / "oldtutorial", "oldtutorial/")))
    assert summary(old) == {
        "destinations": 5,
        "timings": 4,
        "rates": 6,
        "destination_rates": 10,
        "rating_plans": 4,
        "rating_profiles": 5,
    }
    assert old.destinations["DST_DE_MOBILE"] == {"+49151", "+49161", "+49171"}
    # blank lines between rate rows are skipped; RT_10CNT has two steps (0 s and 60 s)
    assert [s.group_interval_start for s in old.rates["RT_10CNT"].steps] == [0, 60_000_000_000]
    new = parse_tariff_plan(read_zip(zip_folder(DATA / "tutorial2")))
    assert summary(new)["rating_plans"] == 7
    # an empty ConnectFee is 0; "1m" is 60 s
    assert new.rates["RT_120C"].steps[1].connect_fee == 0
    assert new.rates["RT_120C"].steps[1].group_interval_start == 60_000_000_000
    fallback = next(p for p in new.profiles if p.subject == "1001")
    assert fallback.activations[0].fallback_subjects == ("*any",)


def test_durations() -> None:
    assert parse_duration("1m25s") == 85_000_000_000
    assert parse_duration("1024") == 1024
    assert parse_duration("0") == 0
    assert parse_duration("1.5s") == 1_500_000_000


@pytest.mark.parametrize(
    ("file", "old", "new", "line", "reason"),
    [
        ("Rates.csv", "RT_40CNT,0.8,0.4,60s,30s,0s", "RT_40CNT,0.8,abc,60s,30s,0s", 8, "'abc' is not a decimal"),
        ("Rates.csv", "RT_1CNT,0,0.01,60s,60s,0s", "RT_1CNT,0,0.01,60s,0s,0s", 11, "increment must be greater than 0"),
        ("Rates.csv", "RT_1CNT,0,0.01,60s,60s,0s", "RT_1CNT,0,0.01,sixty,60s,0s", 11, "not a duration"),
        ("Destinations.csv", "DST_1003,1003", "DST_1003;1003", 3, "expected 2 columns, found 1"),
        ("Timings.csv", "6;7,00:00:00", "6;8,00:00:00", 5, "week day '8'"),
        ("DestinationRates.csv", "DR_GENERIC,*any,RT_GENERIC_1", "DR_GENERIC,*any,RT_NOPE", 11, "unknown rate 'RT_NOPE'"),
        ("DestinationRates.csv", "RT_10CNT,*up,4,0,", "RT_10CNT,*ceil,4,0,", 3, "rounding method '*ceil'"),
        ("DestinationRates.csv", "0.62,*free", "0.62,*maybe", 10, "max cost strategy '*maybe'"),
        ("RatingPlans.csv", "RP_GENERIC,DR_GENERIC,*any,10", "RP_GENERIC,DR_GENERIC,NIGHT,10", 21, "unknown timing 'NIGHT'"),
        ("RatingProfiles.csv", "2014-01-14T00:00:00Z,RP_GENERIC", "yesterday,RP_GENERIC", 5, "not an RFC 3339"),
        ("RatingProfiles.csv", "1001,2014-01-14T00:00:00Z,RP_RETAIL2", "1001,2014-01-14T00:00:00Z,RP_X", 3, "unknown rating plan 'RP_X'"),
        ("RatingProfiles.csv", "cgrates.org,generic", "other.org,generic", 5, "tenant 'other.org' differs"),
        ("RatingProfiles.csv", "cgrates.org,data,*any,2014-01-14T00:00:00Z", "cgrates.org,data,*any,2014-01-14T00:00:00Z,", 6, "expected 6 columns, found 7"),
    ],
)
def test_broken_copies_are_refused_with_place(
    tmp_path: Path, file: str, old: str, new: str, line: int, reason: str
) -> None:
    folder = broken_copy(tmp_path, "oldtutorial", file, old, new)
    issues = issues_of(folder)
    assert any(i.file == file and i.line == line and reason in i.reason for i in issues), issues


def test_missing_file_refuses_the_zip(tmp_path: Path) -> None:
    folder = tmp_path / "t2"
    shutil.copytree(DATA / "tutorial2", folder)
    (folder / "Timings.csv").unlink()
    issues = issues_of(folder)
    assert issues == [ImportIssue("Timings.csv", 0, "the file is missing")]


def test_not_a_zip() -> None:
    with pytest.raises(TariffImportError) as err:
        read_zip(b"definitely not a zip")
    assert err.value.issues == [ImportIssue("(zip)", 0, "not a zip archive")]


def test_all_issues_are_reported(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "tutorial2", "Rates.csv", "RT_0,0,0,1m,1m,0", "RT_0,x,0,1m,1m,0")
    text = (folder / "Timings.csv").read_text().replace("12:00:00", "25:00:00")
    (folder / "Timings.csv").write_text(text)
    issues = issues_of(folder)
    assert {(i.file, i.line) for i in issues} >= {("Rates.csv", 5), ("Timings.csv", 7)}
