"""From names to units, and `programme propose-division`: a division file proposed from the
text, each row with where it came from, unmatched names and open-ended lists listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from contracts.base import Role
from contracts.catalog import Unit, UnitKind
from services.assignment.division import load_division, load_units
from services.assignment.policy_lines import simplified
from services.assignment.programme_text import parse_document
from services.assignment.propose_division import CONVENTION, propose
from services.assignment.unit_names import ALL_DISTRICTS, EXACT, SHORT_FORM, UnitNames
from services.cli.programme import app

DATA = Path(__file__).parent / "data" / "policies"
ROOT = Path(__file__).resolve().parents[2]
GZ_UNITS = """\
units:
  - {unit_id: gz-fgw, name: 市发展改革委, kind: department, aliases: [广州市发展和改革委员会]}
  - {unit_id: gz-zzb, name: 市委组织部, kind: department}
  - {unit_id: gz-rsj, name: 市人力社保局, kind: department}
  - {unit_id: gz-jyj, name: 市教育局, kind: department}
  - {unit_id: gz-czj, name: 市财政局, kind: department}
  - {unit_id: yuexiu, name: 越秀区, kind: district}
  - {unit_id: tianhe, name: 天河区, kind: district}
"""


@pytest.fixture
def gz_dir(tmp_path: Path) -> Path:
    shutil.copy(DATA / "gz-talent-cluster.txt", tmp_path / "policy.txt")
    (tmp_path / "units.yaml").write_text(GZ_UNITS, encoding="utf-8")
    return tmp_path


def test_names_to_units_exact_short_form_districts_and_no_guess() -> None:
    units = load_units(ROOT / "examples" / "cq-2022-79" / "units.yaml")
    names = UnitNames(units)
    assert (names.match("市住房城乡建委").unit_ids, names.match("市住房城乡建委").how) == (("cq-zjw",), EXACT)
    assert names.match("重庆市住房和城乡建设委员会").unit_ids == ("cq-zjw",)  # an alias
    for short in ("市住建委", "市住房和城乡建设委", "重庆市发改委", "市卫健委"):
        found = names.match(short)
        assert found.how in (EXACT, SHORT_FORM), short
    assert names.match("重庆市发改委").unit_ids == ("cq-fgw",)
    every = names.match("各区县（自治县）政府")
    assert every.how == ALL_DISTRICTS and len(every.unit_ids) == 41
    unknown = names.match("市文化旅游局")
    assert unknown.unit_ids == () and unknown.suggestion  # a suggestion, never a silent match
    assert names.match("各有关单位").unit_ids == ()


def test_proposal_rows_say_where_they_came_from_and_load_as_a_division(gz_dir: Path) -> None:
    doc = parse_document((gz_dir / "policy.txt").read_text(encoding="utf-8"))
    units = load_units(gz_dir / "units.yaml")
    proposal = propose(doc, units, "policy.txt", 2030)
    data = yaml.safe_load(proposal.text)
    first = data["tasks"][0]
    assert first == {"task": 1, "lead": ["gz-fgw"], "cooperating": ["gz-zzb", "gz-rsj", "all-districts"]}
    assert "# [2] 战略性主导产业紧缺人才开发项目 (policy.txt:8)" in proposal.text
    assert "gz-rsj  # 市人力资源和社会保障局 (short form)" in proposal.text
    # 越秀区 named on its own (task 34, label 35) keeps its role; no duplicate with all-districts
    t34 = next(t for t in data["tasks"] if t["task"] == 34)
    assert "yuexiu" in t34["cooperating"] and "all-districts" not in t34.get("cooperating", [])
    unmatched = {(u["name"], u["task"], u["line"]) for u in proposal.unmatched}
    assert ("市国资委", 2, 9) in unmatched and ("各项目牵头单位", 42, 60) in unmatched
    rows = proposal.text.split("# Names in the text")[0]
    assert all(f"# {u['name']} (" not in rows for u in proposal.unmatched)
    path = gz_dir / "division.proposed.yaml"
    path.write_text(proposal.text, encoding="utf-8")
    division = load_division(path, units, doc.programme)
    leads = {r.task_no for r in division.responsibilities if r.role == Role.LEAD}
    assert 1 in leads and 3 not in leads  # 市经贸委 is not in the registry: no lead guessed
    districts = {u.unit_id for u in units if u.kind == UnitKind.DISTRICT}
    assert {r.unit_id for r in division.responsibilities if r.task_no == 1} >= districts


def test_lead_by_convention_is_marked_and_open_ended_lists_flagged() -> None:
    units = [
        Unit(unit_id="ls-fgw", name="市发改委", kind=UnitKind.DEPARTMENT),
        Unit(unit_id="xc-yq", name="市疫情防控指挥部办公室", kind=UnitKind.DEPARTMENT),
        Unit(unit_id="xc-wjw", name="市卫生健康委", kind=UnitKind.DEPARTMENT),
        Unit(unit_id="d1", name="某县", kind=UnitKind.DISTRICT),
    ]
    lishui = parse_document((DATA / "lishui-2023-work-report.txt").read_text(encoding="utf-8"))
    proposal = propose(lishui, units, "policy.txt", 2027)
    assert proposal.convention == [1, 2, 3]  # before the text states its rule at task 4
    assert f"# lead: {CONVENTION}" in proposal.text
    assert "# roles: first-named leads (stated in the text)" in proposal.text
    assert "# The text states that the first-named unit leads (policy.txt:17)." in proposal.text
    xuchang = parse_document((DATA / "xuchang-2020-20.txt").read_text(encoding="utf-8"))
    proposal = propose(xuchang, units, "policy.txt", 2025)
    assert proposal.open_ended == [
        {"name": "市卫生健康委", "task": 1, "label": "1", "line": 6},
        {"name": "市卫生健康委", "task": 2, "label": "2", "line": 8},
    ]
    task1 = yaml.safe_load(proposal.text)["tasks"][0]
    assert task1 == {"task": 1, "lead": ["xc-yq"], "responsible": ["xc-wjw", "all-districts"]}


runner = CliRunner()


def test_cli_propose_division_then_check(gz_dir: Path) -> None:
    result = runner.invoke(app, ["propose-division", str(gz_dir)])
    assert result.exit_code == 0, result.output
    written = gz_dir / "division.proposed.yaml"
    assert written.is_file() and not (gz_dir / "division.yaml").exists()
    assert "unmatched: line 9, task 2 [3], cooperating: 市国资委" in result.stdout
    assert "skipped: line 5: clause 1 under 一、总体目标 is not read as a task" in result.stdout
    checked = runner.invoke(app, ["check", str(gz_dir), "--division", str(written), "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["tasks"] == 44
    as_json = runner.invoke(app, ["propose-division", str(gz_dir), "--json"])
    data = json.loads(as_json.stdout)
    assert data["tasks"] == 44 and data["horizon_year"] == 2030 and data["unmatched"]


def test_cli_propose_division_on_the_example_finds_no_units_in_its_text(tmp_path: Path) -> None:
    for name in ("policy.txt", "units.yaml"):
        shutil.copy(ROOT / "examples" / "cq-2022-79" / name, tmp_path / name)
    result = runner.invoke(app, ["propose-division", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["tasks"] == 30 and data["tasks_without_units"] == list(range(1, 31))
    assert data["horizon_year"] == 2035


def test_cli_propose_division_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "policy.txt").write_text("今天天气很好。\n", encoding="utf-8")
    result = runner.invoke(app, ["propose-division", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no tasks found" in lines[0]
    missing = runner.invoke(app, ["propose-division", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a directory" in missing.stderr


READABLE = sorted(
    p for p in [*DATA.glob("*.txt"), *(DATA.parent / "policies-unseen").glob("*.txt")] if "cover" not in p.name
)


@pytest.mark.parametrize("path", READABLE, ids=lambda p: p.stem)
def test_nothing_is_guessed_silently_on_any_real_document(path: Path) -> None:
    """With an empty registry every name the text gives is listed as unmatched, at a line of the
    text that holds it; every 等 is flagged at a line holding the name and 等; every task either
    has rows or is listed as naming no unit."""
    text = path.read_text(encoding="utf-8")
    doc = parse_document(text)
    lines = simplified(text)[0].splitlines()
    proposal = propose(doc, [], "policy.txt", 2030)
    named = sorted((t.no, r.unit) for t in doc.programme.tasks() for r in t.responsibilities)
    assert sorted((int(str(u["task"])), str(u["name"])) for u in proposal.unmatched) == named
    for u in proposal.unmatched:
        assert str(u["name"]) in lines[int(str(u["line"])) - 1], u
    for o in proposal.open_ended:
        assert f"{o['name']}等" in lines[int(str(o["line"])) - 1], o
    without = {t.no for t in doc.programme.tasks() if not t.responsibilities}
    assert set(proposal.no_units) == without and proposal.rows == 0
    assert proposal.skipped == doc.skipped and proposal.notices == doc.notices


def test_traditional_copy_is_matched_to_a_simplified_registry(tmp_path: Path) -> None:
    shutil.copy(DATA / "xianyang-2022-fangguanfu-traditional.txt", tmp_path / "policy.txt")
    (tmp_path / "units.yaml").write_text(
        "units:\n  - {unit_id: xy-bgs, name: 市政府办公室, kind: department}\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["propose-division", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "note: the text is in traditional characters" in result.stdout
    assert "unmatched: line 3, task 1 [1], lead: 市行政审批制度改革工作领导小组办公室" in result.stdout
    task1 = yaml.safe_load((tmp_path / "division.proposed.yaml").read_text(encoding="utf-8"))["tasks"][0]
    assert task1 == {"task": 1, "lead": ["xy-bgs"]}


def test_lead_and_cooperating_lines_with_the_official_in_charge_guangdong_2021() -> None:
    # 粤府〔2021〕22号: under each clause, 分管省领导:林克庆 (a person) and
    # 部门分工:省发展改革委牵头,各地、各部门配合。 (the division).
    text = (DATA / "guangdong-2021-22-work-report.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    doc = parse_document(text)
    for task in doc.programme.tasks():
        src = doc.source(task.no)
        assert "分管" not in task.text and "部门分工" not in task.text and task.text.endswith("。")
        assert [lines[n - 1].strip() for n in src.note_lines] == [lines[src.line + 3].strip()]
        assert lines[src.note_lines[0] - 1].strip().startswith("部门分工:")
        ((line, in_charge),) = src.in_charge
        assert line == src.line + 2 and lines[line - 1].strip() == in_charge
        assert all(in_charge.split(":")[1] != r.unit for r in task.responsibilities)
    assert doc.source(4).in_charge == ((47, "分管省领导:张新"),)
    units = [
        Unit(unit_id="gd-fgw", name="省发展改革委", kind=UnitKind.DEPARTMENT),
        Unit(unit_id="gd-czt", name="省财政厅", kind=UnitKind.DEPARTMENT),
        Unit(unit_id="gd-swt", name="省商务厅", kind=UnitKind.DEPARTMENT),
        Unit(unit_id="guangzhou", name="广州市", kind=UnitKind.DISTRICT),
        Unit(unit_id="shenzhen", name="深圳市", kind=UnitKind.DISTRICT),
    ]
    proposal = propose(doc, units, "policy.txt", 2021)
    data = yaml.safe_load(proposal.text)
    assert data["tasks"][1] == {"task": 2, "lead": ["gd-czt"], "cooperating": ["all-districts"]}
    assert "# in charge: 分管省领导:林克庆 (policy.txt:35) - a person, not a unit: not in the rows" in proposal.text
    # 各部门 (every department) is no unit of the registry: listed with its line, never guessed
    assert [(u["name"], u["task"], u["line"]) for u in proposal.unmatched] == [
        ("各部门", n, line) for n, line in ((1, 31), (2, 37), (3, 43), (4, 49))
    ]


def test_guiding_units_and_a_standing_unit_are_reported_never_guessed_guobanfa_2018_128() -> None:
    # 国办发〔2018〕128号: （X牵头，Y、Z参与）, （X、Y指导） after most measures, and once
    # （…以下均需试点城市政府落实，不再列出）.
    doc = parse_document((DATA / "guobanfa-2018-128-zero-waste-cities.txt").read_text(encoding="utf-8"))
    tasks = doc.programme.tasks()
    assert all("指导）" not in t.text and "指导)" not in t.text for t in tasks)
    assert all(not r.unit.endswith("指导") for t in tasks for r in t.responsibilities)
    guided = [s for s in doc.skipped if "(指导)" in s]
    assert [s.split(":")[0] for s in guided] == ["line 22", "line 26", "line 30", "line 33", "line 36", "line 39"]
    assert guided[4].endswith("which is no role of a division: 生态环境部、交通运输部、国家卫生健康委、市场监管总局")
    units = [
        Unit(unit_id="mee", name="生态环境部", kind=UnitKind.DEPARTMENT),
        Unit(unit_id="city", name="试点城市政府", kind=UnitKind.DEPARTMENT),
        Unit(unit_id="coop", name="供销合作总社", kind=UnitKind.DEPARTMENT),
    ]
    proposal = propose(doc, units, "policy.txt", 2021)
    data = yaml.safe_load(proposal.text)
    # （六）: 供销合作总社 is called 参与 (cooperating): the convention never makes it lead
    assert data["tasks"][5] == {"task": 6, "lead": ["city"], "cooperating": ["coop"]}
    assert proposal.convention == [2, 3, 4, 5, 6]
    # a unmatched name points at the note that names it (line 28), not at a 指导 note above it
    unmatched = {(u["name"], u["task"], u["line"]) for u in proposal.unmatched}
    assert {("市场监管总局", 2, 28), ("工业和信息化部", 2, 28), ("国家统计局", 1, 22)} <= unmatched
    entry = proposal.text.split("- task: 6")[1]
    assert "# responsible by a statement made once in the text (以下均需…落实): 试点城市政府 (policy.txt:23)" in entry
    assert "# guide (指导), no role of a division, not in the rows: 生态环境部、国家发展改革委" in entry
