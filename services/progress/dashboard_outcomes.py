"""The dashboard's indicators page (per indicator and year the city-wide value against its target and
the goal, with its chart), the bulletin page (the 督查通报 of a period: the PDF's own template in the
dashboard's frame) and the export and download buttons' routes.

The sign-in cookie is sent to /dashboard only, so each view's button asks /dashboard/export/<view>,
which answers with the API's own file for the same filters (services/progress/exports.py).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from contracts.base import Stage
from services.progress import bulletin, bulletin_files, charts, exports, outcomes, status_routes
from services.progress.dashboard import PROGRAMME_RE, _frame, gate, render
from services.progress.templating import OVERDUE_CHOICES
from services.shared import access

router = APIRouter()


@router.get("/dashboard/indicators", include_in_schema=False)
async def indicators_page(request: Request) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    ctx = await _frame(request, who)
    prog, notes = ctx["programme"], ctx["notes"]
    answer, export, chart = None, None, None
    if prog:
        raw = request.query_params.get("as_of") or None
        try:
            moment = outcomes.as_of_time(raw)
        except HTTPException:
            notes.append(f"已忽略无效的日期：{raw}")
            moment, raw = None, None
        try:
            area = access.area(who)
            answer = await outcomes.indicators_of(request.app.state.engine, prog.programme_id, moment, None, None, area)
        except HTTPException:
            notes.append("本方案尚无指标数据（任务读模型中还没有该方案的导入记录）。")
        if answer is not None and answer.indicators:
            year = max((y.year for i in answer.indicators for y in i.years), default=None)
            if year is not None:
                rows = [(i, next((y for y in i.years if y.year == year), None)) for i in answer.indicators]
                chart = charts.indicator_bars(rows, year)
        export = "/dashboard/export/indicators?" + urlencode({"programme_id": prog.programme_id, "as_of": raw or ""})
    return render(request, "indicators.html", **ctx, page="indicators", answer=answer, export=export, chart=chart)


@router.get("/dashboard/bulletin", include_in_schema=False)
async def bulletin_page(request: Request) -> Response:
    """The period's bulletin as the PDF says it, with the buttons that download it."""
    who = await gate(request)
    if isinstance(who, Response):
        return who
    ctx = await _frame(request, who)
    prog, notes = ctx["programme"], ctx["notes"]
    if prog is None:
        message = "系统中还没有任何任务，无法生成通报。"
        return render(request, "error.html", 404, user=who, title="暂无方案", message=message)
    raw = request.query_params.get("period") or None
    period = None
    if raw:
        try:
            period = bulletin.period_of(raw)
        except HTTPException as exc:
            notes.append(f"已忽略无效的期间：{exc.detail}")
    try:
        b = await bulletin.gather(request, prog.programme_id, period, None, access.area(who))
    except HTTPException:
        return render(request, "error.html", 404, user=who, title="暂无数据",
                      message="本方案尚无通报所需的数据（任务读模型中还没有该方案的导入记录）。")  # fmt: skip
    query = urlencode({"programme_id": prog.programme_id, "period": b.period.text})
    downloads = {kind: f"/dashboard/export/bulletin?{query}&format={kind}" for kind in ("pdf", "docx")}
    frame = {k: v for k, v in ctx.items() if k != "programme"}
    csrf = getattr(request.state, "csrf", "")  # the sign-out form's, as render() gives every page
    html = bulletin.page(b, layout="base.html", request=request, programme=prog, downloads=downloads, csrf=csrf,
                         **frame)  # fmt: skip
    return HTMLResponse(html)


def _kind(request: Request) -> exports.FileKind:
    return "csv" if request.query_params.get("format") == "csv" else "xlsx"


def _refused(request: Request, detail: str, status: int = 422) -> Response:
    return render(request, "error.html", status=status, title="无法导出", message=detail)


@router.get("/dashboard/export/{view}", include_in_schema=False)
async def export(request: Request, view: str) -> Response:
    """The view's file, for the signed-in supervisor, with the filters of the page it was asked from."""
    who = await gate(request)
    if isinstance(who, Response):
        return who
    qp = request.query_params
    programme_id = qp.get("programme_id") or None
    if programme_id is None or not PROGRAMME_RE.match(programme_id):
        return _refused(request, "请从仪表盘页面导出（缺少或无效的方案编号）")
    try:
        if view == "status":
            group = int(qp["group"]) if qp.get("group") else None
            stage = Stage(qp["stage"]) if qp.get("stage") else None
            overdue = qp.get("overdue") or None
            if overdue is not None and overdue not in OVERDUE_CHOICES:
                raise ValueError(overdue)
            return await status_routes.status(
                request, caller=who, programme_id=programme_id, unit_id=qp.get("unit_id") or None, task_no=None,
                group=group, stage=stage, overdue=overdue, limit=1, offset=0, format=_kind(request),  # type: ignore[arg-type]
            )  # fmt: skip
        if view == "summary":
            return await status_routes.status_summary(  # type: ignore[no-any-return]
                request, caller=who, by="unit", programme_id=programme_id, unit_id=None, format=_kind(request)
            )
        if view == "scores":
            year = int(qp.get("year", ""))
            return await outcomes.scores(request, programme_id, year, who, None, None, _kind(request))
        if view == "bulletin":
            fmt: bulletin_files.BulletinKind = "docx" if qp.get("format") == "docx" else "pdf"
            return await bulletin_files.bulletin(request, programme_id, qp.get("period", ""), who, None, fmt)
        if view == "indicators":
            return await outcomes.indicators(
                request, programme_id, who, qp.get("as_of") or None, None, None, _kind(request)
            )
    except ValueError as exc:
        return _refused(request, f"导出参数无效：{exc}")
    except HTTPException as exc:
        return _refused(request, str(exc.detail), exc.status_code)
    return _refused(request, f"没有名为 {view} 的视图可导出（status、summary、scores、indicators、bulletin）")
