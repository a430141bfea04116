"""Bidi overrides and control characters: refused in names and file names, spelled out where shown."""

from __future__ import annotations

import io

import pytest
from fastapi import HTTPException
from rich.console import Console

from contracts.text import hidden_in, hidden_in_names, shown
from services.cli import common
from services.notify.messages import notice
from services.progress import charts
from services.progress.dashboard_queries import UnitStats
from services.progress.templating import templates
from services.progress.uploads import clean_name
from services.shared.web import refuse_hidden_in_names
from tests.e2e.support import EventFactory

DISGUISED = "报告\u202e0fdp.exe"  # shows as 报告exe.pdf0


def test_which_characters_are_hidden() -> None:
    every = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0, 7, 0x1B, 0x7F, 0x85)]
    assert hidden_in("".join(every)) == every
    assert hidden_in("报告 2026-Q1.pdf, العربية עברית 😀 e\u0301") == []
    assert shown(DISGUISED) == "报告[U+202E]0fdp.exe"
    assert shown("两行\n之间\t制表") == "两行\n之间\t制表"  # free text keeps its layout
    assert shown("a\u0000b") == "a[U+0000]b"


def test_names_anywhere_in_a_body_are_found_and_free_text_is_not() -> None:
    body = {
        "narrative": "进展\u202e常正\u202c",  # free text: shown escaped, not refused
        "evidence": [{"name": "ok.pdf"}, {"name": DISGUISED}],
        "milestones": [{"title": "完成\u0007验收"}],
        "units": [{"name": "渝中区", "aliases": ["渝中", "\u2066渝中\u2069"]}],
    }
    assert list(hidden_in_names(body)) == [
        (("evidence", 1, "name"), ["\u202e"]),
        (("milestones", 0, "title"), ["\u0007"]),
        (("units", 0, "aliases", 1), ["\u2066", "\u2069"]),
    ]


def test_the_refusal_is_a_422_in_plain_words_chinese_first() -> None:
    with pytest.raises(HTTPException) as err:
        refuse_hidden_in_names({"evidence": [{"name": DISGUISED}]})
    assert err.value.status_code == 422
    assert str(err.value.detail).startswith("evidence.0.name 含有不可见的控制字符 U+202E")
    assert "holds the invisible control character(s) U+202E" in str(err.value.detail)
    refuse_hidden_in_names({"evidence": [{"name": "报告.pdf"}], "narrative": "a\nb"})  # nothing to refuse


def test_an_uploaded_file_name_with_an_override_is_refused() -> None:
    with pytest.raises(HTTPException) as err:
        clean_name(f"C:\\Users\\me\\{DISGUISED}")
    assert err.value.status_code == 422 and "file name 含有不可见的控制字符 U+202E" in str(err.value.detail)
    assert clean_name("C:\\Users\\me\\报告\u200b.pdf") == "报告.pdf"  # zero-width: dropped, as before


def test_pages_spell_them_out() -> None:
    page = templates.env.from_string("<td>{{ name }}</td><p>{{ narrative }}</p>").render(
        name=DISGUISED, narrative="甲\n乙\u202e"
    )
    assert page == "<td>报告[U+202E]0fdp.exe</td><p>甲\n乙[U+202E]</p>"
    svg = charts.unit_bars([UnitStats(unit_id="u1", total=1)], {"u1": "渝中\u202e区"})
    assert "渝中[U+202E]区" in svg and "\u202e" not in svg


def test_cli_tables_spell_them_out(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(common, "console", lambda: Console(file=out, width=300, force_terminal=False))
    page = {
        "total": 1,
        "items": [
            {
                "assignment_id": "p.t01.u",
                "task_no": 1,
                "task_title": "任务\u202e甲",
                "unit_id": "u",
                "role": "responsible",
                "stage": "implementing",
                "year": 2026,
                "overdue_level": "none",
            }
        ],
    }
    common.assignments_table(page, "inbox")
    assert "任务[U+202E]甲" in out.getvalue() and "\u202e" not in out.getvalue()


def test_notices_spell_them_out() -> None:
    f = EventFactory("cq-2022-79", 14, "yuzhong")
    told = notice(f.escalated("red"), "绿色\u202e建筑\n", "https://pf.example.gov.cn/", lambda _: "渝中\u0007区")
    assert told is not None
    assert "绿色[U+202E]建筑[U+000A]" in told.subject and "\n" not in told.subject
    assert told.text.startswith("渝中[U+0007]区：") and "绿色[U+202E]建筑\n" in told.text
