"""Views as files: .xlsx (Chinese headers, frozen header row, column widths, dates as dates) and
.csv (UTF-8 with a BOM, so that Excel reads the Chinese right), one sheet per view.

A view asks for a file with `?format=xlsx|csv` or an `Accept` header naming one; the file holds the
whole result of the caller's filters and scope, never one page.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import Request, Response
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import labels
from contracts.figures import SHANGHAI, IndicatorsAnswer
from contracts.scores import COMPONENT_LABELS, ScoresAnswer
from services.progress import dashboard_sources, readmodel
from services.progress.store import URGENCY

Format = Literal["json", "xlsx", "csv"]
FileKind = Literal["xlsx", "csv"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA = {"xlsx": XLSX_TYPE, "csv": "text/csv; charset=utf-8"}
Names = dict[str, dict[str, str]]


@dataclass(frozen=True)
class Column:
    header: str
    width: int = 12


@dataclass
class Sheet:
    title: str  # at most 31 characters (Excel's limit)
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)


def wanted(request: Request, format: Format | None) -> FileKind | None:
    """The file the caller asks for: `?format=` first, else the `Accept` header; None for JSON."""
    if format is not None:
        return None if format == "json" else format
    accept = request.headers.get("accept", "").lower()
    if XLSX_TYPE in accept:
        return "xlsx"
    if "text/csv" in accept:
        return "csv"
    return None


async def names(request: Request) -> Names:
    """Unit names from the assignment service's registry ({} when it cannot be reached: ids stand in)."""
    return await dashboard_sources.unit_names(request)


def respond(kind: FileKind, stem: str, sheet: Sheet) -> Response:
    body = xlsx_bytes([sheet]) if kind == "xlsx" else csv_bytes(sheet)
    headers = {"Content-Disposition": f'attachment; filename="{stem}.{kind}"'}
    return Response(body, media_type=MEDIA[kind], headers=headers)


def _cell(value: Any) -> Any:
    """openpyxl keeps no time zone: a moment is written as Shanghai time (the calendar's)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(SHANGHAI).replace(tzinfo=None)
    return value


def xlsx_bytes(sheets: Sequence[Sheet]) -> bytes:
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]  # the default sheet: each view brings its own
    bold = Font(bold=True)
    for sheet in sheets:
        ws = book.create_sheet(sheet.title[:31])
        ws.append([c.header for c in sheet.columns])
        for cell in ws[1]:
            cell.font = bold
        for row in sheet.rows:
            ws.append([_cell(v) for v in row])
        for i, col in enumerate(sheet.columns, 1):
            ws.column_dimensions[get_column_letter(i)].width = col.width
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                if isinstance(cell.value, dt.datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm"
                elif isinstance(cell.value, dt.date):
                    cell.number_format = "yyyy-mm-dd"
        ws.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return str(_cell(value).isoformat(sep=" ", timespec="minutes"))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def csv_bytes(sheet: Sheet) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header for c in sheet.columns])
    for row in sheet.rows:
        writer.writerow([_text(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _name(names: Names, unit_id: str) -> str:
    return names.get(unit_id, {}).get("name", unit_id)


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("是" if value else "否")


STATUS_COLUMNS = [
    Column("任务编号", 32), Column("方案", 12), Column("任务序号", 8), Column("任务名称", 36), Column("单位编号", 14),
    Column("单位名称", 18), Column("角色", 8), Column("阶段", 14), Column("年度", 8), Column("督办等级", 12),
    Column("下一期限", 12), Column("期限事项", 14), Column("进度（%）", 10),
]  # fmt: skip


async def status_items(engine: AsyncEngine, f: readmodel.StatusFilter) -> list[dict[str, Any]]:
    """Every row the filter matches (not a page), most urgent first: /v1/status's items, all of them."""
    q = select(*readmodel.SUMMARY_COLUMNS).where(*readmodel.where(f)).order_by(*URGENCY)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    items = []
    for r in rows:
        item = dict(zip(readmodel.SUMMARY_FIELDS, r, strict=True))
        item["next_deadline"] = json.loads(r.next_deadline) if r.next_deadline else None
        items.append(item)
    return items


def status_sheet(items: Sequence[dict[str, Any]], names: Names) -> Sheet:
    """Rows of /v1/status's items (AssignmentSummary as JSON), in its order."""
    rows = []
    for it in items:
        nxt = it.get("next_deadline")
        rows.append([
            it["assignment_id"], it["programme_id"], it["task_no"], it["task_title"], it["unit_id"],
            _name(names, it["unit_id"]), labels.ROLES[it["role"]][0], labels.STAGES[it["stage"]][0], it["year"],
            labels.LEVELS[it["overdue_level"]][0], dt.date.fromisoformat(nxt["due"]) if nxt else None,
            labels.DEADLINE_KINDS[nxt["kind"]][0] if nxt else None, it["percent"],
        ])  # fmt: skip
    return Sheet("任务状态", STATUS_COLUMNS, rows)


SUMMARY_KEYS = {"unit": "单位", "task": "任务序号", "group": "任务组", "year": "年度", "role": "角色"}


def summary_sheet(by: str, items: Sequence[dict[str, Any]], names: Names) -> Sheet:
    """Rows of /v1/status/summary's items, in its order."""
    columns = [Column(SUMMARY_KEYS[by], 14)]
    if by == "unit":
        columns.append(Column("单位名称", 18))
    columns += [Column(h, 10) for h in ("任务数", "已办结", "已撤销", "未签收", "蓝色督办", "黄色督办", "红色督办")]
    columns.append(Column("按期率（%）", 12))
    rows = []
    for it in items:
        key = labels.ROLES[it["key"]][0] if by == "role" and it["key"] in labels.ROLES else it["key"]
        row: list[Any] = [key] + ([_name(names, str(it["key"]))] if by == "unit" else [])
        o, rate = it["overdue"], it["on_time_rate"]
        row += [it["total"], it["completed"], it["cancelled"], it["not_started"], o["blue"], o["yellow"], o["red"]]
        row.append(None if rate is None else round(100 * rate, 2))
        rows.append(row)
    return Sheet(f"汇总（按{SUMMARY_KEYS[by]}）", columns, rows)


INDICATOR_COLUMNS = [
    Column("指标编号", 22), Column("指标名称", 30), Column("计量单位", 10), Column("汇总方式", 18), Column("年度", 8),
    Column("单位编号", 14), Column("单位名称", 18), Column("数值", 10), Column("目标", 10), Column("是否达标", 10),
    Column("目标进度（%）", 14), Column("填报期", 10), Column("填报时间", 18),
]  # fmt: skip
CITY = "全市"


def indicators_sheet(answer: IndicatorsAnswer, names: Names, city_rows: bool = True) -> Sheet:
    """Per indicator and year a 全市 row (unless the caller is scoped to a unit), then a row per unit."""
    rows: list[list[Any]] = []
    for ind in answer.indicators:
        head: list[Any] = [ind.id, ind.name, ind.measure, ind.aggregation_words]
        for y in ind.years:
            if city_rows:
                rows.append([*head, y.year, None, CITY, y.value, y.target, _yes_no(y.met), y.progress, None, None])
            for u in y.units:
                rows.append([
                    *head, y.year, u.unit_id, _name(names, u.unit_id), u.value, u.target, _yes_no(u.met), None,
                    u.period, u.reported_at,
                ])  # fmt: skip
    return Sheet("指标", INDICATOR_COLUMNS, rows)


def scores_sheet(answer: ScoresAnswer, names: Names) -> Sheet:
    columns = [Column("排名", 6), Column("单位编号", 14), Column("单位名称", 18), Column("总分", 8),
               Column("已签收", 8), Column("任务数", 8)]  # fmt: skip
    for label in COMPONENT_LABELS.values():
        columns += [Column(f"{label}（得分）", 12), Column(f"{label}（说明）", 30)]
    rows = []
    for u in answer.units:
        row: list[Any] = [
            u.rank,
            u.unit_id,
            _name(names, u.unit_id),
            u.total,
            "是" if u.started else "否",
            u.assignments,
        ]
        by_key = {c.key: c for c in u.components}
        for key in COMPONENT_LABELS:
            c = by_key[key]
            row += [c.points, c.detail]
        rows.append(row)
    return Sheet(f"考核得分 {answer.year}", columns, rows)
