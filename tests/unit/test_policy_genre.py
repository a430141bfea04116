"""The parser on real documents of the genre, checked against facts written down by hand, and
on the same documents perturbed the way copies of them come (CRLF, BOM, full-width digits,
page-number lines, a blank line inside a paragraph). Sources: tests/unit/data/policies/SOURCES.md.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import opencc
import pytest
import yaml

from contracts.base import Role
from services.assignment.programme_text import (
    TRADITIONAL_NOTICE,
    ParsedDocument,
    ProgrammeParseError,
    parse_document,
)

DATA = Path(__file__).parent / "data" / "policies"
UNSEEN = Path(__file__).parent / "data" / "policies-unseen"
SEEN = [
    "gz-talent-cluster",
    "lishui-2023-work-report",
    "xuchang-2020-20",
    "beijing-2016-26",
    "guofa-2018-42-farm-machinery",
    "guobanfa-2018-121-sports-events",
    "guobanfa-2019-3-kindergartens",
    "guofa-2018-39-employment",
    "xianyang-2022-fangguanfu-traditional",
    "guangdong-2021-22-work-report",
    "dongguan-2021-54-traditional",
    "guobanfa-2018-128-zero-waste-cities",
    "guandu-2016-steady-growth",
]
# Kept unseen until the parser was finished, facts written first. lishan and shanxi read right on
# the first run; sichuan's structure did, but its 〔责任单位:…〕 notes were missed until 〔〕 was
# read as a note's bracket (the only change made after seeing it).
UNSEEN_NAMES = ["lishan-2023-2", "shanxi-2017-55", "sichuan-2022-circulation"]
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ASCII = str.maketrans("０１２３４５６７８９", "0123456789")


def facts(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def check_against_facts(doc: ParsedDocument, f: dict[str, Any], fold_digits: bool = False) -> None:
    p = doc.programme

    def norm(s: str) -> str:
        return s.translate(ASCII) if fold_digits else s

    abbrev: dict[str, str] = f["abbreviations"]

    def names(short: list[str]) -> list[str]:
        return [abbrev.get(n, n) for n in short]

    assert p.document_no == f["document_no"]
    assert norm(p.title) == str(f["title"])
    issued = f["issued_on"]
    assert p.issued_on == (issued if isinstance(issued, dt.date) or issued is None else dt.date.fromisoformat(issued))
    assert [norm(g.title) for g in p.groups] == f["groups"]
    assert doc.first_leads_line == f["first_leads_line"]
    tasks = p.tasks()
    assert len(tasks) == len(f["tasks"])
    assert [t.no for t in tasks] == list(range(1, len(tasks) + 1))  # ids t01.. in document order
    for task, (label, title, leads, cooperating, responsible) in zip(tasks, f["tasks"], strict=True):
        source = doc.source(task.no)
        assert (norm(source.label), norm(task.title)) == (label, title)
        by_role = {role: [r.unit for r in task.responsibilities if r.role == role] for role in Role}
        assert by_role[Role.LEAD] == names(leads), (label, title)
        assert by_role[Role.COOPERATING] == names(cooperating), (label, title)
        assert by_role[Role.RESPONSIBLE] == names(responsible), (label, title)
    assert [n for s in doc.sources for n in s.open_ended] == f["open_ended"]
    if "standing" in f:  # responsible by a statement made once (以下均需X落实)
        assert [list(s.standing) for s in doc.sources] == [names(n) for n in f["standing"]]
    if "guiding" in f:  # units that guide (指导): listed, never units of the division
        assert [list(s.guiding) for s in doc.sources] == [names(n) for n in f["guiding"]]


@pytest.mark.parametrize("name", SEEN)
def test_real_document_matches_the_facts(name: str) -> None:
    doc = parse_document((DATA / f"{name}.txt").read_text(encoding="utf-8"))
    check_against_facts(doc, facts(DATA / f"{name}.facts.yaml"))


def _crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def _bom(text: str) -> str:
    return "\ufeff" + text


def _full_width_digits(text: str) -> str:
    return text.translate(FULL_WIDTH)


def _page_numbers(text: str) -> str:
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        out.append(line)
        if i % 4 == 0:
            out += ["", f"— {i // 4 + 1} —", ""]
    return "\n".join(out) + "\n"


def _blank_line_in_paragraphs(text: str) -> str:
    # Every long line is cut in the middle of a sentence, with a blank line between the halves.
    out = []
    for line in text.splitlines():
        if len(line) > 80:
            cut = len(line) // 2
            while line[cut - 1] in "。；！？:：" or line[cut] in "（(）)":
                cut += 1
            out += [line[:cut], "", line[cut:]]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _traditional(text: str) -> str:
    # A Hong Kong-style copy: 牵头单位 -> 牽頭單位, 负责 -> 負責, 卫生 -> 衞生.
    return str(opencc.OpenCC("s2hk").convert(text))


PERTURBATIONS = [_crlf, _bom, _full_width_digits, _page_numbers, _blank_line_in_paragraphs, _traditional]


@pytest.mark.parametrize("perturb", PERTURBATIONS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("path", [DATA / n for n in SEEN] + [UNSEEN / n for n in UNSEEN_NAMES], ids=lambda p: p.name)
def test_perturbed_copy_reads_the_same(path: Path, perturb: Any) -> None:
    text = perturb(path.with_suffix(".txt").read_text(encoding="utf-8"))
    doc = parse_document(text)
    f = facts(path.with_suffix(".facts.yaml"))
    if perturb is _traditional:
        assert doc.notices == [TRADITIONAL_NOTICE]
    if perturb is not _page_numbers and perturb is not _blank_line_in_paragraphs:
        check_against_facts(doc, f, fold_digits=perturb is _full_width_digits)
        return
    # Lines moved: everything but the line numbers must be the same.
    f = dict(f, first_leads_line=doc.first_leads_line)
    check_against_facts(doc, f)
    plain = parse_document(path.with_suffix(".txt").read_text(encoding="utf-8")).programme
    assert [t.text for t in doc.programme.tasks()] == [t.text for t in plain.tasks()]


@pytest.mark.parametrize("name", ["gz-talent-cluster", "lishui-2023-work-report"])
def test_line_numbers_point_at_the_clause_and_its_note(name: str) -> None:
    text = (DATA / f"{name}.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    doc = parse_document(text)
    for source in doc.sources:
        assert lines[source.line - 1].strip().startswith(source.label)
        for line in source.note_lines:
            assert lines[line - 1].startswith("责任单位")


def test_clause_in_the_goals_section_is_reported_as_skipped() -> None:
    doc = parse_document((DATA / "gz-talent-cluster.txt").read_text(encoding="utf-8"))
    assert doc.skipped == ["line 5: clause 1 under 一、总体目标 is not read as a task"]


def test_clauses_of_the_safeguards_section_are_reported_as_skipped() -> None:
    doc = parse_document((DATA / "guobanfa-2019-3-kindergartens.txt").read_text(encoding="utf-8"))
    assert doc.skipped == [f"line {n}: clause {n - 16} under 四、组织实施 is not read as a task" for n in (17, 18, 19)]


def test_several_notes_in_one_paragraph_are_all_read_and_all_taken_out_of_its_text() -> None:
    doc = parse_document((DATA / "guobanfa-2018-121-sports-events.txt").read_text(encoding="utf-8"))
    task = doc.programme.tasks()[6]
    assert doc.source(task.no).label == "（十）"
    assert task.text.startswith("鼓励创新创业。大力推进商事制度改革，营造良好的体育竞赛表演产业准入环境。加强体育产业")
    assert "负责" not in task.text and len(task.responsibilities) == 6
    assert "各地区、各有关部门要充分认识" in doc.programme.tasks()[-1].text  # the closing paragraph


def test_traditional_copy_says_it_was_read_as_simplified() -> None:
    text = (DATA / "xianyang-2022-fangguanfu-traditional.txt").read_text(encoding="utf-8")
    doc = parse_document(text)
    assert doc.notices == [TRADITIONAL_NOTICE]
    assert "牽頭" in text and doc.programme.tasks()[0].responsibilities[0].unit == "市政府办公室"
    simplified_text = parse_document((DATA / "lishui-2023-work-report.txt").read_text(encoding="utf-8"))
    assert simplified_text.notices == []


def test_digits_led_title_is_told_apart_by_the_next_expected_number() -> None:
    doc = parse_document((DATA / "gz-talent-cluster.txt").read_text(encoding="utf-8"))
    t = doc.programme.tasks()[9]
    assert (doc.source(t.no).label, t.title) == ("11", "121人才梯队项目")
    assert doc.programme.tasks()[8].text.endswith("产学研结合。")  # 11.121… is not glued onto 10
    # 1.5万亩 inside a clause list is text, not clause 1
    p = parse_document("二、主要任务\n1. 扩大面积。\n2. 新增\n1.5万亩高标准农田。\n3. 完善设施。\n").programme
    assert [t.title for t in p.tasks()] == ["扩大面积", "新增1.5万亩高标准农田", "完善设施"]


@pytest.mark.parametrize(
    ("name", "words"),
    [("hangzhou-2020-cover", "cover notice alone"), ("dawa-2021-cover", "annex that is not in this text")],
)
def test_cover_notice_without_its_task_list_is_a_clear_failure(name: str, words: str) -> None:
    with pytest.raises(ProgrammeParseError) as info:
        parse_document((DATA / f"{name}.txt").read_text(encoding="utf-8"))
    message = info.value.message
    assert message.startswith("no tasks found: looked for numbered clauses") and "\n" not in message
    assert "level-1 headings seen: none" in message and words in message


def test_failure_names_the_headings_seen_with_their_lines() -> None:
    with pytest.raises(ProgrammeParseError) as info:
        parse_document("某某意见\n一、背景\n近年来工作取得进展。\n\n二、意见\n请各单位认真研究。\n")
    assert info.value.message.endswith("level-1 headings seen: line 2 一、背景; line 5 二、意见")


@pytest.mark.parametrize("name", UNSEEN_NAMES)
def test_documents_kept_unseen_until_the_parser_was_finished(name: str) -> None:
    doc = parse_document((UNSEEN / f"{name}.txt").read_text(encoding="utf-8"))
    check_against_facts(doc, facts(UNSEEN / f"{name}.facts.yaml"))


# -- note forms, in the genre's own words ----------------------------------------------------


def roles_of(text: str) -> list[list[tuple[str, str]]]:
    return [[(r.unit, r.role.value) for r in t.responsibilities] for t in parse_document(text).programme.tasks()]


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        (
            "（市商务局牵头，市财政局、市税务局配合）",
            [("市商务局", "lead"), ("市财政局", "cooperating"), ("市税务局", "cooperating")],
        ),
        (
            "（牵头单位：市商务局；配合单位：市财政局、市税务局）",
            [("市商务局", "lead"), ("市财政局", "cooperating"), ("市税务局", "cooperating")],
        ),
        ("(牵头单位:市商务局,配合单位:市财政局)", [("市商务局", "lead"), ("市财政局", "cooperating")]),
        ("（责任单位：市商务局、市财政局）", [("市商务局", "responsible"), ("市财政局", "responsible")]),
        ("（市商务局、市财政局负责）", [("市商务局", "responsible"), ("市财政局", "responsible")]),
        ("（市商务局、市财政局等负责）", [("市商务局", "responsible"), ("市财政局", "responsible")]),
        ("（市商务局、市财政局牵头负责）", [("市商务局", "lead"), ("市财政局", "lead")]),
        ("（市商务局牵头，各区县政府按职责分工负责）", [("市商务局", "lead"), ("各区县政府", "responsible")]),
        (  # 国办发〔2018〕129号: 等 closes one list, 和 adds a set of units of its own
            "（商务部、发展改革委、农业农村部等和各有关省级人民政府负责）",
            [("商务部", "responsible"), ("发展改革委", "responsible"), ("农业农村部", "responsible")]
            + [("各有关省级人民政府", "responsible")],
        ),
        (  # 国发〔2018〕39号: a list cut by a comma before its verb
            "（人力资源社会保障部、财政部、税务总局，各省级人民政府按职责分工负责）",
            [("人力资源社会保障部", "responsible"), ("财政部", "responsible"), ("税务总局", "responsible")]
            + [("各省级人民政府", "responsible")],
        ),
        (  # 昆政发〔2016〕13号: a list before 配合 cut by a comma
            "(市政务服务局牵头,市发改委、市审改办,各县市区政府、开发度假区管委会配合)",
            [("市政务服务局", "lead"), ("市发改委", "cooperating"), ("市审改办", "cooperating")]
            + [("各县市区政府", "cooperating"), ("开发度假区管委会", "cooperating")],
        ),
        (  # 云南省 2017 稳增长意见: two leads, ; before the cooperating units, 各州、市 one set of units
            "(省发展改革委、财政厅牵头;省工业和信息化委、国土资源厅、环境保护厅、住房城乡建设厅、林业厅、水利厅、"
            "地税局,国家开发银行云南省分行、农业发展银行云南省分行,各州、市人民政府配合)",
            [("省发展改革委", "lead"), ("财政厅", "lead")]
            + [(n, "cooperating") for n in ("省工业和信息化委", "国土资源厅", "环境保护厅", "住房城乡建设厅")]
            + [(n, "cooperating") for n in ("林业厅", "水利厅", "地税局", "国家开发银行云南省分行")]
            + [("农业发展银行云南省分行", "cooperating"), ("各州、市人民政府", "cooperating")],
        ),
        (
            "（牵头单位：市委组织部，配合单位：各项目牵头单位，各区、县级市）",
            [("市委组织部", "lead"), ("各项目牵头单位", "cooperating"), ("各区、县级市", "cooperating")],
        ),
    ],
)
def test_note_forms(note: str, expected: list[tuple[str, str]]) -> None:
    assert roles_of(f"二、重点任务\n1.扩大开放。推进开放。{note}\n") == [expected]


def test_open_ended_lists_are_flagged() -> None:
    doc = parse_document(
        "二、重点任务\n1.甲。内容。（市商务局、市财政局等负责）\n2.乙。内容。（市商务局等有关部门负责）\n"
    )
    assert [s.open_ended for s in doc.sources] == [("市财政局",), ("市商务局",)]


def test_rule_stated_once_in_the_cover_notice_holds_for_every_note() -> None:
    text = (
        "某市人民政府办公室关于印发某某工作方案的通知\n某府办发〔2023〕3号\n各区县人民政府，市政府各部门：\n"
        "现将《某某工作方案》印发给你们。责任分解中，列第一位的责任单位为牵头单位。\n某市人民政府办公室\n2023年3月1日\n"
        "某某工作方案\n一、重点任务\n1.甲。内容。（市商务局、市财政局负责）\n"
    )
    doc = parse_document(text)
    assert doc.programme.title == "某某工作方案" and doc.programme.document_no == "某府办发〔2023〕3号"
    assert doc.programme.issued_on == dt.date(2023, 3, 1)
    assert doc.first_leads_line == 4
    assert roles_of(text) == [[("市商务局", "lead"), ("市财政局", "cooperating")]]
    assert doc.sources[0].rule == "first-named leads (stated in the text)"


def test_paragraph_units_with_several_notes_and_labels_restarting_per_section() -> None:
    text = (
        "二、深化改革\n（一）优化审批。精简环节（市政务服务办牵头）。压缩时限（市发展改革委、市住房城乡建委负责）。\n"
        "（二）加强监管。推行信用监管。（市市场监管局牵头，市司法局配合）\n"
        "三、扩大开放\n（一）稳外贸。支持企业出口。（市商务局牵头）\n"
    )
    doc = parse_document(text)
    p = doc.programme
    assert [(g.no, g.title) for g in p.groups] == [(1, "深化改革"), (2, "扩大开放")]
    assert [(doc.source(t.no).label, t.title) for t in p.tasks()] == [
        ("二（一）", "优化审批"),
        ("二（二）", "加强监管"),
        ("三（一）", "稳外贸"),
    ]
    assert p.tasks()[0].text == "优化审批。精简环节。压缩时限。"
    assert roles_of(text)[0] == [
        ("市政务服务办", "lead"),
        ("市发展改革委", "responsible"),
        ("市住房城乡建委", "responsible"),
    ]


def test_numbering_restarting_per_group_keeps_the_documents_label() -> None:
    doc = parse_document("二、主要任务\n（一）甲组\n1. 任务甲。\n2. 任务乙。\n（二）乙组\n1. 任务丙。\n")
    assert [(t.no, doc.source(t.no).label) for t in doc.programme.tasks()] == [
        (1, "（一）1"),
        (2, "（一）2"),
        (3, "（二）1"),
    ]


def test_body_stops_at_an_annex_heading_not_at_a_mention() -> None:
    text = (
        "二、重点任务\n1.甲。按清单推进（见附件1）。\n2.乙。内容。\n三、保障措施\n加强领导。\n"
        "某市人民政府办公室\n2023年3月1日\n附件1\n重点任务分工表\n序号\t任务\t牵头单位\n1\t甲\t市商务局\n"
    )
    doc = parse_document(text)
    assert [t.title for t in doc.programme.tasks()] == ["甲", "乙"]
    assert doc.annex_line == 8 and doc.annex[1] == (9, "重点任务分工表")
    assert doc.programme.issued_on == dt.date(2023, 3, 1)


# -- an annexed division table ----------------------------------------------------------------

ANNEXED = """\
某市人民政府办公室关于印发某某行动方案的通知
某府办发〔2024〕7号
各区县人民政府，市政府各部门：
　　现将《某某行动方案》印发给你们，请认真贯彻落实。
某市人民政府办公室
2024年4月2日
某某行动方案
一、重点任务
（一）扩大有效投资
1.加快重大项目建设。推进项目开工（具体分工见附件）。
2.激发民间投资活力。向民间资本推介项目。
（二）提振消费
1.开展促消费活动。发放消费券。
2.发展夜间经济。打造夜间消费街区。（市商务局牵头，各区县政府负责）
二、保障措施
加强组织领导。
附件：某某行动方案重点任务分工表

附件

某某行动方案重点任务分工表

序号\t重点任务\t牵头单位\t配合单位\t完成时限
（一）1\t加快重大项目建设\t市发展改革委\t市财政局、市规划自然资源局\t2024年底
（一）2\t激发民间投资活力\t市发展改革委\t市工商联等\t持续推进
\t\t\t市金融监管局\t
（二）1\t开展促消费活动\t市商务局\t市财政局\t2024年6月
9\t未列入正文的事项\t市统计局\t\t
— 12 —
"""


def test_annexed_division_table_is_joined_to_the_clauses() -> None:
    doc = parse_document(ANNEXED)
    p = doc.programme
    assert p.title == "某某行动方案" and p.issued_on == dt.date(2024, 4, 2)
    assert [(doc.source(t.no).label, t.title) for t in p.tasks()] == [
        ("（一）1", "加快重大项目建设"),
        ("（一）2", "激发民间投资活力"),
        ("（二）1", "开展促消费活动"),
        ("（二）2", "发展夜间经济"),
    ]
    roles = [[(r.unit, r.role.value) for r in t.responsibilities] for t in p.tasks()]
    assert roles == [
        [("市发展改革委", "lead"), ("市财政局", "cooperating"), ("市规划自然资源局", "cooperating")],
        [("市发展改革委", "lead"), ("市工商联", "cooperating"), ("市金融监管局", "cooperating")],  # a wrapped row
        [("市商务局", "lead"), ("市财政局", "cooperating")],
        [("市商务局", "lead"), ("各区县政府", "responsible")],  # from the clause's own note
    ]
    assert [s.note_lines for s in doc.sources] == [(24,), (25,), (27,), ()]
    assert doc.sources[1].open_ended == ("市工商联",)
    assert doc.skipped == ["line 28: table row 9 未列入正文的事项: no work item in the text has that number or title"]
    # numbered lines inside the annex are not tasks, and the attachment list is not the annex
    assert doc.annex_line == 19


def _boxed(table: str) -> str:
    """The same table drawn with box-drawing characters, as pasted from a word processor."""
    rule = "├────┼──────────┼──────┼──────┼────┤"
    out = []
    for row in table.splitlines():
        out += [rule, "│" + "│".join(f" {cell} " if cell else "    " for cell in row.split("\t")) + "│"]
    return "\n".join(["┌────┬──────────┬──────┬──────┬────┐", *out[1:], "└────┴──────────┴──────┴──────┴────┘"])


@pytest.mark.parametrize(
    "draw",
    [_boxed, lambda t: t.replace("\t", " ┃ "), lambda t: t.replace("\t", "｜")],
    ids=["box-drawn", "heavy-bars", "full-width-bars"],
)
def test_annexed_table_drawn_with_bars_or_boxes_reads_the_same(draw: Any) -> None:
    head, _, table = ANNEXED.partition("序号")
    table, _, tail = ("序号" + table).partition("— 12 —")
    plain = parse_document(ANNEXED).programme
    doc = parse_document(head + draw(table.strip("\n")) + "\n" + tail)
    roles = [[(r.unit, r.role.value) for r in t.responsibilities] for t in doc.programme.tasks()]
    assert roles == [[(r.unit, r.role.value) for r in t.responsibilities] for t in plain.tasks()]
    assert [s for s in doc.skipped if "table row 9" in s]  # the row that joins no clause, still reported


def test_annex_without_a_division_table_is_reported() -> None:
    doc = parse_document("二、重点任务\n1.甲。内容。\n附件\n某某项目清单\n1.项目一\n2.项目二\n")
    assert [t.title for t in doc.programme.tasks()] == ["甲"]
    assert doc.skipped == ["line 3: an annex with no division table (no 牵头单位 column)"]


def test_group_labels_restarting_in_each_section_get_the_section_in_the_label() -> None:
    text = (
        "二、深化改革\n（一）甲组\n1. 任务甲。\n2. 任务乙。\n"
        "三、扩大开放\n（一）乙组\n1. 任务丙。\n四、保障措施\n加强领导。\n"
    )
    doc = parse_document(text)
    p = doc.programme
    assert [(g.no, g.title) for g in p.groups] == [(1, "甲组"), (2, "乙组")]
    assert [(t.no, doc.source(t.no).label) for t in p.tasks()] == [(1, "二（一）1"), (2, "二（一）2"), (3, "三（一）1")]
    assert p.safeguards == ["加强领导。"]


def test_traditional_copy_with_several_clauses_reads_each_note_at_its_clause() -> None:
    # 東府〔2021〕54號, a copy in traditional characters: number, title, addressee, two clauses
    text = (DATA / "dongguan-2021-54-traditional.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    doc = parse_document(text)
    assert doc.notices == [TRADITIONAL_NOTICE] and "負責" in text
    assert [(s.label, s.line) for s in doc.sources] == [("1", 7), ("2", 8)]
    for source, task in zip(doc.sources, doc.programme.tasks(), strict=True):
        assert lines[source.line - 1].startswith(f"{source.label}.") and lines[source.line - 1].endswith("負責)")
        assert "负责" not in task.text and task.text.endswith("。") and source.rule == "as written"
    assert doc.skipped == []
