"""The parser on the genre's forms, each in a short text written in the genre's own words: the
responsibility notes (牵头/配合/负责 and their variants), a rule stated once in the cover notice,
headings and numbering that restart per section or group, where the body ends, and an annexed
division table joined to the clauses (also drawn with bars or boxes). Real documents:
tests/unit/test_policy_genre_documents.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from services.assignment.programme_text import parse_document


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


def test_noted_paragraphs_of_a_section_are_the_units_when_there_is_no_other_level() -> None:
    # The 云南省 2017 稳增长 意见 shape: 一、 sections of plain paragraphs, notes (X、Y牵头;Z配合).
    text = (
        "一、总体要求\n坚持稳中求进。(省发展改革委牵头)\n"
        "二、推进重大项目建设\n建立项目推进机制,形成全程服务。(省发展改革委、财政厅牵头;各州、市人民政府配合)\n"
        "加强督查考核。\n"
        "加快资金拨付进度。全省各部门按时下达资金。(财政厅牵头;省审计厅配合)\n"
        "三、扩大有效消费\n开展促消费活动。(省商务厅负责)\n"
        "四、保障措施\n加强组织领导。\n"
    )
    doc = parse_document(text)
    p = doc.programme
    assert [(g.no, g.title) for g in p.groups] == [(1, "推进重大项目建设"), (2, "扩大有效消费")]
    assert [(t.no, doc.source(t.no).label, t.title, doc.source(t.no).line) for t in p.tasks()] == [
        (1, "二、1", "建立项目推进机制,形成全程服务", 4),
        (2, "二、2", "加快资金拨付进度", 6),
        (3, "三、1", "扩大有效消费", 8),  # the section's only paragraph: its heading is the title
    ]
    assert p.tasks()[1].text == "加快资金拨付进度。全省各部门按时下达资金。"
    assert roles_of(text) == [
        [("省发展改革委", "lead"), ("财政厅", "lead"), ("各州、市人民政府", "cooperating")],
        [("财政厅", "lead"), ("省审计厅", "cooperating")],
        [("省商务厅", "responsible")],
    ]
    assert doc.skipped == [
        "line 2: a paragraph under 一、总体要求 is not read as a task",
        "line 5: a paragraph under 二、推进重大项目建设 names no responsible unit: not read as a task",
    ]
    assert p.safeguards == ["加强组织领导。"]


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
