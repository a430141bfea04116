"""Who may read or act on an assignment: the one place that decides.

Every route that reads or commands an assignment asks `decide` with the caller and the
assignment's record (programme, task and unit as its events say, never parsed from its id); every
route that lists assignments narrows its query with `area` and `condition`. The rules:

- a token limited to programmes (`programmes`) sees nothing of another programme;
- a department reads and acts on its own unit's assignments, and reads (never acts on) every
  assignment of a task its unit leads (牵头);
- a supervisor or verifier with an area (`supervises`) reads and acts on the assignments of its
  units and tasks only; without one it is city-wide;
- an auditor reads everything and acts on nothing; an admin (operators) neither reads nor acts on
  assignments: programmes, revisions and the calendar are its work.

A refusal is a `Decision` with `allowed=False` and the reason in words (Chinese first); the routes
answer it with 403, and an id that names nothing with 404 before this is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, or_, true

from contracts import labels
from contracts.base import UserRole
from services.shared.auth import Principal

READERS = (UserRole.DEPARTMENT, UserRole.SUPERVISOR, UserRole.VERIFIER, UserRole.AUDITOR)


@dataclass(frozen=True)
class Record:
    """What access needs of an assignment: from its record, never from its id."""

    programme_id: str
    task_no: int
    unit_id: str
    lead_units: frozenset[str] = frozenset()  # the units that lead its task (they read all of it)

    def words(self) -> str:
        return f"unit {self.unit_id}'s assignment to task {self.task_no} of {self.programme_id}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str  # what allowed it ("own unit", "supervises unit:yuzhong") or why not, in words


def role_refusal(p: Principal, roles: tuple[UserRole, ...]) -> str:
    needs = " or ".join(r.value for r in roles)
    needs_zh = "或".join(labels.user_role(r.value) for r in roles)
    return (
        f"{labels.user_role(p.role.value)}身份无权进行此操作，需要{needs_zh}身份 "
        f"(role {p.role.value} may not do this; needs {needs})"
    )


def programme_refusal(p: Principal, programme_id: str) -> str:
    allowed = ", ".join(p.programmes)
    return f"令牌仅限方案 {allowed}，不含方案 {programme_id} (the token is limited to programmes {allowed})"


def area_words(p: Principal) -> str:
    return ", ".join(p.supervises) or "city-wide"


def decide(p: Principal, rec: Record, senders: tuple[UserRole, ...] | None = None) -> Decision:
    """May `p` read the assignment (`senders` None) or send it a command that `senders` may send?"""
    roles = READERS if senders is None else senders
    if p.role not in roles:
        return Decision(False, role_refusal(p, roles))
    if not p.in_programme(rec.programme_id):
        return Decision(False, programme_refusal(p, rec.programme_id))
    if p.role == UserRole.DEPARTMENT:
        if p.unit_id == rec.unit_id:
            return Decision(True, "own unit")
        if senders is None and p.unit_id in rec.lead_units:
            return Decision(True, f"lead unit of task {rec.task_no}")
        if senders is None:
            return Decision(
                False,
                f"单位 {p.unit_id} 不能查看单位 {rec.unit_id} 的任务，只有该单位、任务的牵头单位和督查人员可以 "
                f"(unit {p.unit_id} may not read {rec.words()}: only that unit, its task's lead unit, "
                "its supervisors and verifiers, and auditors may)",
            )
        return Decision(
            False,
            f"单位 {p.unit_id} 不能办理单位 {rec.unit_id} 的任务 (unit {p.unit_id} may not act on {rec.words()})",
        )
    if p.role == UserRole.AUDITOR or p.city_wide:
        return Decision(True, "city-wide" if p.city_wide else "auditor")
    if p.role == UserRole.ADMIN:  # a command row that names admins (a revision's removals)
        return Decision(True, "admin")
    if rec.unit_id in p.supervised_units:
        return Decision(True, f"supervises unit:{rec.unit_id}")
    if (rec.programme_id, rec.task_no) in p.supervised_tasks:
        return Decision(True, f"supervises task:{rec.programme_id}/{rec.task_no}")
    return Decision(
        False,
        f"督查范围（{area_words(p)}）不含单位 {rec.unit_id} 的任务 {rec.task_no} "
        f"(your supervised area, {area_words(p)}, does not include {rec.words()})",
    )


@dataclass(frozen=True)
class Area:
    """The assignments a caller may list: every one (`everything`), or those of `units` and `tasks`;
    always within `programmes` when it names any."""

    everything: bool
    units: frozenset[str] = frozenset()
    tasks: frozenset[tuple[str, int]] = frozenset()
    programmes: tuple[str, ...] = ()

    def has_unit(self, unit_id: str) -> bool:
        return self.everything or unit_id in self.units

    def covers(self, programme_id: str, task_no: int, unit_id: str) -> bool:
        """Whether one assignment is in the area (`condition` is the same rule in SQL)."""
        if self.programmes and programme_id not in self.programmes:
            return False
        return self.everything or unit_id in self.units or (programme_id, task_no) in self.tasks


def area(p: Principal) -> Area:
    """What `p` may list (a department: its own unit's; its lead's reading is the lead view's)."""
    if p.role == UserRole.DEPARTMENT:
        return Area(False, frozenset({p.unit_id or ""}), programmes=p.programmes)
    if p.role == UserRole.AUDITOR or p.city_wide:
        return Area(True, programmes=p.programmes)
    if p.role in (UserRole.SUPERVISOR, UserRole.VERIFIER):
        return Area(False, p.supervised_units, p.supervised_tasks, p.programmes)
    return Area(False, programmes=p.programmes)  # admins list no assignments


def condition(a: Area, programme: Any, unit: Any, task: Any = None, assignment: Any = None) -> Any:
    """The area as one SQL condition on a table's programme and unit columns and either its task
    column or (the ledger, which has none) its assignment id column, `programme.tNN.unit…`."""
    conds: list[Any] = []
    if a.programmes:
        conds.append(programme.in_(a.programmes))
    if not a.everything:
        parts: list[Any] = [unit.in_(sorted(a.units))] if a.units else []
        for pid, no in sorted(a.tasks):
            on_task = task == no if task is not None else assignment.like(f"{pid}.t{no:02d}.%")
            parts.append(and_(programme == pid, on_task))
        conds.append(or_(*parts) if parts else false())
    return and_(true(), *conds)
