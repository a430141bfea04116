"""The dashboard's indicators page (per indicator and year the city-wide value against its target and
the goal) and the export buttons' routes.

The sign-in cookie is sent to /dashboard only, so each view's button asks /dashboard/export/<view>,
which answers with the API's own file for the same filters (services/progress/exports.py).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from contracts.base import Stage
from services.progress import api, exports, outcomes
from services.progress.dashboard import PROGRAMME_RE, _frame, gate, render
from services.progress.templating import OVERDUE_CHOICES

router = APIRouter()


@router.get("/dashboard/indicators", include_in_schema=False)
async def indicators_page(request: Request) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    ctx = await _frame(request, who)
    prog, notes = ctx["programme"], ctx["notes"]
    answer, export = None, None
    if prog:
        raw = request.query_params.get("as_of") or None
        try:
            moment = outcomes.as_of_time(raw)
        except HTTPException:
            notes.append(f"已忽略无效的日期：{raw}")
            moment, raw = None, None
        try:
            answer = await outcomes.indicators_of(request.app.state.engine, prog.programme_id, moment, None, None)
        except HTTPException:
            notes.append("本方案尚无指标数据（任务读模型中还没有该方案的导入记录）。")
        export = "/dashboard/export/indicators?" + urlencode({"programme_id": prog.programme_id, "as_of": raw or ""})
    return render(request, "indicators.html", **ctx, page="indicators", answer=answer, export=export)


def _kind(request: Request) -> exports.FileKind:
    return "csv" if request.query_params.get("format") == "csv" else "xlsx"


def _refused(request: Request, detail: str) -> Response:
    return render(request, "error.html", status=422, title="无法导出", message=detail)


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
            return await api.status(
                request, caller=who, programme_id=programme_id, unit_id=qp.get("unit_id") or None, task_no=None,
                group=group, stage=stage, overdue=overdue, limit=1, offset=0, format=_kind(request),  # type: ignore[arg-type]
            )  # fmt: skip
        if view == "summary":
            return await api.status_summary(  # type: ignore[no-any-return]
                request, caller=who, by="unit", programme_id=programme_id, unit_id=None, format=_kind(request)
            )
        if view == "scores":
            year = int(qp.get("year", ""))
            return await outcomes.scores(request, programme_id, year, who, None, None, _kind(request))
        if view == "indicators":
            return await outcomes.indicators(
                request, programme_id, who, qp.get("as_of") or None, None, None, _kind(request)
            )
    except ValueError as exc:
        return _refused(request, f"导出参数无效：{exc}")
    return _refused(request, f"没有名为 {view} 的视图可导出（status、summary、scores、indicators）")
