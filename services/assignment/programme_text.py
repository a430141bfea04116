"""Read a Chinese implementation document (实施意见 / 若干意见 / 实施方案 / 分工方案) into a Programme.

The genre: an optional cover notice (印发…的通知: number, addressees, issuer, date), a title, a
document number, an addressee, sections (一、…), task groups (（一）…) of numbered clauses
(1. …), a safeguards section, the issuer and the date, then annexes (附件). Clauses are
numbered straight through or restart in each group; some documents have no 1. level and each
（一） paragraph is the unit of work. Who is responsible is said in notes (division_notes.py)
or in an annexed table (division_table.py).

Passes: lines -> blocks (policy_lines.py); blocks -> sections -> groups and clauses
(programme_layout.py); notes -> responsibilities. `Task.text` is the clause body without its
number and its notes, in the document's own punctuation. Pure.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace

from contracts.base import Role
from contracts.catalog import Goal, NamedResponsibility, Programme, Task, TaskGroup
from services.assignment.division_notes import EXPLICIT, FIRST_LEADS_RE, FIRST_LEADS_STATED, NoteReading, read_note
from services.assignment.division_table import join_table
from services.assignment.policy_lines import (
    ADDRESSEE_RE,
    ANNEX_HEADING_RE,
    ATTACHMENT_RE,
    DATE_RE,
    DOCNO_RE,
    PUBLICATION_NOTE_RE,
    PUNCT,
    Block,
    blocks,
    cn_number,
    content_lines,
    fold,
    simplified,
    strip_stop,
)
from services.assignment.programme_layout import (
    SAFEGUARD_WORDS,
    TASK_SECTION_WORDS,
    Layout,
    Section,
    first_sentence,
    items,
    layout,
    sections_of,
    unmark,
)


class ProgrammeParseError(ValueError):
    """The text is not a recognisable implementation plan (no tasks, or empty)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


TRADITIONAL_NOTICE = "the text is in traditional characters: it was read as simplified (titles and names are given so)"
_CJK = r"\u3400-\u9fff\u3000-\u303f\uff00-\uffef"


@dataclass(frozen=True)
class TaskSource:
    """Where a task came from: its label in the document (（二）3), its line, its notes."""

    no: int
    label: str
    line: int
    note_lines: tuple[int, ...] = ()
    rule: str = ""  # which rule gave the roles (explicit, first-named leads stated, as written)
    open_ended: tuple[str, ...] = ()  # names followed by 等
    not_understood: tuple[str, ...] = ()  # parts of a note that name no unit in a known form
    in_charge: tuple[tuple[int, str], ...] = ()  # (line, 分管省领导:林克庆): a person, not a unit
    guiding: tuple[str, ...] = ()  # units that guide (指导): no role of a division, not in it
    standing: tuple[str, ...] = ()  # responsible by a statement made once (以下均需X落实) …
    standing_line: int | None = None  # … on this line
    unit_lines: tuple[tuple[str, int], ...] = ()  # unit -> line of the note that names it


@dataclass
class ParsedDocument:
    """The programme and what a person reviewing it needs: where each task is, what was skipped."""

    programme: Programme
    sources: list[TaskSource]
    annex: list[tuple[int, str]] = field(default_factory=list)  # (line, text) from the 附件 heading on
    annex_line: int | None = None
    first_leads_line: int | None = None  # where the text states that the first-named unit leads
    skipped: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # how the text was read, e.g. as simplified
    lines: list[str] = field(default_factory=list)  # the text as read, one entry a line

    def source(self, task_no: int) -> TaskSource:
        return next(s for s in self.sources if s.no == task_no)

    def line_of(self, name: str, task_no: int) -> int:
        """The line where a task's note (or annex row) names `name`: the first line holding it
        from the note's line on, before the next task begins; the note's line if none does."""
        src = self.source(task_no)
        if name in src.standing and src.standing_line:
            return src.standing_line
        at = dict(src.unit_lines).get(name)
        if at and name in self.lines[at - 1]:
            return at
        starts = list(src.note_lines) or [src.line]
        later = [s.line for s in self.sources if s.line > src.line]
        for start in starts:
            end = min([n for n in later if n > start], default=start + 6)
            for n in range(start, min(end, len(self.lines) + 1)):
                if name in self.lines[n - 1]:
                    return n
        return starts[0]


def _split_closing(all_blocks: list[Block]) -> tuple[list[Block], list[Block], dt.date | None]:
    """The body before the attachment list / issuer / date, the annex blocks (after an 附件
    heading line, not a mention such as 见附件1), and the issue date."""
    annex_at = next((i for i, b in enumerate(all_blocks) if i > 0 and ANNEX_HEADING_RE.match(fold(b))), len(all_blocks))
    blocks_, annex = all_blocks[:annex_at], all_blocks[annex_at:]
    end = len(blocks_)
    issued_on = None
    headings = [i for i, b in enumerate(blocks_) if sections_of([b])[1]]
    dates = [i for i, b in enumerate(blocks_) if DATE_RE.fullmatch(fold(b).strip("（）()"))]
    # A date above the last heading belongs to a cover notice: the plan follows it.
    closing = [i for i in dates if not headings or i > headings[-1]]
    if closing:
        i = closing[-1]
        issued_on = _date(blocks_[i])
        # The issuer (重庆市人民政府办公厅, 国务院) is the short unpunctuated line above the date.
        above = blocks_[i - 1] if i > 0 else ""
        end = i - 1 if above and len(above) <= 30 and PUNCT.isdisjoint(above) else i
    elif dates:
        issued_on = _date(blocks_[dates[0]])
    for i, b in enumerate(blocks_[:end]):
        if i > 0 and ATTACHMENT_RE.match(fold(b)) and (not headings or i > headings[-1]):
            end = i
            break
    return blocks_[:end], annex, issued_on


def _date(block: str) -> dt.date | None:
    m = DATE_RE.search(fold(block))
    if not m:
        return None
    try:
        return dt.date(cn_number(m["y"]), cn_number(m["m"]), cn_number(m["d"]))
    except (ValueError, KeyError):
        return None


def _header(header: list[Block]) -> tuple[str, str, dt.date | None]:
    """document_no, title, and a date if the header carries one. With a cover notice (印发…的通知
    with its issuer and date), the title is the plan's own, below the notice."""
    dates = [i for i, b in enumerate(header) if DATE_RE.fullmatch(fold(b).strip("()（）"))]
    if dates and dates[0] + 1 < len(header):
        below = _title_parts(header[dates[0] + 1 :], skip_publication_note=True)
        if below:
            document_no, _, issued = _header_fields(header[: dates[0] + 1])
            return document_no, _clean_title(below), issued
    return _header_fields(header)


def _header_fields(header: list[Block]) -> tuple[str, str, dt.date | None]:
    document_no, issued_on = "", None
    title_parts: list[str] = []
    for block in header:
        folded = fold(block)
        m = DOCNO_RE.search(folded)
        if m and m.start() > 0 and ("。" in block or len(block) > 100):
            m = None  # a number cited inside the preamble (根据《…》(昆政发〔2016〕13号)) is not this one
        if m:
            if not document_no:
                document_no = f"{m.group(1)}〔{m.group(2)}〕{m.group(3)}号"
                # An unpunctuated title right below the number may have been glued to it.
                rest = (block[: m.start()] + block[m.end() :]).strip()
                if rest and "。" not in rest and not title_parts:
                    title_parts.append(rest)
        elif DATE_RE.fullmatch(folded.strip("()")) or PUBLICATION_NOTE_RE.fullmatch(folded):
            issued_on = issued_on or _date(block)
        elif ADDRESSEE_RE.match(folded) or "。" in block or block.endswith(("：", ":")) or len(block) > 100:
            break  # the addressee or the preamble: the title is above
        else:
            title_parts.append(block)
    return document_no, _clean_title(title_parts), issued_on


def _title_parts(blocks_: list[Block], skip_publication_note: bool) -> list[str]:
    parts: list[str] = []
    for block in blocks_:
        folded = fold(block)
        if skip_publication_note and PUBLICATION_NOTE_RE.fullmatch(folded):
            continue
        if "。" in block or ADDRESSEE_RE.match(folded) or block.endswith(("：", ":")) or len(block) > 60:
            break
        if DOCNO_RE.search(folded) or DATE_RE.search(folded) or not PUNCT.isdisjoint(block.replace("、", "")):
            break
        parts.append(block)
    return parts


def _clean_title(parts: list[str]) -> str:
    # Stray spaces between CJK characters come from PDF line layout, never from the title.
    return re.sub(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])", "", "".join(parts))


_GOAL_YEAR_RE = re.compile(r"(?:^|(?<=[。；;：:]))\s*(?:到|至)\s*(\d{4})\s*年")


def _goals(sections: list[Section]) -> list[Goal]:
    """Goals: the "到 2025 年，…" sentences of a 目标 paragraph or section before the tasks."""
    goals: dict[int, str] = {}
    for section in sections:
        for item in items(section.blocks):
            if "目标" not in section.title and "目标" not in item.text:
                continue
            body = unmark(item.text)
            starts = list(_GOAL_YEAR_RE.finditer(fold(body)))
            ends = [m.start() for m in starts[1:]] + [len(body)]
            for m, end in zip(starts, ends, strict=False):
                text = body[m.start() : end].strip()
                year = int(m.group(1))
                goals[year] = goals[year] + text if year in goals else text
    return [Goal(year=y, text=t) for y, t in goals.items()]


def _safeguards(after_tasks: list[Section]) -> list[str]:
    """Items of the 保障措施 / 有关要求 section; failing that, of the section after the tasks."""
    chosen = next((s for s in after_tasks if any(w in s.title for w in SAFEGUARD_WORDS)), None)
    chosen = chosen or (after_tasks[0] if after_tasks else None)
    return [unmark(item.text) for item in items(chosen.blocks)] if chosen else []


def _not_found(sections: list[Section], header: list[Block]) -> ProgrammeParseError:
    seen = "; ".join(f"line {s.line} {s.label}、{s.title}" for s in sections[:12]) or "none"
    return ProgrammeParseError(
        "no tasks found: looked for numbered clauses (1. / 1、 / 1．) under a task section "
        f"(for example {' / '.join(TASK_SECTION_WORDS)}), （一） paragraphs, paragraphs naming units; "
        f"level-1 headings seen: {seen}" + _hint(header)
    )


def _hint(all_blocks: list[Block]) -> str:
    if any(ATTACHMENT_RE.match(fold(b)) for b in all_blocks):
        return " (the tasks may be in an annex that is not in this text)"
    if any("印发给你们" in b or "印发你们" in b for b in all_blocks):
        return " (this looks like a cover notice alone: the plan it sends is not in this text)"
    return ""


def parse_document(text: str) -> ParsedDocument:
    """Parse an implementation document. Raises ProgrammeParseError when there are no tasks."""
    text, traditional = simplified(text)
    text_lines = text.replace("\ufeff", "").splitlines()
    all_blocks = blocks(text)
    if not all_blocks:
        raise ProgrammeParseError("the text is empty")
    body, annex, issued_on = _split_closing(all_blocks)
    header, sections = sections_of(body)
    document_no, title, header_date = _header(header)
    found: Layout = layout(sections, header, title)
    if not found.groups:
        raise _not_found(sections, all_blocks)

    rule_line = next((b.line for b in header if FIRST_LEADS_RE.search(b)), None)
    first_leads = rule_line is not None
    standing: dict[str, int] = {}  # unit -> line of the 以下均需…落实 statement that names it
    task_groups, sources = [], []
    for g in found.groups:
        tasks = []
        for c in g.clauses:
            named: list[NamedResponsibility] = []
            readings: list[NoteReading] = []
            unit_lines: dict[str, int] = {}
            for note in c.notes:
                reading = read_note(note, first_leads)
                at = _line_with(text_lines, c.line, re.split(r"[，,；;。]", note, maxsplit=1)[0][:12])
                unit_lines.update({r.unit: at for r in reading.named if r.unit not in unit_lines})
                readings.append(reading)
                first_leads = first_leads or reading.carry
                if reading.states_rule and rule_line is None:
                    rule_line = c.line
                named += [r for r in reading.named if all(r.unit != n.unit for n in named)]
                standing.update(
                    {n: _line_with(text_lines, c.line, "以下", n) for n in reading.standing if n not in standing}
                )
            by_statement = tuple(n for n in standing if all(r.unit != n for r in named))
            named += [NamedResponsibility(unit=n, role=Role.RESPONSIBLE) for n in by_statement]
            title_ = c.title if c.title is not None else strip_stop(first_sentence(c.body))
            tasks.append(Task(no=c.no, title=title_, text=c.body, responsibilities=named))
            rules = [r.rule for r in readings]
            rule = EXPLICIT if EXPLICIT in rules else (FIRST_LEADS_STATED if FIRST_LEADS_STATED in rules else "")
            sources.append(
                TaskSource(
                    no=c.no,
                    label=c.label,
                    line=c.line,
                    note_lines=tuple(c.note_lines),
                    rule=rule or (rules[0] if rules else ""),
                    open_ended=tuple(n for r in readings for n in r.open_ended),
                    not_understood=tuple(n for r in readings for n in r.not_understood),
                    in_charge=tuple(c.in_charge),
                    guiding=tuple(dict.fromkeys(n for r in readings for n in r.guiding)),
                    standing=by_statement,
                    unit_lines=tuple(unit_lines.items()),
                    standing_line=standing[by_statement[0]] if by_statement else None,
                )
            )
        task_groups.append(TaskGroup(no=g.no, title=g.title, tasks=tasks))

    first_task = sections.index(found.sections[0]) if found.sections and found.sections[0] in sections else 0
    last_task = sections.index(found.sections[-1]) if found.sections and found.sections[-1] in sections else -1
    programme = Programme(
        document_no=document_no,
        title=title,
        issued_on=issued_on or header_date,
        goals=_goals(sections[:first_task]),
        groups=task_groups,
        safeguards=_safeguards(sections[last_task + 1 :]),
    )
    kept = {n for n, _ in content_lines(text)}  # no page furniture; tabs kept: they are table cells
    raw = enumerate(text.replace("\ufeff", "").splitlines(), 1)
    annex_lines = [(n, line.rstrip()) for n, line in raw if annex and n >= annex[0].line and n in kept]
    if annex_lines:
        programme, sources, annex_skipped = _with_annex_table(programme, sources, annex_lines, first_leads)
    skipped = list(found.skipped) + (annex_skipped if annex_lines else [])
    skipped += [
        f"line {s.line}: a note part that names no unit in a known form: {p}" for s in sources for p in s.not_understood
    ]
    skipped += [
        f"line {s.line}: {s.label} names units that guide (指导), which is no role of a division: "
        f"{'、'.join(s.guiding)}"
        for s in sources
        if s.guiding
    ]
    return ParsedDocument(
        programme=programme,
        sources=sources,
        annex=annex_lines,
        annex_line=annex[0].line if annex else None,
        first_leads_line=rule_line,
        skipped=skipped,
        notices=[TRADITIONAL_NOTICE] if traditional else [],
        lines=text.replace("\ufeff", "").splitlines(),
    )


def _with_annex_table(
    programme: Programme, sources: list[TaskSource], lines: list[tuple[int, str]], first_leads: bool
) -> tuple[Programme, list[TaskSource], list[str]]:
    """The annexed division table joined to the work items: it gives the units of every item
    whose clause names none; where a clause's note names units too, the note is kept."""
    tasks = programme.tasks()
    table = join_table(lines, [(t.no, src.label, t.title) for t, src in zip(tasks, sources, strict=True)], first_leads)
    skipped = list(table.unjoined)
    if table.header_line is None:
        return programme, sources, [f"line {lines[0][0]}: an annex with no division table (no 牵头单位 column)"]
    new_sources = []
    for src in sources:
        row = table.rows_by_task.get(src.no)
        task = next(t for t in tasks if t.no == src.no)
        if row is not None and task.responsibilities:
            skipped.append(
                f"line {row.line}: table row {row.no} repeats task {src.label}, which names its units itself"
            )
        elif row is not None:
            src = replace(
                src,
                note_lines=(row.line,),
                rule=EXPLICIT if row.lead else src.rule,
                open_ended=tuple(table.open_ended.get(src.no, [])),
            )
        new_sources.append(src)
    groups = [
        g.model_copy(
            update={
                "tasks": [
                    t
                    if t.responsibilities or t.no not in table.by_task
                    else t.model_copy(update={"responsibilities": table.by_task[t.no]})
                    for t in g.tasks
                ]
            }
        )
        for g in programme.groups
    ]
    return programme.model_copy(update={"groups": groups}), new_sources, skipped


def _line_with(lines: list[str], start: int, *words: str) -> int:
    """The first line from `start` on that holds all the words; `start` if none does."""
    return next((n for n in range(start, len(lines) + 1) if all(w in lines[n - 1] for w in words)), start)


def parse_programme(text: str) -> Programme:
    """Parse an implementation plan. Raises ProgrammeParseError when there are no tasks."""
    return parse_document(text).programme
