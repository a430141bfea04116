"""The supervisors' web dashboard: server-rendered HTML (Jinja2, autoescaped), no build step.

Pages (a supervisor's session cookie, or `Authorization: Bearer`):
  /dashboard                         programme overview: the year's progress by task group and by month
                                     (the bulletin's charts), then a traffic light per assignment and task
  /dashboard/units                   per-unit ranking (sortable) with an inline SVG bar chart
  /dashboard/assignments/{id}        drill-down: timeline, plan, latest report, Temporal UI link
  /dashboard/login                   sign-in (services/progress/signin.py), shared with the workbench

Assignment rows, counts and rates come from the progress service's own read model
(dashboard_queries); titles, unit names and timelines from the other services or the stream,
each with a fallback (dashboard_sources). Bad query parameters are ignored with a note on the
page, never a 500.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from contracts.base import Stage, UserRole
from contracts.ids import PROGRAMME_ID_PATTERN, parse_assignment_id, workflow_id
from services.progress import admin, bulletin, calendars, charts, outcomes
from services.progress import dashboard_queries as q
from services.progress import dashboard_sources as src
from services.progress import session_cookie as cookie
from services.progress.templating import OVERDUE_CHOICES, templates
from services.shared import access, access_log
from services.shared.auth import AuthError, Principal
from workflows.calendar import shanghai_date

log = structlog.get_logger()
router = APIRouter()
router.include_router(admin.router)

COOKIE_PATH = "/dashboard"
UNIT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PROGRAMME_RE = re.compile(PROGRAMME_ID_PATTERN)
# ---- who is asking ---------------------------------------------------------------------------


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    for key, default in (("user", None), ("page", ""), ("notes", []), ("programme", None)):
        context.setdefault(key, default)
    context.setdefault("csrf", getattr(request.state, "csrf", ""))
    return templates.TemplateResponse(request, name, context, status_code=status)


def _refused(request: Request, status: int, detail: str, message: str) -> Response:
    if not wants_html(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    return render(request, "error.html", status, title="无权访问", message=message)


async def gate(request: Request) -> Principal | Response:
    """The supervisor behind the request, or the answer to send instead (sign-in page, 401, 403)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"{COOKIE_PATH}/login?{urlencode({'next': cookie.safe_next(target, COOKIE_PATH)})}"
    try:
        who = await cookie.identify(request)
    except AuthError as exc:
        if wants_html(request):
            return cookie.signed_out(f"{login}&expired=1")
        return _refused(request, 401, str(exc), "")
    if who is None:
        if wants_html(request):
            return RedirectResponse(login, status_code=303)
        return _refused(request, 401, "missing bearer token", "")
    if who.role != UserRole.SUPERVISOR:
        detail = f"只有督查人员可以查看督查看板 (role {who.role.value} may not view the dashboard; needs supervisor)"
        return _refused(request, 403, detail, f"仪表盘仅供督查人员使用；您的角色是 {who.role.value}。")
    return who


# ---- pages -------------------------------------------------------------------------------------


def _pick_programme(progs: list[q.ProgrammeRow], wanted: str | None, notes: list[str]) -> q.ProgrammeRow | None:
    if wanted:
        for p in progs:
            if p.programme_id == wanted:
                return p
        notes.append(f"没有方案 {wanted}，已显示最新的方案。")
    return progs[0] if progs else None


def _group_tasks(
    catalogue: list[q.TaskInfo], raw: str | None, notes: list[str]
) -> tuple[int | None, tuple[int, ...] | None]:
    if not raw:
        return None, None
    if not raw.isdigit() or not 1 <= int(raw) <= 99:
        notes.append(f"已忽略无效的任务组筛选：{raw}")
        return None, None
    if not catalogue:
        notes.append("分组信息暂不可用（任务分配服务无法访问），已忽略任务组筛选。")
        return None, None
    group = int(raw)
    return group, tuple(t.task_no for t in catalogue if t.group_no == group)


def _filters(
    request: Request, who: Principal, programme_id: str, tasks: tuple[int, ...] | None, notes: list[str]
) -> q.Filters:
    params = request.query_params
    unit, stage, overdue = params.get("unit_id") or None, params.get("stage") or None, params.get("overdue") or None
    if unit and not UNIT_RE.match(unit):
        notes.append(f"已忽略无效的单位筛选：{unit}")
        unit = None
    if stage and stage not in {s.value for s in Stage}:
        notes.append(f"已忽略无效的阶段筛选：{stage}")
        stage = None
    if overdue and overdue not in OVERDUE_CHOICES:
        notes.append(f"已忽略无效的督办筛选：{overdue}")
        overdue = None
    return q.Filters(programme_id, unit_id=unit, stage=stage, overdue=overdue, tasks=tasks, area=access.area(who))


async def _frame(request: Request, who: Principal) -> dict[str, Any]:
    """What every page needs: the programme picked, notes, names, the catalogue."""
    engine = request.app.state.engine
    notes: list[str] = []
    progs = [p for p in await q.programmes(engine) if who.in_programme(p.programme_id)]
    prog = _pick_programme(progs, request.query_params.get("programme_id"), notes)
    catalogue: list[q.TaskInfo] = []
    units: list[str] = []
    if prog:
        await src.ensure_task_groups(request, prog.programme_id)
        catalogue = await q.task_catalogue(engine, prog.programme_id)
        units = await q.unit_ids(engine, prog.programme_id)
    names = await src.unit_names(request, set(units))
    if units and not names:
        notes.append("单位名称暂不可用（任务分配服务无法访问），以单位编号显示。")
    return {
        "user": who,
        "notes": notes,
        "programmes": progs,
        "programme": prog,
        "names": names,
        "catalogue": catalogue,
        "units": units,
    }


@router.get("/dashboard", include_in_schema=False)
async def overview(request: Request) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    ctx = await _frame(request, who)
    prog, notes = ctx["programme"], ctx["notes"]
    next_year = shanghai_date(dt.datetime.now(dt.UTC)).year + 1
    timeout = src.dashboard_settings(request).remote_timeout
    ctx["calendar_note"] = await calendars.provisional_note(request.app.state.temporal, next_year, timeout)
    if prog is None:
        return render(
            request,
            "overview.html",
            **ctx,
            page="overview",
            groups=[],
            by_task={},
            totals={},
            filters=None,
            group=None,
            listed=[],
            filtered=False,
            charts={},
        )
    group, tasks = _group_tasks(ctx["catalogue"], request.query_params.get("group"), notes)
    f = _filters(request, who, prog.programme_id, tasks, notes)
    engine = request.app.state.engine
    place = src.unit_order(ctx["names"])
    found, records = await q.lights(engine, f)
    items = sorted(found, key=lambda x: place(x.unit_id))
    figures = bulletin.year_so_far(prog.programme_id, records, bulletin.task_groups(ctx["catalogue"]))
    columns = sorted({x.unit_id for x in items}, key=place)
    cells: dict[tuple[int, str], list[q.Light]] = {}
    for x in items:
        cells.setdefault((x.task_no, x.unit_id), []).append(x)
    by_task: dict[int, list[q.Light]] = {}
    totals = dict.fromkeys(q.LIGHT_LABELS, 0)
    for x in items:
        by_task.setdefault(x.task_no, []).append(x)
        totals[x.colour] += 1
    narrowing = bool(f.unit_id or f.stage or f.overdue)
    groups = [g for g in q.groups_of(ctx["catalogue"], items) if group is None or g.no == group]
    if narrowing:
        for g in groups:
            g.tasks = [t for t in g.tasks if t.task_no in by_task]
        groups = [g for g in groups if g.tasks]
    filtered = narrowing or group is not None
    urgent = q.most_urgent(items, 200 if filtered else 50)
    listed = urgent if filtered else [x for x in urgent if x.overdue_level != "none"]
    return render(
        request,
        "overview.html",
        **ctx,
        page="overview",
        groups=groups,
        by_task=by_task,
        totals=totals,
        filters=f,
        group=group,
        listed=listed,
        filtered=filtered,
        status_export=_status_export(f, group),
        columns=columns,
        cells=cells,
        year=figures.period.year,
        charts=bulletin.period_charts(figures, year_in_title=True),
    )


def _status_export(f: q.Filters, group: int | None) -> str:
    """The API's status as a file, with the page's filters: every matching row."""
    wanted = {"programme_id": f.programme_id, "group": group, "unit_id": f.unit_id, "stage": f.stage,
              "overdue": f.overdue}  # fmt: skip
    return "/dashboard/export/status?" + urlencode({k: v for k, v in wanted.items() if v})


@router.get("/dashboard/units", include_in_schema=False)
async def units_page(request: Request) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    ctx = await _frame(request, who)
    prog, notes = ctx["programme"], ctx["notes"]
    engine = request.app.state.engine
    year = _year(request, notes)
    scores = await outcomes.ranking_scores(engine, prog.programme_id, year, access.area(who)) if prog else None
    sort = q.parse_sort(request.query_params.get("sort"), "score" if scores else "on_time")
    if sort is None:
        notes.append(f"已忽略无效的排序方式：{request.query_params.get('sort')}")
        sort = q.parse_sort(None, "score" if scores else "on_time")
    assert sort is not None
    key, descending = sort
    group, tasks = _group_tasks(ctx["catalogue"], request.query_params.get("group"), notes)
    stats: list[q.UnitStats] = []
    by_unit = {u.unit_id: u for u in scores.units} if scores else {}
    if prog:
        stats = await q.unit_stats(engine, q.Filters(prog.programme_id, tasks=tasks, area=access.area(who)))
        for u in stats:
            u.score = by_unit[u.unit_id].total if u.unit_id in by_unit else None
        stats = q.sort_units(stats, key, descending)
    labels = {u: v["name"] for u, v in ctx["names"].items()}
    chart = charts.unit_bars(stats, labels)
    flipped = descending == (key in q.ASCENDING)
    links = {k: (("" if flipped else "-") + k) if k == key else k for k in q.SORTS}
    return render(
        request,
        "units.html",
        **ctx,
        page="units",
        stats=stats,
        chart=chart,
        sort_key=key,
        descending=descending,
        sort_links=links,
        sort_param=("-" if flipped else "") + key,
        group=group,
        scores=scores,
        score_of=by_unit,
        exports={
            "scores": f"/dashboard/export/scores?programme_id={prog.programme_id}&year={scores.year}"
            if prog and scores
            else None,
            "summary": f"/dashboard/export/summary?programme_id={prog.programme_id}" if prog else None,
        },
    )


def _year(request: Request, notes: list[str]) -> int | None:
    raw = request.query_params.get("year")
    if raw and not (raw.isdigit() and 2000 <= int(raw) <= 2100):
        notes.append(f"已忽略无效的年度：{raw}")
        return None
    return int(raw) if raw else None


@router.get("/dashboard/assignments/{assignment_id}", include_in_schema=False)
async def assignment_page(request: Request, assignment_id: str) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    state = None
    if parse_assignment_id(assignment_id) is not None:
        state = await q.assignment_row(request.app.state.engine, assignment_id)
    if state is not None:
        record = access.Record(state.programme_id, state.task_no, state.unit_id)
        decision = access.decide(who, record)
        access_log.note(target=assignment_id, why=decision.why)
        if not decision.allowed:
            return render(request, "error.html", 403, user=who, title="无权查看", message=decision.why)
    if state is None:
        return render(
            request,
            "error.html",
            404,
            user=who,
            title="未找到任务",
            message=f"没有任务 {assignment_id}（若刚刚下达，请稍候刷新）。",
        )
    items, source = await src.timeline(request, state)
    reports = [i for i in items if i.get("type") == "ProgressReported"]
    settings = request.app.state.settings
    ui = src.dashboard_settings(request).temporal_ui_url.rstrip("/")
    wf = workflow_id(state.assignment_id)
    names = await src.unit_names(request, {state.unit_id})
    return render(
        request,
        "assignment.html",
        user=who,
        page="assignment",
        s=state,
        items=items,
        source=source,
        latest_report=reports[-1]["payload"] if reports else None,
        names=names,
        colour=q.light(state.stage.value, state.overdue_level.value),
        deadlines=sorted(state.deadlines.values(), key=lambda d: (d.due, d.key)),
        temporal_url=f"{ui}/namespaces/{settings.temporal_namespace}/workflows/{wf}",
        workflow_id=wf,
    )
