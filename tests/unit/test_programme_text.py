"""The policy-text parser on the two real documents, on a messy synthetic one, and its errors."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.base import Role
from contracts.catalog import Programme
from services.assignment.programme_text import ProgrammeParseError, parse_document, parse_programme
from services.cli.programme import app

ROOT = Path(__file__).resolve().parents[2]
CQ_TEXT = ROOT / "examples" / "cq-2022-79" / "policy.txt"
GUOFA_TEXT = Path(__file__).parent / "data" / "guofa-2019-3-comprehensive-bonded-zones.txt"
SHARED = ROOT.parent / "shared" / "policy"

FURNITURE = re.compile(r"行政规范性文件|[—-]\s*\d+\s*[—-]|第\s*\d+\s*页")


@pytest.fixture(scope="module")
def cq() -> Programme:
    return parse_programme(CQ_TEXT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def guofa() -> Programme:
    return parse_programme(GUOFA_TEXT.read_text(encoding="utf-8"))


def all_text(p: Programme) -> list[str]:
    return [p.title, *(g.text for g in p.goals), *(g.title for g in p.groups), *p.safeguards] + [
        s for t in p.tasks() for s in (t.title, t.text)
    ]


# -- 渝府办发〔2022〕79号 ------------------------------------------------------------------------


def test_cq_header(cq: Programme) -> None:
    assert cq.document_no == "渝府办发〔2022〕79号"
    assert cq.title == "重庆市人民政府办公厅关于推动城乡建设绿色发展的实施意见"
    assert cq.issued_on == dt.date(2022, 7, 9)


def test_cq_six_groups_and_tasks_1_to_30_in_order(cq: Programme) -> None:
    assert [g.no for g in cq.groups] == [1, 2, 3, 4, 5, 6]
    assert [t.no for t in cq.tasks()] == list(range(1, 31))
    assert [len(g.tasks) for g in cq.groups] == [5, 4, 4, 5, 3, 9]
    assert cq.groups[0].title == "加强规划引领绿色发展，推动高品质宜居地建设"
    assert cq.groups[5].title == "提升城乡管理水平，推动美好环境共建共治共享"


def test_cq_task_title_is_first_sentence_and_text_the_whole_clause(cq: Programme) -> None:
    first = cq.tasks()[0]
    assert first.title == "构建成渝地区双城经济圈发展新格局"
    assert first.text.startswith("构建成渝地区双城经济圈发展新格局。紧密围绕")
    assert first.text.endswith("提升传统基础设施水平。")
    for task in cq.tasks():
        assert task.text.startswith(task.title + "。")
        assert "。" not in task.title
        assert task.text.endswith("。")
        assert task.responsibilities == []  # this document keeps its division in an attachment


@pytest.mark.parametrize(
    ("no", "joined"),
    [
        (2, "实施城市生态用地改革创新，构建与资源环境承载能力相匹配"),
        (4, "优化农村产业布局，推动形成区县城"),
        (7, "加大清洁能源开发力度，促进清洁能源生产"),
        (11, "加快农村道路升级"),
        (18, "推广气凝胶等新材料在建筑领域的应用"),
        (20, "推动文化体育设施的更新和提升"),
        (26, "完善违法建设查处流程,严厉打击随意加层"),
        (29, "积极开展生态环境导向的开发（EOD）模式试点"),
    ],
)
def test_cq_clauses_are_whole_across_page_breaks(cq: Programme, no: int, joined: str) -> None:
    assert joined in cq.tasks()[no - 1].text


def test_cq_no_page_furniture_or_line_breaks_anywhere(cq: Programme) -> None:
    for text in all_text(cq):
        assert "\n" not in text and "\r" not in text
        assert not FURNITURE.search(text), text
        assert text == text.strip()


def test_cq_mixed_width_punctuation_is_kept_not_corrupted(cq: Programme) -> None:
    task24 = cq.tasks()[23]
    assert "能力提升,建立城市信息模型(CIM),整合" in task24.text
    task25 = cq.tasks()[24]
    assert task25.text.endswith("逐步向“两群”区县(自治县,以下简称区县)延伸。")


def test_cq_goals_2025_and_2035(cq: Programme) -> None:
    assert [g.year for g in cq.goals] == [2025, 2035]
    assert cq.goals[0].text.startswith("到 2025 年，城乡建设绿色发展体制机制")
    assert "综合治理能力显著提高，绿色生活方式普遍推广。" in cq.goals[0].text  # across a page break
    assert cq.goals[1].text == (
        "到 2035 年，城乡建设全面实现绿色发展，碳减排水平快速提升，城市和乡村品质全面提升，人居环境更加美好，"
        "城乡建设领域治理体系和治理能力基本实现现代化，山清水秀美丽之地基本建成。"
    )


def test_cq_safeguards(cq: Programme) -> None:
    assert len(cq.safeguards) == 3
    assert cq.safeguards[0].startswith("加强组织领导。")
    assert "政策宣传贯彻、技术指导、交流合作等" in cq.safeguards[2]  # the running header sat in between
    assert cq.safeguards[2].endswith("普及城乡建设绿色发展法律法规和科学知识。")
    for s in cq.safeguards:  # the attachment line, issuer and date are not safeguards
        assert "附件" not in s and "重庆市人民政府办公厅" not in s and "2022" not in s


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared policy folder not beside the checkout")
def test_shipped_copies_match_the_shared_originals() -> None:
    assert CQ_TEXT.read_bytes() == (SHARED / "cq-2022-79-green-development.txt").read_bytes()
    assert GUOFA_TEXT.read_bytes() == (SHARED / "guofa-2019-3-comprehensive-bonded-zones.txt").read_bytes()


# -- 国发〔2019〕3号 ---------------------------------------------------------------------------


def test_guofa_header_title_over_two_lines(guofa: Programme) -> None:
    assert guofa.document_no == "国发〔2019〕3号"
    assert guofa.title == "国务院关于促进综合保税区高水平开放高质量发展的若干意见"
    assert guofa.issued_on == dt.date(2019, 1, 12)
    assert guofa.goals == []


def test_guofa_groups_under_main_tasks_not_principles(guofa: Programme) -> None:
    assert [g.no for g in guofa.groups] == [1, 2, 3, 4, 5]
    assert [t.no for t in guofa.tasks()] == list(range(1, 22))
    assert guofa.groups[0].title == "统筹两个市场，打造加工制造中心"
    assert not any("坚持" in g.title for g in guofa.groups)  # 二、基本原则 also uses （一）（二）


def test_guofa_clause_text_without_the_note(guofa: Programme) -> None:
    t1 = guofa.tasks()[0]
    assert t1.title == "拓展两个市场"
    assert t1.text == "拓展两个市场。积极稳妥地在综合保税区推广增值税一般纳税人资格试点。"
    for task in guofa.tasks():
        assert "负责" not in task.text[-20:] and "下同" not in task.text
        assert task.text.endswith("。")


def roles(p: Programme, no: int) -> list[tuple[str, Role]]:
    return [(r.unit, r.role) for r in p.tasks()[no - 1].responsibilities]


def test_guofa_responsibilities_first_named_leads(guofa: Programme) -> None:
    assert roles(guofa, 1) == [("税务总局", Role.LEAD), ("财政部", Role.COOPERATING), ("海关总署", Role.COOPERATING)]
    # 下同: the rule from task 1's note holds for the later notes
    assert roles(guofa, 2) == [("海关总署", Role.LEAD), ("财政部", Role.COOPERATING), ("税务总局", Role.COOPERATING)]
    assert roles(guofa, 5) == [("海关总署", Role.LEAD)]
    # "等有关部门" is dropped from the last name
    assert roles(guofa, 6) == [("海关总署", Role.LEAD), ("商务部", Role.COOPERATING)]
    assert roles(guofa, 13) == [
        ("海关总署", Role.LEAD),
        ("文化和旅游部", Role.COOPERATING),
        ("文物局", Role.COOPERATING),
    ]
    for task in guofa.tasks():
        assert [r.role for r in task.responsibilities].count(Role.LEAD) == 1


def test_guofa_safeguards_are_the_requirements_section(guofa: Programme) -> None:
    assert len(guofa.safeguards) == 4
    assert guofa.safeguards[0].startswith("各地区各有关部门要充分认识")
    assert guofa.safeguards[-1].endswith("促进综合保税区高水平开放高质量发展。")
    assert not any(s in ("国务院", "（此件公开发布）") for s in guofa.safeguards)


# -- the genre, not two files --------------------------------------------------------------

MESSY = """\
　　某市人民政府文件

　　某府发［2023］ 12 号

　　某市人民政府关于加快推进
　　老旧小区改造的实施方案

各区县人民政府，市政府各部门：
　　现将有关事项通知如下。
一、总体要求
(一)工作目标。到2025年，完成老旧小区改造 300 个。
— 2 —
到2027年，基本完成改造任务。
二、重点任务
(一)摸清底数
1．开展调查摸底。全面排查老旧小区，建立项目库,明确改造内容
某市人民政府行政规范性文件
和时序。（市住房城乡建委牵头，各区县政府负责）
- 3 -
2、完善改造
内容。加强 BIM 技术应用，

统筹加装电梯。（市住房城乡建委牵头,市发展改革委配合）
(二)强化保障
3.落实资金保障。多渠道筹措资金。
第 4 页 共 9 页
资金使用接受审计监督。（市财政局、市审计局负责）
三、组织实施
（一）加强领导。各区县要落实主体责任。
- 5 -
（二）强化督查。定期通报进展。
　　某市人民政府
　　二〇二三年三月五日
"""


def test_messy_document_of_the_genre() -> None:
    p = parse_programme(MESSY)
    assert p.document_no == "某府发〔2023〕12号"
    assert p.title == "某市人民政府关于加快推进老旧小区改造的实施方案"
    assert p.issued_on == dt.date(2023, 3, 5)
    assert [(g.year, g.text) for g in p.goals] == [
        (2025, "到2025年，完成老旧小区改造 300 个。"),
        (2027, "到2027年，基本完成改造任务。"),
    ]
    groups = [(g.no, g.title, [t.no for t in g.tasks]) for g in p.groups]
    assert groups == [(1, "摸清底数", [1, 2]), (2, "强化保障", [3])]
    t1, t2, t3 = p.tasks()
    assert t1.text == "开展调查摸底。全面排查老旧小区，建立项目库,明确改造内容和时序。"
    assert [(r.unit, r.role) for r in t1.responsibilities] == [
        ("市住房城乡建委", Role.LEAD),
        ("各区县政府", Role.RESPONSIBLE),
    ]
    assert t2.title == "完善改造内容"
    assert t2.text == "完善改造内容。加强 BIM 技术应用，统筹加装电梯。"
    assert [(r.unit, r.role) for r in t2.responsibilities] == [
        ("市住房城乡建委", Role.LEAD),
        ("市发展改革委", Role.COOPERATING),
    ]
    # a clause continues after a full stop across a page number
    assert t3.text == "落实资金保障。多渠道筹措资金。资金使用接受审计监督。"
    # without the document's first-named-leads rule, 负责 means responsible
    assert [(r.unit, r.role) for r in t3.responsibilities] == [
        ("市财政局", Role.RESPONSIBLE),
        ("市审计局", Role.RESPONSIBLE),
    ]
    assert p.safeguards == ["加强领导。各区县要落实主体责任。", "强化督查。定期通报进展。"]
    for text in all_text(p):
        assert not FURNITURE.search(text) and "\n" not in text


def test_numbering_restarting_in_each_group_is_made_unique() -> None:
    text = "二、主要任务\n（一）甲组\n1. 任务甲。\n2. 任务乙。\n（二）乙组\n1. 任务丙。\n"
    p = parse_programme(text)
    assert [t.no for t in p.tasks()] == [1, 2, 3]
    assert [t.title for t in p.tasks()] == ["任务甲", "任务乙", "任务丙"]


def test_sections_as_groups_when_there_is_no_main_tasks_heading() -> None:
    text = (
        "某某工作方案\n一、总体要求\n坚持系统观念。\n二、优化空间布局\n1.划定边界。严守红线。\n"
        "2.完善路网。\n三、提升建筑品质\n3.推广绿色建筑。\n四、保障措施\n加强组织领导。\n"
    )
    p = parse_programme(text)
    assert p.title == "某某工作方案"
    assert [(g.no, g.title) for g in p.groups] == [(1, "优化空间布局"), (2, "提升建筑品质")]
    assert [t.no for t in p.tasks()] == [1, 2, 3]
    assert p.safeguards == ["加强组织领导。"]


def test_explicit_lead_wins_over_the_first_named_rule() -> None:
    text = (
        "二、重点任务\n1.甲。内容。（市甲局、市乙局负责，排在第一位的部门为牵头部门，下同）\n"
        "2.乙。内容。（市丙局牵头，市甲局、市乙局按职责分工负责）\n3.丙。内容。（市乙局、市丙局负责）\n"
    )
    p = parse_programme(text)
    assert roles(p, 1) == [("市甲局", Role.LEAD), ("市乙局", Role.COOPERATING)]
    assert roles(p, 2) == [("市丙局", Role.LEAD), ("市甲局", Role.RESPONSIBLE), ("市乙局", Role.RESPONSIBLE)]
    assert roles(p, 3) == [("市乙局", Role.LEAD), ("市丙局", Role.COOPERATING)]


def test_parenthesis_that_is_not_a_division_note_stays_in_the_text() -> None:
    p = parse_programme("二、主要任务\n1. 建立模型。建立城市信息模型（CIM）。\n")
    assert p.tasks()[0].text == "建立模型。建立城市信息模型（CIM）。"
    assert p.tasks()[0].responsibilities == []


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  \n\n\u3000\n",
        "今天天气很好。我们去公园散步，看到了很多花。\n\n明天可能下雨。",
        "一、背景\n近年来工作取得进展。\n二、意见\n请各单位认真研究。\n",
    ],
)
def test_text_without_tasks_is_a_clear_error(text: str) -> None:
    with pytest.raises(ProgrammeParseError) as info:
        parse_programme(text)
    assert info.value.message
    assert "\n" not in info.value.message


runner = CliRunner()


def test_cli_parse_prints_the_programme_as_json() -> None:
    result = runner.invoke(app, ["parse", str(CQ_TEXT)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["document_no", "title", "issued_on", "goals", "groups", "safeguards"]
    assert data["issued_on"] == "2022-07-09"
    assert [t["no"] for g in data["groups"] for t in g["tasks"]] == list(range(1, 31))
    assert set(data["groups"][0]["tasks"][0]) == {"no", "title", "text", "responsibilities"}
    assert "渝府办发〔2022〕79号" in result.stdout  # ensure_ascii=False


def test_cli_parse_guofa_has_responsibilities() -> None:
    result = runner.invoke(app, ["parse", str(GUOFA_TEXT)])
    assert result.exit_code == 0
    task1 = json.loads(result.stdout)["groups"][0]["tasks"][0]
    assert task1["responsibilities"][0] == {"unit": "税务总局", "role": "lead"}


@pytest.mark.parametrize("kind", ["prose", "missing", "binary", "directory"])
def test_cli_parse_errors_are_one_line_exit_2(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "doc.txt"
    if kind == "prose":
        path.write_text("这是一段随便的文字。没有任何任务。\n", encoding="utf-8")
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00\x81\x00garbage")
    elif kind == "directory":
        path.mkdir()
    result = runner.invoke(app, ["parse", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert "Traceback" not in result.stderr


def test_level_one_heading_carrying_its_body() -> None:
    text = "关于某事的意见\n一、总体目标。到2025年，基本建成。到2030年，全面建成。\n二、主要任务\n1.甲任务。内容。\n"
    p = parse_programme(text)
    assert p.title == "关于某事的意见"
    assert [(g.year, g.text) for g in p.goals] == [(2025, "到2025年，基本建成。"), (2030, "到2030年，全面建成。")]
    assert [(g.no, g.title) for g in p.groups] == [(1, "主要任务")]
    assert p.tasks()[0].text == "甲任务。内容。"


def test_a_bare_number_is_not_a_task() -> None:
    d = parse_document("二、主要任务\n1.\n2. 甲。内容。\n")
    # the running number is the id; the document's own number is kept as the label
    assert [(t.no, t.title) for t in d.programme.tasks()] == [(1, "甲")]
    assert [s.label for s in d.sources] == ["2"]
    assert d.skipped == ["line 2: a bare number '1.' with no text"]
    with pytest.raises(ProgrammeParseError):
        parse_programme("二、主要任务\n1.\n")


def test_a_year_alone_on_a_line_is_text_not_a_page_number() -> None:
    p = parse_programme("二、主要任务\n1. 建成体系。到\n2030\n年基本建成。\n")
    assert [(t.no, t.text) for t in p.tasks()] == [(1, "建成体系。到2030年基本建成。")]


def test_clause_zero_is_not_a_task_number() -> None:
    p = parse_programme("二、主要任务\n0. 前言。\n1. 甲。\n")
    assert [(t.no, t.text) for t in p.tasks()] == [(1, "甲。")]
