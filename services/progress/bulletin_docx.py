"""The bulletin as a .docx (python-docx), written from the same `Bulletin` as the PDF's page, in the
same order and words; each chart is a picture of the same SVG (drawn by WeasyPrint, rasterised by
PDFium), so the Word file shows what the PDF and the dashboard show.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor
from markupsafe import Markup

from contracts import labels
from services.progress.bulletin import Bulletin, pdf_bytes
from services.progress.charts import rate_text
from services.progress.dashboard_queries import OVERDUE_LABELS, group_label

FONT = "Microsoft YaHei"  # the east-Asian font Word is asked for (Word substitutes one it has)


def chart_png(svg: Markup, scale: float = 2.0) -> tuple[bytes, float]:
    """The SVG as a PNG (and its width in points): a one-page PDF of the chart, rendered by PDFium."""
    import pypdfium2 as pdfium

    found = re.search(r'width="(\d+)" height="(\d+)"', svg)
    width, height = (int(found.group(1)), int(found.group(2))) if found else (660, 300)
    html = f"<style>@page {{ size:{width}px {height}px; margin:0 }} body {{ margin:0 }}</style>{svg}"
    page = pdfium.PdfDocument(pdf_bytes(html))[0]
    out = io.BytesIO()
    page.render(scale=scale * 96 / 72).to_pil().save(out, format="PNG")
    return out.getvalue(), width * 0.75


def _table(doc: object, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = doc.add_table(rows=1, cols=len(headers))  # type: ignore[attr-defined]
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, headers, strict=True):
        cell.text = text
        for run in cell.paragraphs[0].runs:
            run.bold = True
    for row in rows:
        cells = table.add_row().cells
        for cell, value in zip(cells, row, strict=True):
            cell.text = "" if value is None else str(value)


def _picture(doc: object, svg: Markup) -> None:
    png, width = chart_png(svg)
    doc.add_picture(io.BytesIO(png), width=Pt(min(width, 460)))  # type: ignore[attr-defined]


def docx_bytes(b: Bulletin) -> bytes:
    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(10.5)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), FONT)
    head = doc.add_paragraph()
    head.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = head.add_run("督查通报")
    run.bold, run.font.size, run.font.color.rgb = True, Pt(26), RGBColor(0xB7, 0x1C, 0x1C)
    doc.add_heading(f"{b.document_no} {b.title}".strip(), level=1)
    f = b.figures
    as_of = f.as_of.astimezone(b.period.closing().tzinfo).strftime("%Y-%m-%d %H:%M")
    doc.add_paragraph(f"{b.period.label}（{b.period.start} 至 {b.period.end}）· 数据截至 {as_of}{b.scope}")

    d = f.deadlines
    doc.add_heading(f"{b.number('summary')}、本期总体情况", level=2)
    doc.add_paragraph(
        f"在办任务 {f.assignments} 项，已签收 {f.accepted} 项。本期到期应办事项 {d.decided + d.pending} 项：按期办理 "
        f"{d.on_time} 项，逾期办理 {d.late} 项，逾期未办 {d.missed} 项，尚未到期 {d.pending} 项，按期办理率 "
        f"{rate_text(d.rate)}。本期发出蓝色督办 {f.escalations['blue']} 次、黄色督办 {f.escalations['yellow']} 次、"
        f"红色督办 {f.escalations['red']} 次；核验通过 {f.verifications_passed} 项，"
        f"未通过 {f.verifications_failed} 项。"
        f"截至统计时点，逾期未办事项共 {len(f.overdue)} 项。"
    )
    _picture(doc, b.charts["months"])

    doc.add_heading(f"{b.number('groups')}、各任务组进展", level=2)
    _picture(doc, b.charts["groups"])
    _table(doc, ["任务组", "任务", "已签收", "按期办理", "逾期办理", "逾期未办", "未到期", "按期率", "蓝/黄/红督办"], [
        [(group_label(g.group_no) if g.group_no is not None else "") + g.title, g.assignments, g.accepted,
         g.deadlines.on_time, g.deadlines.late, g.deadlines.missed, g.deadlines.pending, rate_text(g.deadlines.rate),
         f"{g.escalations['blue']} / {g.escalations['yellow']} / {g.escalations['red']}"]
        for g in f.groups
    ])  # fmt: skip

    doc.add_heading(f"{b.number('escalated')}、红色、黄色督办单位", level=2)
    if f.escalated_units:
        _table(doc, ["单位", "红色督办", "黄色督办", "蓝色督办", "涉及任务"], [
            [b.name(u.unit_id), u.escalations["red"], u.escalations["yellow"], u.escalations["blue"],
             "、".join(str(t) for t in u.tasks)]
            for u in f.escalated_units
        ])  # fmt: skip
    else:
        doc.add_paragraph("本期没有单位被红色或黄色督办。")

    doc.add_heading(f"{b.number('scores')}、考核得分（{b.period.year} 年度）", level=2)
    if b.scores is None:
        doc.add_paragraph("本年度暂无考核得分。")
    for heading, rows in (("得分较高的单位", b.best), ("得分较低的单位", b.lowest)):
        if rows:
            doc.add_heading(heading, level=3)
            _table(doc, ["排名", "单位", "总分", "各项得分"], [
                [s.rank, b.name(s.unit_id), f"{s.total:.2f}",
                 "；".join(f"{c.label} {c.points:g}/{c.weight:g}" for c in s.components)]
                for s in rows
            ])  # fmt: skip

    if b.evaluation is not None:
        doc.add_heading(f"{b.number('evaluation')}、五年评估（{b.evaluation.year} 年）", level=2)
        doc.add_paragraph(b.evaluation_summary())
        _table(doc, ["单位", "任务", "自评", "自评摘要", "核验评分"], [
            [r.unit if r.span else "", r.task, r.self_evaluation, r.excerpt, r.scores] for r in b.evaluation_rows()
        ])  # fmt: skip

    doc.add_heading(f"{b.number('indicators')}、指标进展（{b.period.year} 年）", level=2)
    if b.indicator_note:
        doc.add_paragraph(b.indicator_note)
    if b.indicators:
        _picture(doc, b.charts["indicators"])
        _table(doc, ["指标", "全市", "年度目标", "达标", "目标进度", "已填报单位"], [
            [f"{ind.name}（{ind.measure}，{ind.goal_year} 年目标 {ind.goal:g}）",
             "—" if y is None or y.value is None else f"{y.value:g}",
             "—" if y is None or y.target is None else f"{y.target:g}",
             "—" if y is None or y.met is None else ("是" if y.met else "否"),
             "—" if y is None or y.progress is None else f"{y.progress:g}%",
             "—" if y is None else f"{y.units_reporting} / {y.units_total}"]
            for ind, y in b.indicators
        ])  # fmt: skip
    else:
        doc.add_paragraph("本方案未声明指标。")

    doc.add_heading(f"{b.number('overdue')}、逾期事项清单", level=2)
    if f.overdue:
        _table(doc, ["#", "单位", "任务", "事项", "应办日期", "逾期", "督办"], [
            [i, b.name(o.unit_id), b.task(o.task_no), labels.DEADLINE_KINDS[o.kind][0], o.due.isoformat(),
             f"{o.days_overdue} 天", OVERDUE_LABELS[o.level]]
            for i, o in enumerate(f.overdue, 1)
        ])  # fmt: skip
    else:
        doc.add_paragraph("截至统计时点没有逾期未办事项。")
    doc.add_paragraph(f"policyflow 依据事件记录生成；数据截至 {as_of}，此后的事件不计入。")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
