"""What the dashboard reads: aggregates over the progress service's own read-model tables.

Nothing here touches another service or a workflow: the per-assignment rows (rm_assignments,
folded from the event stream), the programmes seen in the stream (rm_programmes) and the
task-group cache (task_groups, filled from the assignment service by the status API and the
dashboard). Also the traffic-light rule and the Chinese labels, so pages and tests agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import labels
from contracts.base import OVERDUE_RANK, OverdueLevel, Stage
from contracts.fold import AssignmentState
from contracts.records import Recorded
from services.progress.store import READ_MODEL, task_groups
from services.shared import access

A = READ_MODEL.assignments
P = READ_MODEL.programmes

STAGE_LABELS = {key: words[0] for key, words in labels.STAGES.items()}
OVERDUE_LABELS = {key: words[0] for key, words in labels.LEVELS.items()}
ROLE_LABELS = {key: words[0] for key, words in labels.ROLES.items()}
# One traffic light per assignment; the order is the legend's.
LIGHT_LABELS = {
    "green": "按期推进",
    "grey": "未签收",
    "blue": "蓝色督办",
    "yellow": "黄色督办",
    "red": "红色督办",
    "done": "已办结",
    "cancelled": "已撤销",
}
GROUP_NUMERALS = "一二三四五六七八九十"
_RECORDS = TypeAdapter(list[Recorded])


def recorded(states: list[str]) -> list[Recorded]:
    """The dated records of states read as JSON text, parsed in one pass (only as far as Recorded goes)."""
    return _RECORDS.validate_json("[" + ",".join(states) + "]")


def light(stage: str, overdue_level: str) -> str:
    """Finished work first (done / cancelled), then the escalation level, then not-yet-accepted."""
    if stage == Stage.COMPLETED:
        return "done"
    if stage == Stage.CANCELLED:
        return "cancelled"
    if overdue_level in ("blue", "yellow", "red"):
        return overdue_level
    if stage == Stage.ASSIGNED:
        return "grey"
    return "green"


def group_label(no: int) -> str:
    return f"（{GROUP_NUMERALS[no - 1]}）" if 1 <= no <= len(GROUP_NUMERALS) else f"（{no}）"


@dataclass(frozen=True)
class Filters:
    """Validated dashboard filters; `tasks` is a group resolved to its task numbers."""

    programme_id: str
    unit_id: str | None = None
    stage: str | None = None
    overdue: str | None = None  # a level, or "any" for blue and above
    tasks: tuple[int, ...] | None = None
    area: access.Area | None = None  # the supervisor's (None: everything)

    def where(self) -> list[Any]:
        conds: list[Any] = [A.c.programme_id == self.programme_id]
        if self.area is not None:
            conds.append(access.condition(self.area, A.c.programme_id, A.c.unit_id, A.c.task_no))
        if self.unit_id:
            conds.append(A.c.unit_id == self.unit_id)
        if self.stage:
            conds.append(A.c.stage == self.stage)
        if self.overdue == "any":
            conds.append(A.c.overdue_rank > 0)
        elif self.overdue:
            conds.append(A.c.overdue_rank == OVERDUE_RANK[OverdueLevel(self.overdue)])
        if self.tasks is not None:
            conds.append(A.c.task_no.in_(self.tasks))
        return conds


@dataclass(frozen=True)
class Light:
    assignment_id: str
    task_no: int
    task_title: str
    unit_id: str
    role: str
    stage: str
    overdue_level: str
    year: int
    percent: float
    next_due: dt.date | None

    @property
    def colour(self) -> str:
        return light(self.stage, self.overdue_level)


@dataclass(frozen=True)
class ProgrammeRow:
    programme_id: str
    title: str
    document_no: str
    assignments: int


@dataclass
class UnitStats:
    unit_id: str
    total: int = 0
    completed: int = 0
    cancelled: int = 0
    not_started: int = 0
    blue: int = 0
    yellow: int = 0
    red: int = 0
    score: float | None = None  # the 考核 score of the year shown (contracts.scores), when there is one

    @property
    def active(self) -> int:
        """Assignments that count for the rate: everything not cancelled."""
        return self.total - self.cancelled

    @property
    def overdue(self) -> int:
        return self.blue + self.yellow + self.red

    @property
    def on_time(self) -> int:
        return self.active - self.overdue

    @property
    def on_time_rate(self) -> float | None:
        """Share of non-cancelled assignments with no open escalation (completed ones count as on time)."""
        return self.on_time / self.active if self.active else None

    @property
    def green(self) -> int:
        return self.active - self.completed - self.not_started - self.overdue


@dataclass(frozen=True)
class TaskInfo:
    task_no: int
    title: str
    group_no: int | None
    group_title: str


@dataclass
class Group:
    no: int | None
    title: str
    tasks: list[TaskInfo] = field(default_factory=list)


async def programmes(engine: AsyncEngine) -> list[ProgrammeRow]:
    """Programmes with assignments, the most recently imported first (unknown import: last)."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(A.c.programme_id, func.count()).group_by(A.c.programme_id))
        counts: dict[str, int] = {str(pid): int(n) for pid, n in rows}
        meta = {r.programme_id: r for r in await conn.execute(select(P))}
    out = [
        ProgrammeRow(pid, meta[pid].title if pid in meta else pid, meta[pid].document_no if pid in meta else "", n)
        for pid, n in counts.items()
    ]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)

    def imported(pid: str) -> dt.datetime:
        at: dt.datetime | None = meta[pid].imported_at if pid in meta else None
        if at is None:
            return epoch
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)

    return sorted(out, key=lambda r: (imported(r.programme_id), r.programme_id), reverse=True)


async def lights(engine: AsyncEngine, f: Filters) -> tuple[list[Light], list[Recorded]]:
    """The overview's one query: each matching assignment's light and its dated record (for the charts)."""
    cols = [
        A.c.assignment_id,
        A.c.task_no,
        A.c.task_title,
        A.c.unit_id,
        A.c.role,
        A.c.stage,
        A.c.overdue_level,
        A.c.year,
        A.c.percent,
        A.c.next_deadline_due,
    ]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(*cols, A.c.state).where(*f.where()).order_by(A.c.task_no, A.c.unit_id))).all()
    return [Light(*r[:-1]) for r in rows], recorded([r[-1] for r in rows])


def most_urgent(items: list[Light], limit: int) -> list[Light]:
    """Highest level first, then the nearest deadline (the status API's order)."""
    far = dt.date.max
    ranked = sorted(
        items, key=lambda x: (-OVERDUE_RANK[OverdueLevel(x.overdue_level)], x.next_due or far, x.assignment_id)
    )
    return ranked[:limit]


SUMMARY_DIMENSIONS = ("unit", "task", "group", "year", "role")


async def stats_by(engine: AsyncEngine, dimension: str, conds: list[Any]) -> list[UnitStats]:
    """Counts per unit, task, task group, programme year or role, over the filtered read model.

    Groups come from the task-group cache: assignments of a programme whose groups are not
    cached yet are left out of a `group` summary.
    """

    def count(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    key = {
        "unit": A.c.unit_id,
        "task": A.c.task_no,
        "group": task_groups.c.group_no,
        "year": A.c.year,
        "role": A.c.role,
    }[dimension]
    open_ = A.c.stage.not_in([Stage.COMPLETED.value, Stage.CANCELLED.value])
    source: Any = A
    if dimension == "group":
        source = A.join(
            task_groups, (task_groups.c.programme_id == A.c.programme_id) & (task_groups.c.task_no == A.c.task_no)
        )
    q = (
        select(
            key,
            func.count(),
            count(A.c.stage == Stage.COMPLETED.value),
            count(A.c.stage == Stage.CANCELLED.value),
            count((A.c.stage == Stage.ASSIGNED.value) & (A.c.overdue_rank == 0)),
            count(open_ & (A.c.overdue_rank == 1)),
            count(open_ & (A.c.overdue_rank == 2)),
            count(open_ & (A.c.overdue_rank == 3)),
        )
        .select_from(source)
        .where(*conds)
        .group_by(key)
        .order_by(key)
    )
    async with engine.connect() as conn:
        return [UnitStats(str(r[0]), *(int(v or 0) for v in r[1:])) for r in await conn.execute(q)]


async def unit_stats(engine: AsyncEngine, f: Filters) -> list[UnitStats]:
    return await stats_by(engine, "unit", f.where())


SORTS = {
    "score": ("考核得分", lambda u: (u.score if u.score is not None else -1.0, u.active)),
    "on_time": ("按期率", lambda u: (u.on_time_rate if u.on_time_rate is not None else -1.0, u.active)),
    "overdue": ("逾期数", lambda u: (u.overdue, u.red, u.yellow)),
    "red": ("红色督办", lambda u: (u.red, u.yellow, u.blue)),
    "total": ("任务数", lambda u: (u.total,)),
    "completed": ("已办结", lambda u: (u.completed,)),
    "unit": ("单位", lambda u: (u.unit_id,)),
}
# Natural direction per key: rates and counts high first, names A to Z.
ASCENDING = {"unit"}


def parse_sort(value: str | None, default: str = "on_time") -> tuple[str, bool] | None:
    """`on_time` or `-on_time` -> (key, descending); None if not a known key."""
    if not value:
        return default, default not in ASCENDING
    key, flip = (value[1:], True) if value.startswith("-") else (value, False)
    if key not in SORTS:
        return None
    natural_desc = key not in ASCENDING
    return key, natural_desc != flip


def sort_units(stats: list[UnitStats], key: str, descending: bool) -> list[UnitStats]:
    by_id = sorted(stats, key=lambda u: u.unit_id)  # ties: by unit id, whatever the direction
    return sorted(by_id, key=SORTS[key][1], reverse=descending)


async def task_catalogue(engine: AsyncEngine, programme_id: str) -> list[TaskInfo]:
    """Tasks from the group cache; empty when the cache does not know the programme."""
    t = task_groups
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(t.c.task_no, t.c.task_title, t.c.group_no, t.c.group_title)
            .where(t.c.programme_id == programme_id)
            .order_by(t.c.group_no, t.c.task_no)
        )
        return [TaskInfo(*r) for r in rows]


def groups_of(catalogue: list[TaskInfo], items: list[Light]) -> list[Group]:
    """Groups and tasks in document order; tasks seen only in the read model go under a last group."""
    groups: dict[int | None, Group] = {}
    known: set[int] = set()
    for t in catalogue:
        groups.setdefault(t.group_no, Group(t.group_no, t.group_title)).tasks.append(t)
        known.add(t.task_no)
    extra: dict[int, str] = {}
    for x in items:
        if x.task_no not in known:
            extra.setdefault(x.task_no, x.task_title)
    if extra:
        title = "其他任务（分组信息暂不可用）" if not catalogue else "其他任务"
        g = groups.setdefault(None, Group(None, title))
        g.tasks += [TaskInfo(no, extra[no], None, title) for no in sorted(extra)]
    return list(groups.values())


async def assignment_row(engine: AsyncEngine, assignment_id: str) -> AssignmentState | None:
    async with engine.connect() as conn:
        raw = (await conn.execute(select(A.c.state).where(A.c.assignment_id == assignment_id))).scalar_one_or_none()
    return AssignmentState.model_validate_json(raw) if raw else None


async def unit_ids(engine: AsyncEngine, programme_id: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(A.c.unit_id).where(A.c.programme_id == programme_id).distinct().order_by(A.c.unit_id)
        )
        return [r[0] for r in rows]


async def task_titles(engine: AsyncEngine, programme_id: str) -> dict[int, str]:
    """Task number -> title as the assignments carry it (for tasks the group cache does not know)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(A.c.task_no, A.c.task_title).where(A.c.programme_id == programme_id).distinct()
        )
        return {int(no): str(title) for no, title in rows}
