"""An annexed division table (任务分工表 / 工作任务清单 / 重点任务分解表) read as the division of work.

Copied out of a PDF or a word processor, a table arrives one row a line, its cells separated
by tabs (pasted from Word), `|` / `｜` or box-drawing bars (`│` `┃` `║`) or runs of spaces; rule
lines drawn between rows (`├──┼──┤`, `+---+`, `|---|`) are not rows. A long cell may wrap onto
a line of its own (a line with an empty number cell continues the row above). The header row
names the columns: 序号, the task, its content, 牵头单位, 配合单位 / 责任单位, a time limit.
Rows are joined to the body's work items by the document's own label (`3`, `（二）3`), failing
that by the task's title. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contracts.catalog import NamedResponsibility
from services.assignment.division_notes import read_note
from services.assignment.policy_lines import fold

_CELL_SPLIT_RE = re.compile(r"\t|\s*[|｜│┃║¦]\s*|[ \u3000]{2,}")
_RULE_LINE_RE = re.compile(r"^[\s\-—–─━═┄┅┈┉╌╍+|｜│┃║¦:：┌┐└┘├┤┬┴┼┏┓┗┛┣┫┳┻╋╔╗╚╝╠╣╦╩╬]*$")
_COLUMNS = {
    "no": ("序号", "编号"),
    "lead": ("牵头单位", "牵头部门", "牵头"),
    "cooperating": ("配合单位", "配合部门", "协办单位", "参与单位"),
    "responsible": ("责任单位", "责任部门", "主办单位"),
    "task": ("重点任务", "工作任务", "主要任务", "任务", "事项", "工作内容", "内容", "具体措施", "措施"),
}


@dataclass
class TableRow:
    line: int
    no: str
    task: str
    lead: str = ""
    cooperating: str = ""
    responsible: str = ""


@dataclass
class AnnexDivision:
    """The table's rows joined to work items: task number -> units, and what did not join."""

    header_line: int | None = None
    by_task: dict[int, list[NamedResponsibility]] = field(default_factory=dict)
    rows_by_task: dict[int, TableRow] = field(default_factory=dict)
    open_ended: dict[int, list[str]] = field(default_factory=dict)
    unjoined: list[str] = field(default_factory=list)


_BARS = "|｜│┃║¦"


def _cells(line: str, bordered: bool) -> list[str]:
    # Leading tabs are empty cells (a wrapped row), so only spaces are trimmed; so are the outer
    # bars of a table drawn with borders (│ a │ b │), but not the bar after an empty first cell.
    line = line.strip(" \u3000\r\n")
    if bordered:
        line = line[1:] if line[:1] in _BARS else line
        line = line[:-1] if line[-1:] in _BARS else line
    return [c.strip() for c in _CELL_SPLIT_RE.split(line)]


def _column_of(cell: str) -> str | None:
    for column, words in _COLUMNS.items():
        if any(cell.startswith(w) or cell == w for w in words):
            return column
    return None


def _cell(header: dict[str, int], cells: list[str], column: str) -> str:
    i = header.get(column)
    return cells[i] if i is not None and i < len(cells) else ""


def read_table(lines: list[tuple[int, str]]) -> tuple[int | None, list[TableRow]]:
    """The header line and the rows of the first table in the annex lines; (None, []) if none."""
    header: dict[str, int] = {}
    header_line = None
    rows: list[TableRow] = []
    bordered = False
    for no, line in lines:
        if _RULE_LINE_RE.match(line):
            continue
        if header_line is None:
            bordered = line.strip(" \u3000")[:1] in _BARS
        cells = _cells(line, bordered)
        if header_line is None:
            found = {_column_of(c): i for i, c in enumerate(cells)}
            found.pop(None, None)
            if "lead" in found and len(cells) >= 3:
                header = {str(k): v for k, v in found.items() if k}
                header_line = no
            continue

        if len(cells) < 2:
            if rows and line.strip():  # a wrapped cell: most often the long task text
                rows[-1].task += line.strip()
            continue
        number = _cell(header, cells, "no")
        if rows and not number and "no" in header:
            previous = rows[-1]
            previous.task += _cell(header, cells, "task")
            previous.lead = _more(previous.lead, _cell(header, cells, "lead"))
            previous.cooperating = _more(previous.cooperating, _cell(header, cells, "cooperating"))
            previous.responsible = _more(previous.responsible, _cell(header, cells, "responsible"))
            continue
        row = TableRow(no, number, _cell(header, cells, "task"), _cell(header, cells, "lead"))
        row.cooperating = _cell(header, cells, "cooperating")
        row.responsible = _cell(header, cells, "responsible")
        rows.append(row)
    return header_line, rows


def _more(names: str, wrapped: str) -> str:
    """A list of names continued on the next line of the table."""
    if not wrapped:
        return names
    return f"{names}、{wrapped}" if names and names[-1] not in "、，,；;" else names + wrapped


def _same(a: str, b: str) -> bool:
    a, b = fold(a).strip("。 "), fold(b).strip("。 ")
    return bool(a and b) and (a == b or a.startswith(b) or b.startswith(a))


def join_table(lines: list[tuple[int, str]], tasks: list[tuple[int, str, str]], first_leads: bool) -> AnnexDivision:
    """Join the annex table to the work items, given as (task number, label, title)."""
    header_line, rows = read_table(lines)
    out = AnnexDivision(header_line=header_line)
    by_label = {fold(label): no for no, label, _ in tasks}
    for row in rows:
        task_no = by_label.get(fold(row.no).strip("、. "))
        if task_no is None:
            task_no = next((no for no, _, title in tasks if _same(row.task, title)), None)
        if task_no is None or task_no in out.by_task:
            what = "no work item in the text has that number or title" if task_no is None else "a second row for it"
            out.unjoined.append(f"line {row.line}: table row {row.no or '?'} {row.task[:30]}: {what}")
            continue
        parts = [
            f"{label}：{cells}"
            for label, cells in (("牵头单位", row.lead), ("配合单位", row.cooperating), ("责任单位", row.responsible))
            if cells
        ]
        reading = read_note("；".join(parts), first_leads)
        out.by_task[task_no] = reading.named
        out.rows_by_task[task_no] = row
        if reading.open_ended:
            out.open_ended[task_no] = reading.open_ended
    return out
