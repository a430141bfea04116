"""`policyflow calendar publish`: a bad calendar file is refused with the file, the line and the field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.cli.calendar import read_calendar
from services.cli.errors import ApiError

GOOD = """year: 2027
holidays:
  - 2027-01-01
  - 2027-02-08
workdays: [2027-02-07]
source: "国办发明电〔2026〕7号"
"""


def test_a_good_file_is_read(tmp_path: Path) -> None:
    f = tmp_path / "2027.yaml"
    f.write_text(GOOD, encoding="utf-8")
    c = read_calendar(f)
    assert (c.year, c.holidays, c.workdays) == (2027, [dt.date(2027, 1, 1), dt.date(2027, 2, 8)], [dt.date(2027, 2, 7)])
    assert c.source == "国办发明电〔2026〕7号"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (GOOD.replace("2027-02-08", "2028-02-08"), "4: holidays.1: 2028-02-08 is not in 2027"),
        (GOOD.replace("[2027-02-07]", "[2027-02-09]"), "5: workdays.0: 2027-02-09 is a weekday, a working day anyway"),
        (GOOD.replace("[2027-02-07]", "[2027-02-07, 2027-02-07]"), "5: workdays: 2027-02-07 is listed twice"),
        (GOOD.replace('"国办发明电〔2026〕7号"', '""'), "6: source: String should have at least 1 character"),
        (GOOD.replace("  - 2027-01-01", "  - 2027-13-01"), "3: holidays.0: Input should be a valid date"),
        (GOOD.replace("year: 2027", "year: [2027"), "not YAML"),
    ],
)
def test_a_bad_file_names_file_line_and_field(tmp_path: Path, text: str, said: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ApiError) as err:
        read_calendar(f)
    assert err.value.detail.startswith(f"{f}:") and said in err.value.detail
