"""The workflow's input, the state it carries across continue-as-new, and its status.

Pure pydantic: services import these to start assignments and read their status without
importing workflow code.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from contracts.base import SYSTEM_ACTOR, Actor
from contracts.commands import AssignmentSpec, CommandResult, CooperatingReport
from contracts.division_facts import ProgrammeRevised
from contracts.events import ProgrammeImported
from contracts.fold import AssignmentState
from contracts.working_calendar import PublishedCalendar

MAX_REMEMBERED_COMMANDS = 256


class Carried(BaseModel):
    """What one run hands the next at a year boundary (continue-as-new)."""

    state: AssignmentState
    next_seq: int = Field(ge=0)
    # deadline key -> highest notice issued for it ("reminder", "blue", ...), for open deadlines
    notices: dict[str, str] = {}
    # command_id -> the result it got, most recent last, at most MAX_REMEMBERED_COMMANDS
    results: dict[str, CommandResult] = {}
    pending_cooperating: list[CooperatingReport] = []
    published_calendars: list[PublishedCalendar] = []  # working calendars published to this assignment, applied
    pending_calendars: list[PublishedCalendar] = []  # received by signal, their deadlines not yet moved


class AssignmentInput(BaseModel):
    """Input of `AssignmentWorkflow`. A new assignment passes only `spec` (and who dispatched it)."""

    spec: AssignmentSpec
    created_by: Actor = SYSTEM_ACTOR
    carried: Carried | None = None
    # The working calendars published when it was started: its first deadlines are computed on them.
    published_calendars: list[PublishedCalendar] = []
    # Upsert the Policyflow* search attributes (registered on the dev server by deploy/local);
    # off where the server does not know them (the time-skipping test server).
    search_attributes: bool = True
    # After completion or cancellation the workflow stays open this long, answering late
    # commands with the reason instead of "workflow execution already completed".
    linger: dt.timedelta = dt.timedelta(days=7)


class AssignmentStatus(AssignmentState):
    """The `status` query: the folded state plus what only the workflow knows."""

    notices: dict[str, str] = {}
    next_wake: dt.datetime | None = None
    unpublished_events: int = 0


class ProgrammeInput(BaseModel):
    """Input of `ProgrammeWorkflow`: the programme's import, as the assignment service stored it."""

    programme_id: str
    imported: ProgrammeImported
    actor: Actor
    # A revision of the division: the workflow records this fact instead, as the programme's event `revision`.
    revised: ProgrammeRevised | None = None


class ProgrammeRecorded(BaseModel):
    event_ids: list[str]


class CalendarRecordInput(BaseModel):
    """Input of the programme calendar's record workflow, and what it carries across continue-as-new."""

    programme_id: str
    next_seq: int = Field(default=0, ge=0)
    recorded: list[str] = []  # occurrence keys recorded, oldest first
