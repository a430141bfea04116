"""Pass 2 of reading a policy text: blocks -> level-1 sections -> task groups and work items.

A work item is a numbered clause (1. / 1、 / 1．); in a document with no such level, a （一）
paragraph; in one with neither level, a paragraph of a 一、 section that carries a note. It
keeps the document's own label for display and for joining an annex (`12`, or `（二）3` where
numbering restarts in each group, `二（一）` for paragraphs whose labels restart in each
section, `一、2` for the second noted paragraph of section 一) and gets a running number in
document order (its id, tNN).
Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.assignment.division_notes import notes_in, read_note
from services.assignment.policy_lines import (
    GROUP_RE,
    IN_CHARGE_RE,
    NOTE_LINE_RE,
    PUNCT,
    SECTION_RE,
    Block,
    clause_match,
    cn_number,
    fold,
    heading,
    join,
    strip_stop,
)

TASK_SECTION_WORDS = ("主要任务", "重点任务", "重点工作")
SAFEGUARD_WORDS = ("保障", "有关要求", "组织实施", "工作要求", "实施要求")
PREAMBLE_WORDS = ("总体要求", "指导思想", "基本原则", "工作原则", "总体思路", "目标")


@dataclass
class Section:
    no: int
    title: str
    blocks: list[Block] = field(default_factory=list)
    line: int = 0
    label: str = ""  # 二, as the document writes it


@dataclass
class Item:
    """A marked block with the unmarked blocks that continue it, and the note lines under it."""

    text: str
    line: int
    head: str
    tail: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    note_lines: list[int] = field(default_factory=list)
    clause_no: int | None = None
    in_charge: list[tuple[int, str]] = field(default_factory=list)  # (line, 分管省领导:林克庆)


@dataclass
class Clause:
    no: int
    body: str
    line: int
    notes: list[str]
    note_lines: list[int]
    doc_no: int | None = None
    label: str = ""
    title: str | None = None  # set when the document gives the title on a line of its own
    in_charge: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Group:
    no: int
    title: str
    section: Section
    marker: str = ""  # （二）
    clauses: list[Clause] = field(default_factory=list)


@dataclass
class Layout:
    groups: list[Group]
    sections: list[Section]
    skipped: list[str] = field(default_factory=list)


def sections_of(blocks: list[Block]) -> tuple[list[Block], list[Section]]:
    """The header blocks (before the first 一、) and the level-1 sections."""
    header: list[Block] = []
    sections: list[Section] = []
    for block in blocks:
        if found := heading(block):
            no, title, body = found
            label = SECTION_RE.match(fold(block))
            body_blocks = [Block(body, block.line)] if body else []
            sections.append(Section(no, title, body_blocks, block.line, label.group(1) if label else str(no)))
        elif sections:
            sections[-1].blocks.append(block)
        else:
            header.append(block)
    return header, sections


def items(blocks: list[Block]) -> list[Item]:
    """A section's items. When it numbers its items, an unnumbered block is the tail of the
    item before it (a page break after a full stop), a 责任单位: / 部门分工: line is its note and a
    分管省领导: line names the official in charge; otherwise every block is an item."""
    out: list[Item] = []
    expected: int | None = None
    for block in blocks:
        folded = fold(block)
        m = clause_match(block, expected)
        if m or GROUP_RE.match(folded):
            out.append(Item(block, block.line, block, clause_no=int(m.group(1)) if m else None))
            expected = int(m.group(1)) + 1 if m else expected
        elif out and NOTE_LINE_RE.match(folded):
            out[-1].notes.append(block)
            out[-1].note_lines.append(block.line)
        elif out and IN_CHARGE_RE.match(folded):
            out[-1].in_charge.append((block.line, block))
        elif out and (out[-1].clause_no is not None or GROUP_RE.match(fold(out[-1].head))):
            out[-1].text = join(out[-1].text, block)
            out[-1].tail.append(block)
        else:
            out.append(Item(block, block.line, block))
    return out


def unmark(text: str) -> str:
    folded = fold(text)
    m = GROUP_RE.match(folded) or clause_match(text)
    return text[m.start(2) :].strip() if m else text


def first_sentence(s: str) -> str:
    m = re.search(r"[。！？!?]", s)
    if m:
        return s[: m.start()].strip()
    m = re.search(r"[；;]", s)
    return (s[: m.start()] if m else s).strip()


def _noted(item: Item) -> bool:
    return bool(item.notes or notes_in(item.text)[1])


def _names_units(item: Item) -> bool:
    """A note that names a unit, not a bare word in brackets (各责任(配合)单位)."""
    return any(read_note(n, False).named for n in item.notes + notes_in(item.text)[1])


def _has_notes(section: Section) -> bool:
    return any(_noted(it) for it in items(section.blocks) if it.clause_no or GROUP_RE.match(fold(it.head)))


def _task_sections(sections: list[Section]) -> list[Section]:
    """The sections holding the work: the one titled 主要任务 / 重点任务 / 重点工作; failing
    that, those with numbered clauses that are not a preamble or safeguards section. A section
    whose items name responsible units is always one."""
    named = [s for s in sections if any(w in s.title for w in TASK_SECTION_WORDS)][:1]
    if not named:
        named = [
            s
            for s in sections
            if any(it.clause_no for it in items(s.blocks))
            and not any(w in s.title for w in SAFEGUARD_WORDS + PREAMBLE_WORDS)
        ]
    chosen = {id(s) for s in named} | {id(s) for s in sections if _has_notes(s)}
    return [s for s in sections if id(s) in chosen]


def _clause(item: Item, body: str, line: int) -> Clause:
    text, notes = notes_in(body)
    if item.notes:
        notes.append("；".join(item.notes))
    return Clause(0, text, line, notes, list(item.note_lines), in_charge=list(item.in_charge))


def _groups(task_sections: list[Section]) -> tuple[list[Group], list[str]]:
    groups: list[Group] = []
    skipped: list[str] = []
    for section in task_sections:
        current = Group(section.no if len(task_sections) > 1 else 1, section.title, section)
        groups.append(current)
        for item in items(section.blocks):
            folded = fold(item.text)
            if m := GROUP_RE.match(folded):
                title = strip_stop(first_sentence(item.text[m.start(2) :]))
                current = Group(cn_number(m.group(1)), title, section, f"（{m.group(1)}）")
                groups.append(current)
            elif item.clause_no is not None:
                m2 = clause_match(item.text, item.clause_no)
                assert m2 is not None
                clause = _clause(item, item.text[m2.start(2) :].strip(), item.line)
                if clause.body:  # a bare "1." (a list artefact) is not a task
                    clause.doc_no = item.clause_no
                    current.clauses.append(clause)
                else:
                    skipped.append(f"line {item.line}: a bare number '{item.clause_no}.' with no text")
    groups = [g for g in groups if g.clauses]  # the section's own placeholder when it has （一）
    if len(task_sections) > 1 or any(b.no <= a.no for a, b in zip(groups, groups[1:], strict=False)):
        for i, g in enumerate(groups, 1):  # sections as groups: number them 1..n like （一）…
            g.no = i
    doc_numbers = [c.doc_no for g in groups for c in g.clauses]
    straight = all(
        b is not None and a is not None and b > a for a, b in zip(doc_numbers, doc_numbers[1:], strict=False)
    )
    repeated_markers = _repeated([g.marker for g in groups if g.marker])
    for g in groups:
        prefix = _prefix(g, repeated_markers)
        for c in g.clauses:
            c.label = str(c.doc_no) if straight else f"{prefix}{c.doc_no}"
    return groups, skipped


def _repeated(markers: list[str]) -> bool:
    return len(set(markers)) < len(markers)


def _prefix(g: Group, repeated_markers: bool) -> str:
    section = _CN_NUMERALS[g.section.no] if 0 < g.section.no < len(_CN_NUMERALS) else str(g.section.no)
    if not g.marker:
        return f"{section}、"
    return f"{section}{g.marker}" if repeated_markers else g.marker


_CN_NUMERALS = ["", *"一二三四五六七八九十", *(f"十{c}" for c in "一二三四五六七八九"), "二十"]


def _paragraph_groups(sections: list[Section]) -> list[Group]:
    """Documents with no 1. level: each （一） paragraph of a task section is a work item."""
    # A section whose paragraphs name responsible units is work whatever its title
    # (五、强化协调配合，加强资金保障 in 国办发〔2018〕121号).
    candidates = [
        s for s in sections if not any(w in s.title for w in SAFEGUARD_WORDS + PREAMBLE_WORDS) or _has_notes(s)
    ]
    candidates = candidates or sections
    groups: list[Group] = []
    for section in candidates:
        group = Group(len(groups) + 1, section.title, section)
        for item in items(section.blocks):
            m = GROUP_RE.match(fold(item.head))
            if not m:
                continue
            head = item.head[m.start(2) :].strip()
            if item.tail and PUNCT.isdisjoint(head):  # the title on a line of its own
                body = "".join(item.tail)
                clause = _clause(item, body, item.line)
                clause.title = strip_stop(head)
            else:
                clause = _clause(item, item.text[m.start(2) :].strip(), item.line)
            clause.label = f"（{m.group(1)}）"
            if clause.body or clause.title:
                group.clauses.append(clause)
        if group.clauses:
            groups.append(group)
    if _repeated([c.label for g in groups for c in g.clauses]):
        for g in groups:
            for c in g.clauses:
                c.label = f"{_prefix(g, True).rstrip('、')}{c.label}" if g.section.no else c.label
    return groups


def _noted_paragraph_groups(sections: list[Section]) -> tuple[list[Group], list[str]]:
    """Documents with neither a （一） nor a 1. level (云南省 稳增长 意见, 2017): each paragraph of a
    section that carries a note is a work item; a paragraph without one is not. A section holding
    one paragraph is titled by its heading; several are titled by their first sentences."""
    groups: list[Group] = []
    skipped: list[str] = []
    for section in sections:
        paragraphs = items(section.blocks)
        noted = [it for it in paragraphs if _names_units(it)]
        if not noted:
            continue
        where = f"under {section.label}、{section.title}"
        if any(w in section.title for w in PREAMBLE_WORDS):  # 总体要求, 指导思想: never work
            skipped += [f"line {it.line}: a paragraph {where} is not read as a task" for it in noted]
            continue
        group = Group(len(groups) + 1, section.title, section)
        for k, item in enumerate(noted, 1):
            clause = _clause(item, item.text, item.line)
            clause.label = f"{_prefix(group, False)}{k}"
            clause.title = section.title if len(paragraphs) == 1 else None
            group.clauses.append(clause)
        groups.append(group)
        skipped += [
            f"line {it.line}: a paragraph {where} names no responsible unit: not read as a task"
            for it in paragraphs
            if not _names_units(it)
        ]
    return groups, skipped


def layout(sections: list[Section], header: list[Block], title: str) -> Layout:
    """The task groups and work items, numbered 1..n in document order."""
    task_sections = _task_sections(sections)
    if not task_sections and not sections:
        # No 一、二、 headings at all: a bare list of groups and clauses.
        task_sections = [Section(1, title, header, header[0].line if header else 0)]
    groups, skipped = _groups(task_sections)
    paragraphs = not groups
    if paragraphs:
        groups = _paragraph_groups(task_sections or sections)
        if not groups and sections:  # only under 一、 headings of the document's own
            groups, unnoted = _noted_paragraph_groups(task_sections or sections)
            skipped += unnoted
        task_sections = [g.section for g in groups]
    n = 0
    for g in groups:
        for c in g.clauses:
            n += 1
            c.no = n
    chosen = {id(s) for s in task_sections}
    for s in sections:
        if id(s) in chosen:
            continue
        for it in items(s.blocks):
            marker = GROUP_RE.match(fold(it.head))
            if it.clause_no is not None:
                skipped.append(
                    f"line {it.line}: clause {it.clause_no} under {s.label}、{s.title} is not read as a task"
                )
            elif paragraphs and marker:
                what = f"paragraph （{marker.group(1)}）"
                skipped.append(f"line {it.line}: {what} under {s.label}、{s.title} is not read as a task")
    return Layout(groups, task_sections, skipped)
