"""The unit workbench (工作台): server-rendered pages where departments and districts do their work.

Pages (any role: the session cookie of services/progress/signin.py, or `Authorization: Bearer`):
  /workbench                                 the caller's queue, most urgent first, in words
  /workbench/assignments/{id}                one assignment: what to do now (forms), plan, reports,
                                             findings, evidence, timeline
  /workbench/assignments/{id}/{command}      POST: a form of the command table's row `command`
  /workbench/lead/{programme_id}/{task_no}   a lead unit's task: every assignment of it, the summary

A form is read by services/progress/workbench_forms.py and sent through the same endpoint as the
API's command (api.CommandEndpoint), so the page, the CLI and the API decide alike. A refused form
is shown again with what was typed and the reason beside the field.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from contracts import labels
from contracts.base import Role, Stage, UserRole
from contracts.command_table import BY_NAME
from contracts.fold import AssignmentState
from contracts.ids import parse_assignment_id
from services.progress import api, lead, outcomes, workbench_evidence
from services.progress import dashboard_queries as q
from services.progress import dashboard_sources as src
from services.progress import workbench_forms as forms
from services.progress.programme_calendar import read_calendar
from services.progress.readmodel import StatusFilter, status_rows
from services.progress.session_cookie import CSRF_REFUSED, check_csrf
from services.progress.workbench_signin import gate, refused, render
from services.shared.access import Record, area, decide
from services.shared.auth import Principal
from services.shared.temporal import query_status

log = structlog.get_logger()
router = APIRouter(include_in_schema=False)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
CLOSED = (Stage.COMPLETED, Stage.CANCELLED)
DONE = {
    "accept": "已签收。下一步：编制并提交年度计划。",
    "submit_plan": "年度计划已提交，等待督查人员审核。",
    "review_plan": "审核意见已提交。",
    "report_progress": "进展已填报。",
    "request_verification": "已申请核验，等待核验结论。",
    "verify": "核验结论已提交。",
    "submit_summary": "年度汇总已提交，督查人员可以看到。",
    "submit_self_evaluation": "自评已提交，核验人员评分时可以看到；评估结束前可再次提交以更新。",
    "cancel": "任务已撤销。",
    "request_extension": "延期申请已提交，等待督查人员审批。",
    "decide_extension": "延期审批意见已提交。",
}


def today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


# ---- the queue ---------------------------------------------------------------------------------


def due_words(due: dt.date | None, now: dt.date) -> str:
    if due is None:
        return ""
    days = (due - now).days
    if days > 0:
        return f"还有 {days} 天"
    return "今天到期" if days == 0 else f"已逾期 {-days} 天"


async def _rows(request: Request, f: StatusFilter, limit: int = 500) -> list[dict[str, Any]]:
    """Summary rows as the queue's cards read them (the next deadline with its date as a date)."""
    rows, _ = await status_rows(request.app.state.engine, f, limit, 0)
    cards = []
    for r in rows:
        card = dict(r._mapping)
        nd = json.loads(r.next_deadline) if r.next_deadline else None
        if nd is not None:
            nd["due_date"] = dt.date.fromisoformat(nd["due"])
        card["next_deadline_obj"] = nd
        cards.append(card)
    return cards


@router.get("/workbench")
async def inbox(request: Request) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    sections: list[tuple[str, str, list[Any]]] = []
    led: list[tuple[str, int]] = []
    if who.role == UserRole.DEPARTMENT and who.unit_id:
        rows = await _rows(request, StatusFilter(unit_id=who.unit_id, area=area(who)))
        open_rows = [r for r in rows if r["stage"] not in {s.value for s in CLOSED}]
        sections.append(("todo", "我的任务（最紧急的在前）", open_rows))
        sections.append(("closed", "已办结 / 已撤销", [r for r in rows if r not in open_rows]))
        led = await lead.led_tasks(request.app.state.engine, who.unit_id)
    else:
        mine = area(who)
        if who.role == UserRole.SUPERVISOR:
            plans = await _rows(request, StatusFilter(stage=Stage.PLAN_SUBMITTED, area=mine))
            sections.append(("review", "待审核的年度计划", plans))
        if who.role in (UserRole.SUPERVISOR, UserRole.VERIFIER):
            sections.append(("verify", "待核验", await _rows(request, StatusFilter(stage=Stage.VERIFYING, area=mine))))
        sections.append(("overdue", "督办中的任务", await _rows(request, StatusFilter(overdue="any", area=mine), 200)))
    names = await src.unit_names(request)
    return render(request, "inbox.html", user=who, sections=sections, led=led, names=names, now=today(),
                  due_words=due_words, light=q.light)  # fmt: skip


# ---- one assignment ----------------------------------------------------------------------------


async def current_state(request: Request, assignment_id: str) -> AssignmentState | None:
    """The workflow's own state (a command's effect is already in it), else the read model's copy."""
    if parse_assignment_id(assignment_id) is None:
        return None
    try:
        return await query_status(request.app.state.temporal, assignment_id)
    except HTTPException as exc:
        if exc.status_code != 404:
            log.info("workbench.live_state_unavailable", assignment_id=assignment_id, status=exc.status_code)
    return await q.assignment_row(request.app.state.engine, assignment_id)


async def access(request: Request, who: Principal, s: AssignmentState) -> str | None:
    """What the caller may do here: "act" (the unit itself, a supervisor or verifier of its area),
    "read" (the task's lead unit, an auditor) or nothing, as `access.decide` says."""
    leads: frozenset[str] = frozenset()
    if who.role == UserRole.DEPARTMENT and who.unit_id != s.unit_id:
        leads = await request.app.state.status_reader.lead_units(s.programme_id, s.task_no)
    if not decide(who, Record(s.programme_id, s.task_no, s.unit_id, leads)).allowed:
        return None
    if who.role == UserRole.AUDITOR or (who.role == UserRole.DEPARTMENT and who.unit_id != s.unit_id):
        return "read"
    return "act"


async def evaluations_open(request: Request, programme_id: str) -> frozenset[int]:
    """The programme's five-year evaluations open now, as its calendar recorded them (read model)."""
    return frozenset((await read_calendar(request.app.state.engine, programme_id)).evaluation_open)


def actions(who: Principal, s: AssignmentState, can: str | None, evaluating: frozenset[int] = frozenset()) -> list[str]:
    """The command table's rows this caller may send now, by the assignment's stage (and, for a
    self-evaluation, whether the programme's evaluation of this year is open)."""
    if s.stage in CLOSED or can != "act":
        return []
    if who.role == UserRole.DEPARTMENT:
        by_stage = {
            Stage.ASSIGNED: ["accept"],
            Stage.PLANNING: ["submit_plan"],
            Stage.IMPLEMENTING: ["report_progress", "request_verification"],
        }
        names = list(by_stage.get(s.stage, []))
        if s.role == Role.LEAD and s.stage != Stage.ASSIGNED:
            names.append("submit_summary")
        if s.year in evaluating and s.stage != Stage.ASSIGNED and s.year not in s.years_verified:
            names.append("submit_self_evaluation")
        if s.stage != Stage.VERIFYING and any(d.kind != "review" for d in s.deadlines.values()):
            names.append("request_extension")
        return names
    if who.role == UserRole.SUPERVISOR and any(x.status == "open" for x in s.extensions):
        return ["decide_extension", *(["review_plan"] if s.stage == Stage.PLAN_SUBMITTED else [])]
    if who.role == UserRole.SUPERVISOR and s.stage == Stage.PLAN_SUBMITTED:
        return ["review_plan"]
    if who.role in (UserRole.SUPERVISOR, UserRole.VERIFIER) and s.stage == Stage.VERIFYING:
        return ["verify"]
    return []


def open_periods(s: AssignmentState, now: dt.date) -> list[str]:
    """The quarters of the working year that have begun: the open report deadlines first, then the
    latest quarter first."""
    begun = [f"{s.year}-Q{n}" for n in range(4, 0, -1) if dt.date(s.year, 3 * n - 2, 1) <= now]
    due = [d.period for d in sorted(s.deadlines.values(), key=lambda d: d.due) if d.period in begun]
    return list(dict.fromkeys([*due, *begun]))


def plan_rows(s: AssignmentState) -> dict[str, str]:
    """The plan form's fields when nothing was typed: the returned plan (to be revised), else blank."""
    rows: dict[str, str] = {}
    if not s.plan or s.plan.get("year") != s.year:
        return rows
    for i, m in enumerate(s.plan.get("milestones", [])[: forms.MILESTONE_ROWS]):
        rows |= {f"milestone_due_{i}": m["due"], f"milestone_title_{i}": m["title"]}
    for i, ind in enumerate(s.plan.get("indicators", [])[: forms.INDICATOR_ROWS]):
        rows |= {f"indicator_name_{i}": ind["name"], f"indicator_target_{i}": f"{ind['target']:g}",
                 f"indicator_unit_{i}": ind.get("unit", "")}  # fmt: skip
    return rows


async def assignment_view(
    request: Request,
    who: Principal,
    s: AssignmentState,
    can: str,
    status: int = 200,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form: str = "",
) -> Response:
    shown = actions(who, s, can, await evaluations_open(request, s.programme_id))
    page_error = ""
    if errors and form not in shown:  # the form is gone (the assignment moved on): say why at the top
        page_error, errors = " ".join(errors.values()), {}
    typed_by_form = {"submit_plan": plan_rows(s), form: typed or {}} if typed else {"submit_plan": plan_rows(s)}
    items, source = await src.timeline(request, s)
    reports = [i["payload"] for i in items if i.get("type") == "ProgressReported"]
    reports = [r for r in reports if r.get("year") == s.year]
    handed = [h for h in (s.reassigned_from, s.reassigned_to) if h]
    units = {s.unit_id, who.unit_id or s.unit_id, *(u for h in handed for u in (h.from_unit_id, h.to_unit_id))}
    names = await src.unit_names(request, units)
    done = DONE.get(request.query_params.get("done", ""), "")
    past = [m for m in (s.plan or {}).get("milestones", []) if m["due"] < today().isoformat()]
    if done and request.query_params.get("done") == "submit_plan" and past:
        done += f" 注意：节点“{past[0]['title']}”的日期 {past[0]['due']} 已过，如需调整请联系督查人员退回。"
    return render(
        request,
        "assignment.html",
        status,
        user=who,
        s=s,
        can=can,
        actions=shown,
        items=items,
        source=source,
        reports=reports,
        evidence=await workbench_evidence.listing(request, s.assignment_id),
        names=names,
        now=today(),
        due_words=due_words,
        periods=open_periods(s, today()),
        typed=typed_by_form,
        errors={form: errors} if errors else {},
        page_error=page_error,
        done=done,
        key=uuid.uuid4().hex,
        milestone_rows=forms.MILESTONE_ROWS,
        indicator_rows=forms.INDICATOR_ROWS,
        colour=q.light(s.stage.value, s.overdue_level.value),
    )


async def _page_state(request: Request, who: Principal, assignment_id: str) -> tuple[AssignmentState, str] | Response:
    """The assignment and what the caller may do with it, or the page saying why not."""
    s = await current_state(request, assignment_id)
    if s is None:
        near = await request.app.state.status_reader.ids_like(assignment_id, area(who))
        message = f"没有编号为 {assignment_id} 的任务。请从工作台列表进入，或检查编号是否抄错。"
        if near:
            message += f"您要找的是不是：{'、'.join(near)}？"
        return refused(request, who, 404, "未找到任务", message)
    can = await access(request, who, s)
    if can is None:
        message = (
            f"任务 {assignment_id} 属于 {s.unit_id}；本单位（{who.unit_id}）不是它的责任单位，也不是该任务的牵头单位。"
        )
        return refused(request, who, 403, "无权查看", message)
    return s, can


@router.get("/workbench/assignments/{assignment_id}")
async def assignment_page(request: Request, assignment_id: str) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    page = await _page_state(request, who, assignment_id)
    return page if isinstance(page, Response) else await assignment_view(request, who, *page)


def same_origin(request: Request) -> bool:
    """A form posted from another site is refused: the cookie is SameSite=strict, and this checks
    the Origin (or Referer) the browser sends with every form post."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True  # not a browser form post (curl): the CSRF token still has to match
    return urlsplit(source).netloc == request.headers.get("host", "")


@router.post("/workbench/assignments/{assignment_id}/{name}")
async def submit(request: Request, assignment_id: str, name: str) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    row = BY_NAME.get(name)
    if row is None or not same_origin(request):
        return refused(request, who, 404 if row is None else 403, "无法提交", "这个表单不属于本工作台。")
    submitted = await request.form(max_files=workbench_evidence.MAX_FILES + 1)
    typed = {k: v for k, v in submitted.multi_items() if isinstance(v, str)}
    if not check_csrf(request, typed.get("csrf")):
        log.warning("workbench.csrf_refused", assignment_id=assignment_id, update=name, sub=who.sub)
        return refused(request, who, 403, "无法提交", CSRF_REFUSED)
    page = await _page_state(request, who, assignment_id)
    if isinstance(page, Response):
        return page
    s, can = page
    if name not in actions(who, s, can, await evaluations_open(request, s.programme_id)):
        message = f"当前（{labels.stage(s.stage.value)}）不能进行“{row.summary}”。请刷新页面查看任务的最新状态。"
        return await assignment_view(request, who, s, can, 409, errors={"": message}, form="")
    files = [v for k, v in submitted.multi_items() if k == "evidence" and isinstance(v, UploadFile) and v.filename]
    read = forms.READERS[name](typed)
    fields = await outcomes.with_indicator_ids(request.app.state.engine, s.programme_id, s.plan, read.fields)
    if not read.errors and files:
        stored, problem = await workbench_evidence.store_all(request, who, assignment_id, files)
        if problem:
            read.errors["evidence"] = problem
        fields["evidence"] = stored
    path = {f: s.year if f == "year" else forms.plain(typed.get(f, "")) for f in row.path_fields}
    if any(not str(v).isdigit() for v in path.values()):
        read.errors[""] = "表单缺少申请编号，请刷新页面后重试。"
    if not read.errors and row.body is not None:
        body_fields = {k: v for k, v in fields.items() if k in row.body.model_fields}
        try:
            body = row.body.model_validate(body_fields)
        except ValidationError as exc:
            read.errors.update(forms.model_errors(exc))
    if read.errors:
        return await assignment_view(request, who, s, can, 422, typed=typed, errors=read.errors, form=name)
    try:
        target = await api.Allowed(row.senders)(request, assignment_id, who)
        await api.CommandEndpoint(row)(request, target, typed.get("key") or None, body if row.body else None, **path)
    except HTTPException as exc:
        reason = forms.refusal_words(str(exc.detail))
        fresh = await current_state(request, assignment_id) or s
        errors = {forms.refusal_field(str(exc.detail), name): reason}
        return await assignment_view(request, who, fresh, can, exc.status_code, typed=typed, errors=errors, form=name)
    log.info("workbench.command", assignment_id=assignment_id, update=name, sub=who.sub)
    return RedirectResponse(f"/workbench/assignments/{assignment_id}?done={name}#done", status_code=303)


@router.get("/workbench/assignments/{assignment_id}/evidence/{sha256}")
async def evidence_file(request: Request, assignment_id: str, sha256: str) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    # The evidence rule (evidence.may_read) decides who may open it; no live state is needed for that.
    return await workbench_evidence.download(request, who, assignment_id, sha256)


# ---- the lead unit's task ----------------------------------------------------------------------


@router.get("/workbench/lead/{programme_id}/{task_no}")
async def lead_page(request: Request, programme_id: str, task_no: str) -> Response:
    who = await gate(request)
    if isinstance(who, Response):
        return who
    if not task_no.isdigit():
        return refused(request, who, 404, "未找到任务", f"任务编号应为数字，收到的是 {task_no}。")
    try:
        task = await lead.one_task(request.app.state.engine, who, programme_id, int(task_no))
    except HTTPException as exc:
        title = "未找到任务" if exc.status_code == 404 else "无权查看"
        message = f"{programme_id} 第 {task_no} 项任务：{exc.detail}"
        return refused(request, who, exc.status_code, title, message)
    mine = next((a for a in task.items if a.role == Role.LEAD and a.unit_id == who.unit_id), None)
    names = await src.unit_names(request, {a.unit_id for a in task.items} | {who.unit_id or ""} - {""})
    return render(request, "lead.html", user=who, task=task, mine=mine, names=names, now=today(),
                  due_words=due_words, key=uuid.uuid4().hex, light=q.light)  # fmt: skip
