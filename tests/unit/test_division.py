"""Unit registry, division of work and schedule files: the shipped example, and bad files."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.base import Role
from contracts.catalog import DeadlineRules, Programme, Unit, UnitKind
from services.assignment.division import (
    load_division,
    load_schedule,
    load_units,
)
from services.assignment.notes_division import division_from_notes
from services.assignment.programme_dir import (
    ProgrammeFileError,
    load_programme_dir,
    load_programme_file,
    programme_id_for,
)
from services.assignment.programme_text import parse_programme
from services.assignment.source_files import DivisionError
from services.cli.programme import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cq-2022-79"
GUOFA_TEXT = Path(__file__).parent / "data" / "guofa-2019-3-comprehensive-bonded-zones.txt"


@pytest.fixture(scope="module")
def units() -> list[Unit]:
    return load_units(EXAMPLE / "units.yaml")


@pytest.fixture(scope="module")
def programme() -> Programme:
    return parse_programme((EXAMPLE / "policy.txt").read_text(encoding="utf-8"))


def problems_of(exc: pytest.ExceptionInfo[DivisionError]) -> list[tuple[int | None, str]]:
    return [(p.line, p.field) for p in exc.value.problems]


# -- the shipped example -------------------------------------------------------------------


def test_unit_registry_has_41_district_level_units_and_departments(units: list[Unit]) -> None:
    kinds = Counter(u.kind for u in units)
    assert kinds[UnitKind.DISTRICT] == 41
    assert 15 <= kinds[UnitKind.DEPARTMENT] <= 30
    names = {u.name for u in units}
    assert {"渝中区", "两江新区", "重庆高新区", "万盛经开区", "石柱土家族自治县", "忠县", "城口县"} <= names
    assert sum(u.name.endswith("自治县") for u in units) == 4
    assert sum(u.name.endswith("县") and not u.name.endswith("自治县") for u in units) == 8
    assert sum(u.name.endswith("区") and u.kind == UnitKind.DISTRICT for u in units) == 26 + 3
    assert {"市住房城乡建委", "市发展改革委", "市规划自然资源局", "市生态环境局", "市水利局"} <= names
    by_id = {u.unit_id: u for u in units}
    assert by_id["yuzhong"].name == "渝中区" and "渝中" in by_id["yuzhong"].aliases
    assert {"liangjiang", "gaoxin", "wansheng", "cq-zjw"} <= by_id.keys()


def test_example_division_validates(units: list[Unit], programme: Programme) -> None:
    division = load_division(EXAMPLE / "division.yaml", units, programme)
    assert division.example is True
    assert "EXAMPLE" in division.note and "具体工作任务清单" in division.note
    rows = division.responsibilities
    assert 1200 <= len(rows) <= 1400
    assert {r.task_no for r in rows} == set(range(1, 31))
    assert Counter(r.task_no for r in rows if r.role == Role.LEAD) == dict.fromkeys(range(1, 31), 1)
    districts = {u.unit_id for u in units if u.kind == UnitKind.DISTRICT}
    delivering = {r.unit_id for r in rows if r.role == Role.RESPONSIBLE}
    assert delivering == districts
    per_task = Counter(r.task_no for r in rows if r.role == Role.RESPONSIBLE)
    assert sum(n == 41 for n in per_task.values()) >= 20  # most tasks: all 41
    assert {r.horizon_year for r in rows} <= {2030, 2035}  # none before the 2026 start
    assert len({(r.task_no, r.unit_id) for r in rows}) == len(rows)
    assert [r.task_no for r in rows] == sorted(r.task_no for r in rows)


def test_example_schedule() -> None:
    schedule = load_schedule(EXAMPLE / "schedule.yaml")
    assert schedule.start_year == 2026
    assert schedule.evaluation_years == [2030, 2035]
    assert schedule.rules == DeadlineRules()


def test_example_readme_says_example() -> None:
    text = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    assert "example" in text.lower() and "具体工作任务清单" in text


def test_load_programme_dir(units: list[Unit]) -> None:
    loaded = load_programme_dir(EXAMPLE)
    assert loaded.programme_id == "cq-2022-79"
    assert len(loaded.programme.tasks()) == 30
    assert loaded.units == units
    assert loaded.division.example and len(loaded.division.responsibilities) > 1200
    assert loaded.schedule.start_year == 2026
    assert load_programme_dir(EXAMPLE, programme_id="cq-green").programme_id == "cq-green"


def test_csv_form_of_the_example_gives_the_same_division(
    tmp_path: Path, units: list[Unit], programme: Programme
) -> None:
    division = load_division(EXAMPLE / "division.yaml", units, programme)
    lines = ["task_no,unit_id,role,horizon_year"] + [
        f"{r.task_no},{r.unit_id},{r.role.value},{r.horizon_year}" for r in division.responsibilities
    ]
    csv_file = tmp_path / "division.csv"
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from_csv = load_division(csv_file, units, programme)
    assert from_csv.responsibilities == division.responsibilities
    assert from_csv.example is False


# -- bad division files: file, line, field; nothing returned ---------------------------------

BAD_YAML = """\
example: false
horizon_year: 2035
tasks:
  - task: 1
    lead: cq-zjw
    cooperating: [cq-fgw, yuzhong2]
    responsible: all-districts
  - task: 31
    lead: cq-fgw
  - task: 2
    lead: cq-zjw
    horizon_year: 20x5
  - task: 3
    lead: 市住房城乡建委
    cooperating:
      - cq-fgw
      - cq-zjw
responsibilities:
  - {task_no: 4, unit_id: yuzhong, role: boss}
  - {task_no: 5, unit_id: 渝中区, role: responsible}
  - {task_no: 5, unit_id: yuzhong, role: lead}
"""


def test_bad_yaml_division_reports_file_line_field(tmp_path: Path, units: list[Unit], programme: Programme) -> None:
    path = tmp_path / "division.yaml"
    path.write_text(BAD_YAML, encoding="utf-8")
    with pytest.raises(DivisionError) as exc:
        load_division(path, units, programme)
    assert problems_of(exc) == [
        (6, "cooperating"),
        (8, "task"),
        (12, "horizon_year"),
        (17, "cooperating"),
        (19, "role"),
        (21, "unit_id"),
    ]
    lines = str(exc.value).splitlines()
    assert lines[0] == f"{path}:6: cooperating: unknown unit 'yuzhong2' (did you mean 'yuzhong'?)"
    assert "unknown task 31" in lines[1]
    assert "bad horizon year '20x5'" in lines[2]
    assert "duplicate: unit 'cq-zjw' is already on task 3 (line 14)" in lines[3]
    assert "bad role 'boss'" in lines[4]
    assert "duplicate: unit 'yuzhong' is already on task 5 (line 20)" in lines[5]


BAD_CSV = """\
task_no,unit_id,role,horizon_year
1,cq-zjw,lead,2035
1,yuzhong2,responsible,2035
31,yuzhong,responsible,2035
2,yuzhong,boss,2035
2,yuzhong,牵头,1999
# a comment line

3,cq-zjw,lead,2030
3,市住房城乡建委,cooperating,2030
4,all-districts,responsible,2035
"""


def test_bad_csv_division_reports_file_line_field(tmp_path: Path, units: list[Unit], programme: Programme) -> None:
    path = tmp_path / "division.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    with pytest.raises(DivisionError) as exc:
        load_division(path, units, programme)
    assert problems_of(exc) == [(3, "unit_id"), (4, "task_no"), (5, "role"), (6, "horizon_year"), (10, "unit_id")]
    assert str(exc.value.problems[0]) == f"{path}:3: unit_id: unknown unit 'yuzhong2' (did you mean 'yuzhong'?)"
    assert "expected lead, cooperating or responsible" in exc.value.problems[2].message


def test_csv_missing_column_and_gbk_encoding(tmp_path: Path, units: list[Unit], programme: Programme) -> None:
    path = tmp_path / "d.csv"
    path.write_text("task,unit,role\n1,cq-zjw,lead\n", encoding="utf-8")
    with pytest.raises(DivisionError) as exc:
        load_division(path, units, programme)
    assert problems_of(exc) == [(1, "horizon_year")]
    # spreadsheets on Chinese Windows save CSV as GBK; roles may be written in Chinese
    path.write_bytes("task,unit,role,horizon\n1,渝中区,负责,2030\n".encode("gbk"))
    division = load_division(path, units, programme)
    assert [(r.unit_id, r.role) for r in division.responsibilities] == [("yuzhong", Role.RESPONSIBLE)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tasks: [1, 2\n", [(2, "yaml")]),
        ("- 1\n- 2\n", [(1, "division")]),
        ("tasks:\n  - task: 1\n    lead: cq-zjw\n", [(2, "horizon_year")]),
        ("horizon_year: 2035\ntasks:\n  - task: 1\n    leader: cq-zjw\n", [(4, "leader")]),
        ("horizon_year: 2035\ntasks: []\n", [(None, "division")]),
        ("document_no: 国发〔2019〕3号\nhorizon_year: 2035\ntasks: [{task: 1, lead: cq-zjw}]\n", [(1, "document_no")]),
        ("horizon_year: 2035\ntasks: [{task: 1, responsible: all-districts, except: [nowhere]}]\n", [(2, "except")]),
    ],
)
def test_more_bad_yaml(
    tmp_path: Path, units: list[Unit], programme: Programme, text: str, expected: list[tuple[int | None, str]]
) -> None:
    path = tmp_path / "division.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DivisionError) as exc:
        load_division(path, units, programme)
    assert problems_of(exc) == expected


def test_missing_division_file(tmp_path: Path, units: list[Unit], programme: Programme) -> None:
    with pytest.raises(DivisionError) as exc:
        load_division(tmp_path / "nope.yaml", units, programme)
    assert "cannot read" in str(exc.value)


# -- units and schedule files ----------------------------------------------------------------

BAD_UNITS = """\
units:
  - {unit_id: yuzhong, name: 渝中区, kind: district}
  - {unit_id: Yuzhong, name: 渝中, kind: district}
  - {unit_id: jiangbei, name: 江北区, kind: county}
  - {unit_id: yuzhong, name: 另一区, kind: district}
  - {unit_id: nanan, name: 南岸区, kind: district, aliases: [渝中区]}
  - {unit_id: beibei, name: 北碚区, kind: district, colour: red}
"""


def test_bad_units_file(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    path.write_text(BAD_UNITS, encoding="utf-8")
    with pytest.raises(DivisionError) as exc:
        load_units(path)
    assert problems_of(exc) == [(3, "unit_id"), (4, "kind"), (5, "unit_id"), (6, "name"), (7, "colour")]
    assert "'渝中区' already names unit 'yuzhong' (line 2)" in str(exc.value)


def test_bad_schedule_file(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    path.write_text("start_year: 2026\nevaluation_years: [2030]\nrules:\n  acceptance_working_days: ten\n")
    with pytest.raises(DivisionError) as exc:
        load_schedule(path)
    assert problems_of(exc) == [(4, "rules.acceptance_working_days")]
    path.write_text("start_year: 2026\nevaluation_years:\n  - 2030\n  - 2020\n")
    with pytest.raises(DivisionError) as exc:
        load_schedule(path)
    assert problems_of(exc) == [(4, "evaluation_years")]


# -- a division stated in the document's own notes -----------------------------------------

CENTRAL = ["税务总局", "财政部", "海关总署", "商务部", "发展改革委", "科技部", "市场监管总局", "药监局"]
CENTRAL += ["文化和旅游部", "文物局", "工业和信息化部", "生态环境部", "证监会"]


def test_division_from_the_documents_own_notes(tmp_path: Path) -> None:
    registry = tmp_path / "units.yaml"
    registry.write_text(
        "units:\n" + "".join(f"  - {{unit_id: d{i:02d}, name: {n}, kind: department}}\n" for i, n in enumerate(CENTRAL))
    )
    loaded = load_programme_file(GUOFA_TEXT, units=registry)
    assert loaded.programme_id == "guofa-2019-3-comprehensive-bonded-zones"
    rows = loaded.division.responsibilities
    assert Counter(r.role for r in rows)[Role.LEAD] == 21
    assert [(r.unit_id, r.role) for r in rows if r.task_no == 1] == [
        ("d00", Role.LEAD),
        ("d01", Role.COOPERATING),
        ("d02", Role.COOPERATING),
    ]
    assert loaded.schedule.start_year == 2019


def test_notes_without_a_registry_are_reported_once() -> None:
    guofa = parse_programme(GUOFA_TEXT.read_text(encoding="utf-8"))
    with pytest.raises(DivisionError) as exc:
        division_from_notes(guofa, [], 2025, source="guofa.txt")
    assert len(exc.value.problems) == 1 and "税务总局" in exc.value.problems[0].message
    some = [Unit(unit_id="hg", name="海关总署", kind=UnitKind.DEPARTMENT)]
    with pytest.raises(DivisionError) as exc:
        division_from_notes(guofa, some, 2025, source="guofa.txt")
    assert "unknown unit '商务部' (named in tasks 3, 4, 6, 14, 15, 18, 19, 21)" in str(exc.value)


def test_programme_ids() -> None:
    assert programme_id_for("CQ 2022/79") == "cq-2022-79"
    guofa = parse_programme(GUOFA_TEXT.read_text(encoding="utf-8"))
    assert programme_id_for("国务院意见", guofa) == "programme-2019-3"
    with pytest.raises(ProgrammeFileError):
        programme_id_for("意见")
    with pytest.raises(ProgrammeFileError):
        load_programme_dir(EXAMPLE / "missing")


# -- the check command -----------------------------------------------------------------------

runner = CliRunner()


def test_cli_check_example_directory() -> None:
    result = runner.invoke(app, ["check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "tasks: 30 in 6 groups" in result.stdout
    assert "41 district-level" in result.stdout
    assert re.search(r"responsibilities: 1\d{3} \(30 lead", result.stdout)
    assert "EXAMPLE" in result.stdout


def test_cli_check_bad_division(tmp_path: Path) -> None:
    path = tmp_path / "division.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    result = runner.invoke(app, ["check", str(EXAMPLE), "--division", str(path)])
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert errors[0] == f"{path}:3: unit_id: unknown unit 'yuzhong2' (did you mean 'yuzhong'?)"
    assert len(errors) == 6 and errors[-1].startswith("error: 5 problem(s)")
    assert "Traceback" not in result.output


def test_cli_check_unparsable_text_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "policy.txt"
    path.write_text("没有任务的一段话。\n", encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1


POLICIES = Path(__file__).parent / "data" / "policies"
FARM_UNITS = """\
units:
  - {unit_id: miit, name: 工业和信息化部, kind: department}
  - {unit_id: moa, name: 农业农村部, kind: department}
  - {unit_id: ndrc, name: 国家发展和改革委员会, kind: department, aliases: [发展和改革委员会]}
  - {unit_id: pbc, name: 中国人民银行, kind: department}
"""


def test_cli_check_directory_without_a_division_uses_the_texts_notes_with_the_same_matching(tmp_path: Path) -> None:
    shutil.copy(POLICIES / "guofa-2018-42-farm-machinery.txt", tmp_path / "policy.txt")
    (tmp_path / "units.yaml").write_text(FARM_UNITS, encoding="utf-8")
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert "skipped: line 7: paragraph （一） under 一、总体要求 is not read as a task" in errors
    assert "note: '发展改革委' read as 国家发展和改革委员会 (ndrc), a known short form" in errors
    policy = tmp_path / "policy.txt"
    assert (
        f"{policy}:20: unit: unknown unit '人民银行' (named in tasks 7 [（九）], 10 [（十二）]; "
        "closest registry name: '中国人民银行')"
    ) in errors
    assert errors[-1].startswith("error: ") and "Traceback" not in result.output
    assert "(?" not in result.output and "\\d" not in result.output  # no pattern shown to a user


def test_cli_check_reports_what_the_reading_skipped_and_a_traditional_copy(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(POLICIES / "guobanfa-2019-3-kindergartens.txt")])
    assert result.exit_code == 0, result.output
    assert "tasks: 6 in 2 groups" in result.stdout
    assert "skipped: line 17: clause 1 under 四、组织实施 is not read as a task" in result.stdout
    assert "warning: no division of work" in result.stdout
    shutil.copy(POLICIES / "xianyang-2022-fangguanfu-traditional.txt", tmp_path / "policy.txt")
    (tmp_path / "units.yaml").write_text(
        "units:\n  - {unit_id: bgs, name: 市政府办公室, kind: department}\n"
        "  - {unit_id: sgb, name: 市行政审批制度改革工作领导小组办公室, kind: department}\n"
        "  - {unit_id: d1, name: 秦都区, kind: district}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["check", str(tmp_path), "--json"])
    assert result.exit_code == 1  # 市级各有关部门及各县市区政府 is one name the registry does not know
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["report"][0].startswith("the text is in traditional characters")
    assert any("'市级各有关部门及各县市区政府'" in p for p in error["problems"])
