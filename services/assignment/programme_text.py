"""Read a Chinese implementation-plan document (实施意见 / 若干意见 / 方案) into a Programme.

The genre: a title, a document number (渝府办发〔2022〕79号), an addressee, sections (一、…),
task groups (（一）…) of numbered clauses (1. …) under 主要任务 / 重点任务, a safeguards
section (保障措施 / 有关要求 / 组织实施), then the issuer and the date.

Real texts are copies of PDFs or web pages (broken sentences, page numbers, running headers,
mixed full and half width punctuation), so the parser works in three passes:

1. drop page furniture lines and glue the remaining lines into blocks: a line continues the
   previous block unless it opens with a structural marker or the block is already closed
   by sentence-ending punctuation;
2. cut the blocks into level-1 sections, and the task section into groups and clauses;
   any unmarked block inside the task section is the tail of the clause before it (a page
   break right after a full stop), so a clause is always whole;
3. read each clause's trailing division-of-work note into responsibilities (division_notes.py).

`Task.text` is the clause body without its number and its note (`Task.responsibilities`), in
the document's own punctuation (widths are folded only in copies used for matching). Pure.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field

from contracts.catalog import Goal, NamedResponsibility, Programme, Task, TaskGroup
from services.assignment.division_notes import responsibilities, split_note


class ProgrammeParseError(ValueError):
    """The text is not a recognisable implementation plan (no numbered tasks, or empty)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_CN = "〇零一二三四五六七八九十"
_CN_DIGIT = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0}
# Full-width digits and dots fold to ASCII 1:1, so positions found in the folded copy are
# valid in the original text.
_FOLD = str.maketrans("０１２３４５６７８９．，；：（）", "0123456789.,;:()")

SECTION_RE = re.compile(r"^([一二三四五六七八九十]{1,3})\s*[、.]\s*(.+)$")  # 一、主要任务
GROUP_RE = re.compile(r"^[（(]\s*([一二三四五六七八九十]{1,3})\s*[)）]\s*(.*)$")  # （一）…
CLAUSE_RE = re.compile(r"^([1-9]\d{0,2})\s*[.、](?!\d)\s*(.*)$")  # 1. … / 1.… / 1、… (not 1.5万)
DATE_RE = re.compile(rf"(?P<y>[\d{_CN}]{{4}})\s*年\s*(?P<m>[\d{_CN}]{{1,3}})\s*月\s*(?P<d>[\d{_CN}]{{1,3}})\s*日")
DOCNO_RE = re.compile(r"([\u4e00-\u9fff]{1,12})\s*[〔\[［【(（]\s*(\d{4})\s*[〕\]］】)）]\s*(\d{1,4})\s*号")
ADDRESSEE_RE = re.compile(r"^各.{1,80}[:：]$")  # 各区县（自治县）人民政府，市政府各部门，有关单位：
ATTACHMENT_RE = re.compile(r"^附\s*件\s*(\d+\s*)?([:：]|$)")

_PAGE_NUMBER_RE = re.compile(
    r"^[\s\-—–－―~～·•]*(第\s*)?\d{1,3}\s*页?(\s*[/／]\s*\d{1,3}|\s*,?\s*共\s*\d{1,3}\s*页)?[\s\-—–－―~～·•]*$"
)
_RUNNING_HEADER_RE = re.compile(r"^[^\s]{2,30}(文件|公报)$")  # 重庆市人民政府办公厅行政规范性文件
_PUNCT = set("。，；：、！？,;:!?")
_HEADING_PUNCT = set("，；：！？,;:!?")
_CLOSED_RE = re.compile(r"[。；！？：!?;:][”’」』]*$|[。！？][（(][^（）()]*[)）]$|^[（(][^（）()]*[)）]$")
_CJK = r"\u3400-\u9fff\u3000-\u303f\uff00-\uffef"

TASK_SECTION_WORDS = ("主要任务", "重点任务")
SAFEGUARD_WORDS = ("保障", "有关要求", "组织实施", "工作要求", "实施要求")


def _cn_number(s: str) -> int:
    """一 -> 1, 十二 -> 12, 二十 -> 20, 二〇二二 -> 2022, and plain digits."""
    s = s.translate(_FOLD)
    if s.isdigit():
        return int(s)
    if "十" not in s:
        return int("".join(str(_CN_DIGIT[c]) for c in s))
    tens, _, ones = s.partition("十")
    return (_CN_DIGIT[tens] if tens else 1) * 10 + (_CN_DIGIT[ones] if ones else 0)


def _fold(s: str) -> str:
    return s.translate(_FOLD)


# -- pass 1: lines -> blocks -----------------------------------------------------------------


def _content_lines(text: str) -> list[str]:
    """Non-blank lines without page numbers or running headers."""
    lines = [line.strip() for line in text.replace("\ufeff", "").splitlines()]
    lines = [line for line in lines if line]
    # A running header repeats on every page; a real paragraph never repeats word for word.
    counts = Counter(lines)

    def furniture(line: str) -> bool:
        if _PAGE_NUMBER_RE.match(_fold(line)):
            return True
        if _PUNCT.isdisjoint(line) and not _starts_block(line):
            return bool(_RUNNING_HEADER_RE.match(line) and "关于" not in line) or (counts[line] > 1 and len(line) <= 40)
        return False

    return [line for line in lines if not furniture(line)]


def _starts_block(line: str) -> bool:
    """A line that always opens a new block, whatever the previous one ended with."""
    folded = _fold(line)
    return bool(
        SECTION_RE.match(folded)
        or GROUP_RE.match(folded)
        or CLAUSE_RE.match(folded)
        or DOCNO_RE.fullmatch(folded)
        or DATE_RE.fullmatch(folded)
        or ADDRESSEE_RE.match(folded)
        or ATTACHMENT_RE.match(folded)
    )


def _heading(block: str) -> tuple[int, str, str] | None:
    """(number, title, body) when the block is a level-1 heading such as 二、主要任务, or one that
    carries its body (一、指导思想。以…); None for a sentence that merely starts with 一、."""
    m = SECTION_RE.match(_fold(block))
    if not m:
        return None
    title = block[m.start(2) :].split("。", 1)[0]
    if len(title) > 30 or not _HEADING_PUNCT.isdisjoint(title):
        return None
    body = block[m.start(2) + len(title) :].lstrip("。").strip()
    return _cn_number(m.group(1)), _strip_stop(title), body


def _is_heading(block: str) -> bool:
    heading = _heading(block)
    return heading is not None and not heading[2]


def _is_closed(block: str) -> bool:
    folded = _fold(block)
    return bool(
        _CLOSED_RE.search(folded) or _is_heading(block) or DOCNO_RE.fullmatch(folded) or DATE_RE.fullmatch(folded)
    )


def _join(left: str, right: str) -> str:
    # A page break splits a word only in Latin script; CJK text joins without a space.
    if left[-1:].isascii() and left[-1:].isalnum() and right[:1].isascii() and right[:1].isalnum():
        return f"{left} {right}"
    return left + right


def _blocks(lines: list[str]) -> list[str]:
    blocks: list[str] = []
    for line in lines:
        if blocks and not _starts_block(line) and not _is_closed(blocks[-1]):
            blocks[-1] = _join(blocks[-1], line)
        else:
            blocks.append(line)
    return blocks


# -- pass 2: blocks -> sections -> groups and clauses ----------------------------------------


@dataclass
class _Section:
    no: int
    title: str
    blocks: list[str] = field(default_factory=list)


def _split_closing(blocks: list[str]) -> tuple[list[str], dt.date | None]:
    """The body before the attachment list / issuer / date, and the issue date."""
    end = len(blocks)
    issued_on = None
    dates = [i for i, b in enumerate(blocks) if DATE_RE.fullmatch(_fold(b).strip("（）()"))]
    if dates:
        i = dates[-1]
        issued_on = _date(blocks[i])
        # The issuer (重庆市人民政府办公厅, 国务院) is the short unpunctuated line above the date.
        end = i - 1 if i > 0 and len(blocks[i - 1]) <= 30 and _PUNCT.isdisjoint(blocks[i - 1]) else i
    for i, b in enumerate(blocks[:end]):
        if i > 0 and ATTACHMENT_RE.match(_fold(b)):
            end = i
            break
    return blocks[:end], issued_on


def _date(block: str) -> dt.date | None:
    m = DATE_RE.search(_fold(block))
    if not m:
        return None
    try:
        return dt.date(_cn_number(m["y"]), _cn_number(m["m"]), _cn_number(m["d"]))
    except (ValueError, KeyError):
        return None


def _sections(blocks: list[str]) -> tuple[list[str], list[_Section]]:
    """The header blocks (before the first 一、) and the level-1 sections."""
    header: list[str] = []
    sections: list[_Section] = []
    for block in blocks:
        if heading := _heading(block):
            no, title, body = heading
            sections.append(_Section(no, title, [body] if body else []))
        elif sections:
            sections[-1].blocks.append(block)
        else:
            header.append(block)
    return header, sections


def _strip_stop(s: str) -> str:
    return s.strip().rstrip("。.；;：:").strip()


def _items(blocks: list[str]) -> list[str]:
    """A section's items. When it numbers its items, an unnumbered block is the tail of the
    item before it (a page break after a full stop); otherwise every block is an item."""
    marked = [bool(GROUP_RE.match(_fold(b)) or CLAUSE_RE.match(_fold(b))) for b in blocks]
    if not any(marked):
        return list(blocks)
    items: list[str] = []
    for block, is_marked in zip(blocks, marked, strict=True):
        if items and not is_marked:
            items[-1] = _join(items[-1], block)
        else:
            items.append(block)
    return items


def _unmark(item: str) -> str:
    folded = _fold(item)
    m = GROUP_RE.match(folded) or CLAUSE_RE.match(folded)
    return item[m.start(2) :].strip() if m else item


def _header(header: list[str]) -> tuple[str, str, dt.date | None]:
    """document_no, title, and a date if the header carries one (（2022年7月9日）)."""
    document_no, title_parts, issued_on = "", [], None
    for block in header:
        folded = _fold(block)
        if m := DOCNO_RE.search(folded):
            document_no = document_no or f"{m.group(1)}〔{m.group(2)}〕{m.group(3)}号"
            # An unpunctuated title right below the number may have been glued to it.
            rest = (block[: m.start()] + block[m.end() :]).strip()
            if rest and "。" not in rest:
                title_parts.append(rest)
        elif DATE_RE.fullmatch(folded.strip("()")):
            issued_on = _date(block)
        elif ADDRESSEE_RE.match(folded) or "。" in block or block.endswith(("：", ":")) or len(block) > 100:
            break  # the addressee or the preamble: the title is above
        else:
            title_parts.append(block)
    title = "".join(title_parts)
    # Stray spaces between CJK characters come from PDF line layout, never from the title.
    title = re.sub(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])", "", title)
    return document_no, title, issued_on


def _task_sections(sections: list[_Section]) -> list[_Section]:
    """The section(s) holding the numbered clauses.

    Usually one section titled 主要任务 / 重点任务 with （一）… groups. Failing that, the
    sections that contain numbered clauses (some 方案 make each level-1 section a group)."""
    for s in sections:
        if any(w in s.title for w in TASK_SECTION_WORDS):
            return [s]
    with_clauses = [
        s
        for s in sections
        if any(CLAUSE_RE.match(_fold(b)) for b in s.blocks) and not any(w in s.title for w in SAFEGUARD_WORDS)
    ]
    return with_clauses


@dataclass
class _Clause:
    no: int
    body: str


@dataclass
class _Group:
    no: int
    title: str
    clauses: list[_Clause] = field(default_factory=list)


def _groups(task_sections: list[_Section]) -> list[_Group]:
    groups: list[_Group] = []
    for section in task_sections:
        current = _Group(section.no if len(task_sections) > 1 else 1, section.title)
        groups.append(current)
        for block in _items(section.blocks):
            folded = _fold(block)
            if m := GROUP_RE.match(folded):
                current = _Group(_cn_number(m.group(1)), _strip_stop(_first_sentence(block[m.start(2) :])))
                groups.append(current)
            elif m := CLAUSE_RE.match(folded):
                body = block[m.start(2) :].strip()
                if split_note(body)[0]:  # a bare "1." (a list artefact) is not a task
                    current.clauses.append(_Clause(int(m.group(1)), body))
            # other blocks (a group's introduction) carry no task
    groups = [g for g in groups if g.clauses]  # the section's own placeholder when it has （一）
    if len(task_sections) > 1 or any(b.no <= a.no for a, b in zip(groups, groups[1:], strict=False)):
        for i, g in enumerate(groups, 1):  # sections as groups: number them 1..n like （一）…
            g.no = i
    # Clauses are numbered across the document; some texts restart at 1 in every group.
    # Task numbers must be unique, so a restarting sequence is renumbered in order.
    numbers = [c.no for g in groups for c in g.clauses]
    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        n = 0
        for g in groups:
            for c in g.clauses:
                n += 1
                c.no = n
    return groups


def _first_sentence(s: str) -> str:
    m = re.search(r"[。！？!?]", s)
    if m:
        return s[: m.start()].strip()
    m = re.search(r"[；;]", s)
    return (s[: m.start()] if m else s).strip()


# -- goals ---------------------------------------------------------------------------------

_GOAL_YEAR_RE = re.compile(r"(?:^|(?<=[。；;：:]))\s*(?:到|至)\s*(\d{4})\s*年")


def _goals(sections: list[_Section]) -> list[Goal]:
    """Goals: the "到 2025 年，…" sentences of a 目标 paragraph or section before the tasks."""
    goals: dict[int, str] = {}
    for section in sections:
        for item in _items(section.blocks):
            if "目标" not in section.title and "目标" not in item:
                continue
            body = _unmark(item)
            starts = list(_GOAL_YEAR_RE.finditer(_fold(body)))
            ends = [m.start() for m in starts[1:]] + [len(body)]
            for m, end in zip(starts, ends, strict=False):  # ends is one longer when starts is empty
                text = body[m.start() : end].strip()
                year = int(m.group(1))
                goals[year] = goals[year] + text if year in goals else text
    return [Goal(year=y, text=t) for y, t in goals.items()]


# -- the whole document --------------------------------------------------------------------


def parse_programme(text: str) -> Programme:
    """Parse an implementation plan. Raises ProgrammeParseError when there are no tasks."""
    blocks = _blocks(_content_lines(text))
    if not blocks:
        raise ProgrammeParseError("the text is empty")
    body, issued_on = _split_closing(blocks)
    header, sections = _sections(body)
    document_no, title, header_date = _header(header)
    task_sections = _task_sections(sections)
    if not task_sections and not sections:
        # No 一、二、 headings at all: a bare list of groups and clauses.
        task_sections = [_Section(1, title, header)]
    groups = _groups(task_sections)
    if not any(g.clauses for g in groups):
        raise ProgrammeParseError(
            "no numbered tasks found: expected clauses like '1. …' under a 主要任务 / 重点任务 heading"
        )

    first_leads = False
    task_groups = []
    for g in groups:
        tasks = []
        for c in g.clauses:
            body_text, note = split_note(c.body)
            named: list[NamedResponsibility] = []
            if note:
                named, first_leads = responsibilities(note, first_leads)
            title_ = _strip_stop(_first_sentence(body_text))
            tasks.append(Task(no=c.no, title=title_, text=body_text, responsibilities=named))
        task_groups.append(TaskGroup(no=g.no, title=g.title, tasks=tasks))

    first_task = sections.index(task_sections[0]) if task_sections[0] in sections else 0
    last_task = sections.index(task_sections[-1]) if task_sections[-1] in sections else -1
    return Programme(
        document_no=document_no,
        title=title,
        issued_on=issued_on or header_date,
        goals=_goals(sections[:first_task]),
        groups=task_groups,
        safeguards=_safeguards(sections[last_task + 1 :]),
    )


def _safeguards(after_tasks: list[_Section]) -> list[str]:
    """Items of the 保障措施 / 有关要求 section; failing that, of the section after the tasks."""
    chosen = next((s for s in after_tasks if any(w in s.title for w in SAFEGUARD_WORDS)), None)
    chosen = chosen or (after_tasks[0] if after_tasks else None)
    return [_unmark(item) for item in _items(chosen.blocks)] if chosen else []
