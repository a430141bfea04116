"""The dashboard's indicators page: per indicator and year the city-wide value against its target and
the goal, each unit's value and its own target; with the view's export buttons."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from services.progress import outcomes
from services.progress.dashboard import _frame, gate, render

router = APIRouter()


@router.get("/dashboard/indicators", include_in_schema=False)
async def indicators_page(request: Request) -> Response:
    who = gate(request)
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
        export = f"/v1/programmes/{prog.programme_id}/indicators?" + urlencode({"as_of": raw or ""})
    return render(request, "indicators.html", **ctx, page="indicators", answer=answer, export=export)
