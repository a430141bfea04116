"""The projection's tables, declared once as SQLModel mixins and mapped by each service that keeps one.

The progress service (prefix `rm`) and the assignment service's inbox (prefix `inbox`) each fold
the event stream into their own copy. Each service has its own SQLModel registry, so its alembic
environment sees its own tables only; `projection_tables` maps the three mixins onto that
registry under the service's prefix. The fold writes through Core statements on the mapped
tables (`ProjectionTables`), built once.
"""

import datetime as dt
import types
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import DateTime, Index, Select, String, Table, Text, Update, bindparam, inspect, select, update
from sqlmodel import Field, SQLModel

from contracts.base import OVERDUE_RANK
from contracts.fold import AssignmentState


class AssignmentRow(SQLModel):
    """One assignment as the fold leaves it (`row_of`), with the whole state as JSON in `state`."""

    assignment_id: str = Field(primary_key=True, sa_type=String(200))
    programme_id: str = Field(sa_type=String(64))
    task_no: int
    unit_id: str = Field(sa_type=String(64))
    role: str = Field(sa_type=String(20))
    task_title: str = Field(default="", sa_type=Text)
    stage: str = Field(sa_type=String(20))
    year: int
    horizon_year: int
    overdue_level: str = Field(sa_type=String(10))
    overdue_rank: int
    next_deadline_due: dt.date | None = None
    next_deadline: str | None = Field(default=None, sa_type=Text)  # the Deadline's JSON
    percent: float
    reports: int
    last_report_at: dt.datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_seq: int
    updated_at: dt.datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    state: str = Field(sa_type=Text)


class ProgrammeRow(SQLModel):
    """A programme seen in a ProgrammeImported event."""

    programme_id: str = Field(primary_key=True, sa_type=String(64))
    document_no: str = Field(sa_type=Text)
    title: str = Field(sa_type=Text)
    task_count: int
    responsibility_count: int
    content_sha256: str = Field(sa_type=String(64))
    imported_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


class ProgrammeOutcomesRow(SQLModel):
    """A programme's indicators and scoring rule (contracts.indicators.ProgrammeOutcomes as JSON),
    from its ProgrammeImported event; kept only by projections that compute figures."""

    programme_id: str = Field(primary_key=True, sa_type=String(64))
    outcomes: str = Field(sa_type=Text)
    declared_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


class ProgrammeCalendarRow(SQLModel):
    """One date of a programme's own calendar as recorded (BulletinIssued, ScoresSnapshotted,
    EvaluationOpened), once per programme and key; kept only by projections that show them."""

    programme_id: str = Field(primary_key=True, sa_type=String(64))
    key: str = Field(primary_key=True, sa_type=String(40))  # bulletin:2026-Q4, snapshot:2026, evaluation:2030
    kind: str = Field(sa_type=String(20))
    year: int
    period: str = Field(sa_type=String(20))
    due_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    recorded_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    event_id: str = Field(sa_type=String(200))


class TrackingRow(SQLModel):
    """A consumer's stream position, moved in the transaction that applies its batch."""

    consumer: str = Field(primary_key=True, sa_type=String(100))
    last_seq: int
    updated_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


def table_of(model: type[SQLModel]) -> Table:
    """The Core table a SQLModel table class is mapped to, for batched statements."""
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table


def _table_model(base: type[SQLModel], mixin: type[SQLModel], name: str, *indexes: Index) -> Table:
    """`class <Name>(base, mixin, table=True)` with `__tablename__ = name`, made at run time."""

    def body(ns: dict[str, Any]) -> None:
        ns.update(__tablename__=name, __table_args__=indexes, __module__=base.__module__)

    class_name = "".join(part.title() for part in name.split("_"))
    return table_of(types.new_class(class_name, (base, mixin), {"table": True}, body))


@dataclass(frozen=True)
class ProjectionTables:
    assignments: Table
    programmes: Table
    tracking: Table
    outcomes: Table | None = None
    calendar: Table | None = None

    def all(self) -> list[Table]:
        tables = [self.assignments, self.programmes, self.tracking]
        return [*tables, *(t for t in (self.outcomes, self.calendar) if t is not None)]

    # Statements built once: building one per batch (and its cache key) cost more than running it.
    @cached_property
    def position_query(self) -> Select[Any]:
        t = self.tracking
        return select(t.c.last_seq).where(t.c.consumer == bindparam("b_consumer"))

    @cached_property
    def position_move(self) -> Update:
        t = self.tracking
        return (
            update(t)
            .where(t.c.consumer == bindparam("b_consumer"), t.c.last_seq == bindparam("b_start"))
            .values(last_seq=bindparam("b_last"), updated_at=bindparam("b_now"))
        )

    @cached_property
    def states_query(self) -> Select[Any]:
        a = self.assignments
        return select(a.c.assignment_id, a.c.state).where(a.c.assignment_id.in_(bindparam("b_ids", expanding=True)))

    @cached_property
    def state_update(self) -> Update:
        """An executemany update of every column `row_of` writes, by `b_id`."""
        a = self.assignments
        cols: dict[str, Any] = {c.name: bindparam(c.name) for c in a.columns if c.name != "assignment_id"}
        return update(a).where(a.c.assignment_id == bindparam("b_id")).values(cols)


def projection_tables(
    base: type[SQLModel], prefix: str, outcomes: bool = False, calendar: bool = False
) -> ProjectionTables:
    """The projection's three tables on the registry of `base` (a service's SQLModel base class);
    with `outcomes` the programmes' indicators and scoring rules, with `calendar` the dates of the
    programmes' own calendars."""
    return ProjectionTables(
        assignments=_table_model(
            base,
            AssignmentRow,
            f"{prefix}_assignments",
            Index(f"ix_{prefix}_unit", "unit_id", "programme_id"),
            Index(f"ix_{prefix}_task", "programme_id", "task_no"),
            Index(f"ix_{prefix}_stage", "stage"),
            Index(f"ix_{prefix}_overdue", "overdue_rank"),
        ),
        programmes=_table_model(base, ProgrammeRow, f"{prefix}_programmes"),
        tracking=_table_model(base, TrackingRow, f"{prefix}_tracking"),
        outcomes=_table_model(base, ProgrammeOutcomesRow, f"{prefix}_programme_outcomes") if outcomes else None,
        calendar=_table_model(base, ProgrammeCalendarRow, f"{prefix}_programme_calendar") if calendar else None,
    )


def row_of(state: AssignmentState) -> dict[str, Any]:
    nxt = state.next_deadline()
    return {
        "assignment_id": state.assignment_id,
        "programme_id": state.programme_id,
        "task_no": state.task_no,
        "unit_id": state.unit_id,
        "role": state.role.value,
        "task_title": state.task_title,
        "stage": state.stage.value,
        "year": state.year,
        "horizon_year": state.horizon_year,
        "overdue_level": state.overdue_level.value,
        "overdue_rank": OVERDUE_RANK[state.overdue_level],
        "next_deadline_due": nxt.due if nxt else None,
        "next_deadline": nxt.model_dump_json() if nxt else None,
        "percent": state.percent,
        "reports": state.reports,
        "last_report_at": state.last_report.reported_at if state.last_report else None,
        "last_seq": state.last_seq,
        "updated_at": state.updated_at,
        "state": state.model_dump_json(),
    }
