"""The 督查通报 (bulletin): a programme's figures for a quarter or a year, as a PDF or a .docx.

`gather` makes one `Bulletin` from the read model
(contracts.bulletin, contracts.scores and contracts.figures over the assignments' dated records, as
of the end of the period, or now while it runs; contracts.evaluation for the five-year evaluation
its year's calendar opened in the period), renders templates/bulletin.html (the page the
dashboard shows, in a print frame) and turns it into a PDF with WeasyPrint, fonts embedded; the .docx
(services/progress/bulletin_docx.py) is written from the same `Bulletin`, its charts pictures of the
same SVG. services/progress/bulletin_files.py serves both at
`GET /v1/programmes/{programme_id}/bulletins/{period}`; a department's token gets its own unit's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from markupsafe import Markup

from contracts.bulletin import BulletinFigures, Period, bulletin_figures, parse_period
from contracts.evaluation import EvaluationFigures, evaluation_figures
from contracts.figures import SHANGHAI, IndicatorFigures, YearFigure, indicators_answer, resolved
from contracts.indicators import ProgrammeOutcomes
from contracts.programme_calendar import RecordedDate
from contracts.records import Recorded
from contracts.scores import ScoresAnswer, UnitScore, scores_answer
from services.progress import charts, dashboard_sources, outcomes, programme_calendar
from services.progress import dashboard_queries as q
from services.progress.templating import cn_time, templates
from services.shared import access

PDF_TYPE = "application/pdf"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SHOWN_SCORES = 3  # units listed among the best and among the lowest
NUMERALS = "一二三四五六七八九十"
# The bulletin's sections in order; the five-year evaluation only in a bulletin that carries one.
SECTIONS = ("summary", "groups", "escalated", "scores", "evaluation", "indicators", "overdue")


@dataclass(frozen=True)
class EvaluationRow:
    unit_id: str
    assignment_id: str
    unit: str  # the registry's name
    span: int  # rows under this unit, on its first row (0 on the others)
    task: str
    self_evaluation: str
    excerpt: str
    scores: str


@dataclass
class Bulletin:
    programme_id: str
    title: str
    document_no: str
    period: Period
    figures: BulletinFigures
    scores: ScoresAnswer | None
    indicators: list[tuple[IndicatorFigures, YearFigure | None]]
    indicator_note: str
    names: dict[str, dict[str, str]]
    titles: dict[int, str]
    unit_id: str | None  # the unit the bulletin is limited to (a department's own)
    made_at: dt.datetime
    evaluation: EvaluationFigures | None = None
    charts: dict[str, Markup] = field(default_factory=dict)
    area: access.Area | None = None  # a scoped supervisor's: the assignments the bulletin covers

    def name(self, unit_id: str) -> str:
        return self.names.get(unit_id, {}).get("name", unit_id)

    @property
    def scope(self) -> str:
        """Whose bulletin it is, after the period line: a unit's, a supervised area's, or (empty) the city's."""
        if self.unit_id:
            return f" · {self.name(self.unit_id)}"
        if self.area is None or self.area.everything:
            return ""
        parts = [self.name(u) for u in sorted(self.area.units)]
        parts += [f"任务{no}" for pid, no in sorted(self.area.tasks) if pid == self.programme_id]
        return f" · 督查范围：{'、'.join(parts)}" if parts else ""

    def task(self, task_no: int) -> str:
        title = self.titles.get(task_no, "")
        return f"{task_no}. {title}" if title else str(task_no)

    def number(self, section: str) -> str:
        """The section's numeral among those this bulletin has (一, 二, ...), for the page and the .docx."""
        shown = [k for k in SECTIONS if k != "evaluation" or self.evaluation is not None]
        return NUMERALS[shown.index(section)]

    def evaluation_summary(self) -> str:
        """The five-year evaluation section's opening sentence (empty without one), the page's and the .docx's."""
        ev = self.evaluation
        if ev is None:
            return ""
        closed = f"，{cn_time(ev.closed_at)} 结束" if ev.closed_at else "，尚在进行"
        counts = (f"截至 {cn_time(ev.as_of)}，{ev.assignments} 项任务中 {ev.submitted} 项已提交自评，"
                  f"{ev.scored} 项已由核验人员评分。")  # fmt: skip
        none = "尚无单位提交自评。" if not ev.submitted else ""
        return f"{ev.year} 年五年评估于 {cn_time(ev.opened_at)} 开始{closed}。{counts}{none}"

    def evaluation_rows(self) -> list[EvaluationRow]:
        """The section's table, a row per assignment under its unit (in the bulletin's order of units)."""
        rows: list[EvaluationRow] = []
        for u in [] if self.evaluation is None else self.evaluation.units:
            for i, t in enumerate(u.tasks):
                rows.append(EvaluationRow(
                    unit_id=u.unit_id, assignment_id=t.assignment_id, unit=self.name(u.unit_id),
                    span=len(u.tasks) if i == 0 else 0, task=self.task(t.task_no),
                    self_evaluation=f"{t.self_score:g} 分（第 {t.revision} 版）" if t.submitted else "未提交",
                    excerpt=t.excerpt, scores="、".join(f"{x:g} 分" for x in t.scores) or "尚未评分",
                ))  # fmt: skip
        return rows

    @property
    def best(self) -> list[UnitScore]:
        return [] if self.scores is None else self.scores.units[:SHOWN_SCORES]

    @property
    def lowest(self) -> list[UnitScore]:
        """The lowest scores, lowest first, leaving out the units already among the best."""
        if self.scores is None:
            return []
        rest = self.scores.units[len(self.best) :]
        return list(reversed(rest[-SHOWN_SCORES:]))

    @property
    def stem(self) -> str:
        return f"bulletin-{self.programme_id}-{self.period.text}" + (f"-{self.unit_id}" if self.unit_id else "")


def period_of(text: str) -> Period:
    try:
        return parse_period(text)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def current_period(moment: dt.datetime) -> Period:
    day = moment.astimezone(SHANGHAI).date()
    return parse_period(f"{day.year}-Q{(day.month - 1) // 3 + 1}")


@dataclass(frozen=True)
class Sources:
    """What a bulletin is made of besides the records: the programme's words and the registry's names."""

    title: str
    document_no: str
    groups: dict[int, tuple[int, str]]  # task -> its group's number and title
    titles: dict[int, str]
    names: dict[str, dict[str, str]]
    dates: Sequence[RecordedDate] = ()  # the programme calendar's recorded dates


def compose(
    programme_id: str,
    declared: ProgrammeOutcomes,
    states: Sequence[Recorded],
    sources: Sources,
    period: Period | None,
    unit_id: str | None,
    now: dt.datetime | None = None,
    area: access.Area | None = None,
) -> Bulletin:
    """The bulletin as of the end of `period` (None: the quarter of the latest data), or `now`
    (default: the clock, or the latest record when later) while the period runs; the five-year
    evaluation of the period's year as of its close, or `now` while it is open. With a scoped
    supervisor's `area`, its figures are the area's assignments; scores and indicators keep their
    city-wide values and ranks, showing the area's units."""
    now = resolved(now, states)
    period = period or current_period(now)
    as_of = min(period.closing(), now)
    mine = [
        s
        for s in states
        if (unit_id is None or s.unit_id == unit_id)
        and (area is None or area.covers(programme_id, s.task_no, s.unit_id))
    ]
    figures = bulletin_figures(programme_id, period, mine, as_of, sources.groups)
    shown = outcomes.visible_units(area, programme_id, list(states))
    ranked = outcomes.shown_scores(
        scores_answer(programme_id, declared.scoring, declared.indicators, states, period.year, as_of, unit_id), shown
    )
    answer = outcomes.shown_indicators(indicators_answer(programme_id, declared, states, as_of, unit_id), shown)
    rows = [(ind, next((y for y in ind.years if y.year == period.year), None)) for ind in answer.indicators]
    b = Bulletin(
        programme_id=programme_id,
        title=sources.title,
        document_no=sources.document_no,
        period=period,
        figures=figures,
        scores=ranked if ranked.units else None,
        indicators=rows,
        indicator_note=(answer.note or "示例指标（EXAMPLE）") if answer.example else "",
        names=sources.names,
        titles=sources.titles,
        unit_id=unit_id,
        made_at=dt.datetime.now(dt.UTC),
        evaluation=evaluation_figures(period, sources.dates, mine, now, dashboard_sources.unit_order(sources.names)),
        area=area,
    )
    b.charts = {**period_charts(figures), "indicators": charts.indicator_bars(rows, period.year)}
    return b


def period_charts(figures: BulletinFigures, year_in_title: bool = False) -> dict[str, Markup]:
    """The pictures of a period's figures: per task group, and per month (the bulletin's and the overview's)."""
    if year_in_title:  # the overview names its year; a bulletin's period is in its own heading
        y = figures.period.year
        return {"groups": charts.group_bars(figures.groups, f"{y} 年各任务组应办事项办理情况"),
                "months": charts.monthly(figures.months, f"{y} 年按月按期办理率与督办次数")}  # fmt: skip
    return {"groups": charts.group_bars(figures.groups), "months": charts.monthly(figures.months)}


def task_groups(catalogue: Sequence[q.TaskInfo]) -> dict[int, tuple[int, str]]:
    """Task number -> its group's number and title, from the task-group cache."""
    return {t.task_no: (t.group_no, t.group_title) for t in catalogue if t.group_no is not None}


def year_so_far(programme_id: str, states: Sequence[Recorded], groups: dict[int, tuple[int, str]]) -> BulletinFigures:
    """The bulletin's figures of the current year up to now (the overview's charts): the same
    computation over the states the overview's query read, its months up to the current one."""
    now = resolved(None, states)
    period = parse_period(str(now.astimezone(SHANGHAI).year))
    figures = bulletin_figures(programme_id, period, states, min(period.closing(), now), groups)
    month = f"{now.astimezone(SHANGHAI):%Y-%m}"
    return figures.model_copy(update={"months": [m for m in figures.months if m.month <= month]})


async def gather(
    request: Request, programme_id: str, period: Period | None, unit_id: str | None, area: access.Area | None = None
) -> Bulletin:
    """The bulletin from the read model, the task-group cache and the unit registry; 404 for an
    unknown programme (naming the known ones)."""
    engine = request.app.state.engine
    declared, states = await outcomes.programme_outcomes(engine, programme_id)
    await dashboard_sources.ensure_task_groups(request, programme_id)
    catalogue = await q.task_catalogue(engine, programme_id)
    meta = next((p for p in await q.programmes(engine) if p.programme_id == programme_id), None)
    sources = Sources(
        title=meta.title if meta else programme_id,
        document_no=meta.document_no if meta else "",
        groups=task_groups(catalogue),
        titles=await q.task_titles(engine, programme_id) | {t.task_no: t.title for t in catalogue},
        names=await dashboard_sources.unit_names(request, {s.unit_id for s in states}),
        dates=(await programme_calendar.read_calendar(engine, programme_id)).dates,
    )
    return compose(programme_id, declared, states, sources, period, unit_id, area=area)


def page(b: Bulletin, **frame: Any) -> str:
    """The bulletin as HTML: standalone (the PDF's print frame) or, given the dashboard's frame
    (`layout="base.html"`, user, notes, ...), a dashboard page; one template for both."""
    context: dict[str, Any] = {
        "layout": "print.html",
        "user": None,
        "page": "bulletin",
        "notes": [],
        "programme": None,
        "csrf": "",
    }
    context |= frame
    return templates.env.get_template("bulletin.html").render(b=b, standalone=frame.get("layout") is None, **context)


def pdf_bytes(html: str) -> bytes:
    from weasyprint import HTML  # loads pango on first use, not at import

    body: bytes = HTML(string=html).write_pdf()
    return body
