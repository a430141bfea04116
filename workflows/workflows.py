"""AssignmentWorkflow: one assignment (task x unit x role), from dispatch to its horizon year.

How it works, in one place:

* State is the fold (`contracts.fold.apply`) of the events this workflow emitted, so the
  status query, the read models and the audit replay agree by construction.
* Commands are updates, one per row of `contracts.command_table.WORKFLOW_COMMANDS`. The validator
  refuses a wrong one with a reason and without a trace in history; the handler re-checks
  (state may have moved since) and decides the facts (`workflows.decisions`).
* Every fact becomes an event (deterministic id: assignment id + seq), is folded into the
  state at once and queued in an outbox. The main loop hands the outbox to the
  `publish_events` activity, so an event is published only after the workflow task that
  decided it is recorded, and history holds exactly what is published. An update returns
  once its events are published.
* The main loop sleeps until the next reminder / escalation / year end, issues what is due,
  and continues-as-new when the assignment moves to a new year. A signal that arrives while
  that last task runs fails it; its redo takes the signal first, and since nothing of the
  failed task was recorded, nothing of it was published.
* The working calendar is loaded by a local activity (recorded in history), never imported as
  data, so a `holidays` upgrade cannot change a replay; published years replace it (published_calendars).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.base import SYSTEM_ACTOR, Actor, Stage, UserRole
    from contracts.command_table import WORKFLOW_COMMANDS, CommandRow
    from contracts.commands import (
        KEY_REUSED,
        KEY_REUSED_WORDS,
        QUERY_STATUS,
        SIGNAL_COOPERATING_REPORT,
        WORKFLOW_NAME,
        Command,
        CommandResult,
        CooperatingReport,
        ReportProgress,
        request_digest,
    )
    from contracts.events import (
        CooperatingReportReceived,
        EscalationCleared,
        Event,
        Fact,
        make_event,
    )
    from contracts.fold import AssignmentState, apply
    from contracts.ids import workflow_id
    from contracts.working_calendar import SIGNAL_CALENDAR_PUBLISHED
    from workflows import deadlines as rules
    from workflows import decisions, search_attributes, validation
    from workflows.activities import CalendarRequest, load_working_calendar
    from workflows.calendar import WorkingCalendar, YearCalendar, shanghai_date, start_of_day
    from workflows.models import MAX_REMEMBERED_COMMANDS, AssignmentInput, AssignmentStatus, Carried
    from workflows.published_calendars import PublishedCalendars
    from workflows.publishing import PUBLISH_BATCH, PUBLISH_PAUSE, publish
    from workflows.recompute import deadlines_recomputed

COMMAND_REJECTED = "CommandRejected"
FINAL = (Stage.COMPLETED, Stage.CANCELLED)


def rejected(reason: str) -> ApplicationError:
    return ApplicationError(reason, type=COMMAND_REJECTED, non_retryable=True)


@workflow.defn(name=WORKFLOW_NAME)
class AssignmentWorkflow:
    @workflow.init
    def __init__(self, input: AssignmentInput) -> None:
        self._input = input
        self._spec = input.spec
        self._rules = input.spec.schedule.rules
        carried = input.carried
        self._state: AssignmentState | None = carried.state if carried else None
        self._seq = carried.next_seq if carried else 0
        self._published_seq = self._seq - 1
        self._notices: dict[str, str] = dict(carried.notices) if carried else {}
        self._results: dict[str, CommandResult] = dict(carried.results) if carried else {}
        self._cooperating: list[CooperatingReport] = list(carried.pending_cooperating) if carried else []
        self._outbox: list[Event] = []
        self._calendar_years: dict[int, YearCalendar] = {}
        self._calendar = WorkingCalendar()
        self._published = PublishedCalendars.of(input)
        workflow.set_signal_handler(SIGNAL_CALENDAR_PUBLISHED, self._published.receive)
        self._run_year = self._state.year if self._state else 0
        self._wake: dt.datetime | None = None
        for row in WORKFLOW_COMMANDS:
            handler, validator = self._command_handlers(row)
            workflow.set_update_handler(row.name, handler, validator=validator)

    # ---- main loop -------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: AssignmentInput) -> AssignmentStatus:
        today = self._today()
        await self._ensure_calendar(today)
        if self._state is None:
            self._create(today)
        while True:
            self._drain_cooperating()
            self._apply_published_calendars()
            self._issue_notices(today)
            self._verify_at_year_end(today)
            await self._flush()
            self._sync_search_attributes()
            state = self._current()
            if state.stage in FINAL:
                break
            if state.year != self._run_year or workflow.info().is_continue_as_new_suggested():
                await self._settle()
                if self._current().stage not in FINAL:
                    self._continue_as_new()
                break
            await self._sleep_until_next_wake(today)
            today = self._today()
            await self._ensure_calendar(today)
        await self._settle()
        self._sync_search_attributes()
        if input.linger > dt.timedelta(0):
            # Stay reachable for late commands, which get the reason rather than "not found".
            await self._wait(lambda: False, input.linger)
        await self._settle()
        return self.status()

    async def _sleep_until_next_wake(self, today: dt.date) -> None:
        self._wake = self._next_wake(today)
        timeout = None if self._wake is None else max(self._wake - workflow.now(), dt.timedelta(0))
        await self._wait(lambda: bool(self._outbox or self._cooperating or self._published.pending), timeout)

    async def _wait(self, condition: Callable[[], bool], timeout: dt.timedelta | None) -> None:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(condition, timeout=timeout)

    def _continue_as_new(self) -> None:
        state = self._current()
        carried = Carried(
            state=state,
            next_seq=self._seq,
            notices={k: v for k, v in self._notices.items() if k in state.deadlines},
            results=self._results,
            pending_cooperating=self._cooperating,
            **self._published.carried(),
        )
        workflow.logger.info("continue-as-new into %s", state.year)
        workflow.continue_as_new(self._input.model_copy(update={"carried": carried, "published_calendars": []}))

    async def _settle(self) -> None:
        """Publish everything and let every running handler finish (before continue-as-new or the end)."""
        while True:
            self._drain_cooperating()
            if self._outbox:
                await self._flush()
                continue
            if workflow.all_handlers_finished():
                return
            await workflow.wait_condition(
                lambda: bool(self._outbox or self._cooperating) or workflow.all_handlers_finished()
            )

    # ---- time: reminders, escalations, year end --------------------------------------------

    def _today(self) -> dt.date:
        return shanghai_date(workflow.now())

    def _next_wake(self, today: dt.date) -> dt.datetime | None:
        s = self._current()
        days = [
            rules.next_notice_day(self._calendar, self._rules, d, self._notices.get(d.key), today)
            for d in s.deadlines.values()
        ]
        candidates = [d for d in days if d is not None]
        if decisions.year_end_applies(s):
            candidates.append(rules.year_end(s.year))
        # New Year's Day: reload the calendar so that the new year's holidays are known.
        candidates.append(dt.date(today.year + 1, 1, 1))
        return start_of_day(min(candidates))

    def _issue_notices(self, today: dt.date) -> None:
        for d in sorted(self._current().deadlines.values(), key=lambda d: (d.due, d.key)):
            fact = decisions.notice(self._calendar, self._rules, d, self._notices.get(d.key), today)
            if fact is not None:
                self._emit([fact], SYSTEM_ACTOR)  # and noted in self._notices (track_notices)

    def _verify_at_year_end(self, today: dt.date) -> None:
        s = self._current()
        if decisions.year_end_applies(s) and today >= rules.year_end(s.year):
            fact = decisions.verification_requested(s, self._calendar, self._rules, "year_end", "", today)
            self._emit([fact], SYSTEM_ACTOR)

    async def _ensure_calendar(self, today: dt.date) -> None:
        """Load the years the deadlines may touch; a no-op (no await) when they are loaded."""
        years = {today.year, today.year + 1}
        if self._state is not None:
            years |= {self._state.year, self._state.year + 1}
            years |= {y for d in self._state.deadlines.values() for y in (d.due.year - 1, d.due.year, d.due.year + 1)}
        missing = sorted(y for y in years if y not in self._calendar_years and 2000 <= y <= 2100)
        if not missing:
            return
        loaded = await workflow.execute_local_activity(
            load_working_calendar, CalendarRequest(years=missing), start_to_close_timeout=dt.timedelta(seconds=30)
        )
        self._calendar_years.update({y.year: y for y in loaded.years})
        self._calendar_years.update(self._published.years())  # a published year wins over the package
        self._calendar = WorkingCalendar(self._calendar_years.values())

    def _apply_published_calendars(self) -> None:
        """A calendar published by signal: used at once; the open deadlines it changes move (an event)."""
        for published in self._published.take():
            old, self._calendar = self._calendar, self._published.install(published, self._calendar_years)
            fact = deadlines_recomputed(self._current(), old, self._calendar, self._rules, published)
            self._emit([fact] if fact and self._current().stage not in FINAL else [], SYSTEM_ACTOR)

    # ---- events ------------------------------------------------------------------------------

    def _current(self) -> AssignmentState:
        assert self._state is not None, "the assignment is created before anything reads it"
        return self._state

    def _emit(self, facts: list[Fact], actor: Actor) -> list[Event]:
        """Turn facts into events: next seq, fold, outbox. A late-met deadline clears its escalation."""
        out: list[Event] = []
        for fact in facts:
            out.append(self._emit_one(fact, actor))
            for key in fact.closes:
                if key in self._current().escalations:
                    out.append(self._emit_one(EscalationCleared(deadline_key=key), actor))
        return out

    def _emit_one(self, fact: Fact, actor: Actor) -> Event:
        spec = self._spec
        event = make_event(
            fact,
            seq=self._seq,
            occurred_at=workflow.now(),
            programme_id=spec.programme_id,
            actor=actor,
            assignment_id=spec.assignment_id,
            task_no=spec.task_no,
            unit_id=spec.unit_id,
        )
        self._seq += 1
        self._state = apply(self._state, event)
        self._outbox.append(event)
        decisions.track_notices(self._notices, fact)
        return event

    async def _flush(self) -> None:
        """Publish the outbox in order; only the main loop calls this, so batches never overlap."""
        while self._outbox:
            batch = self._outbox[:PUBLISH_BATCH]
            try:
                await publish(batch)
            except ActivityError as err:
                workflow.logger.error("publishing %s failed; retrying in %s", batch[0].event_id, PUBLISH_PAUSE)
                workflow.logger.debug("cause: %s", err.cause)
                await workflow.sleep(PUBLISH_PAUSE)
                continue
            del self._outbox[: len(batch)]
            self._published_seq = batch[-1].seq

    def _sync_search_attributes(self) -> None:
        if not self._input.search_attributes or self._state is None:
            return
        search_attributes.sync(self._state)

    def _create(self, today: dt.date) -> None:
        fact = decisions.created(self._spec, self._calendar, today)
        self._emit([fact], self._input.created_by)
        self._run_year = fact.start_year

    # ---- commands ----------------------------------------------------------------------------

    def _command_handlers(
        self, row: CommandRow
    ) -> tuple[Callable[[dict[str, Any]], Awaitable[CommandResult]], Callable[[dict[str, Any]], None]]:
        """The update handler and validator of one row. They take plain JSON and read it with the row's
        model here, so one handler serves every row and a malformed command is refused in words."""

        def parsed(body: dict[str, Any]) -> Command:
            try:
                return row.command.model_validate(body)
            except ValidationError as err:
                first = err.errors()[0]
                field = ".".join(str(p) for p in first["loc"]) or "command"
                raise rejected(f"{row.what}: {field}: {first['msg']}") from None

        def validate(body: dict[str, Any]) -> None:
            self._check(row, parsed(body))

        async def handle(body: dict[str, Any]) -> CommandResult:
            cmd = parsed(body)
            result = await self._command(row, cmd)
            if isinstance(cmd, ReportProgress):
                await self._tell_lead(cmd, result)
            return result

        return handle, validate

    def _check(self, row: CommandRow, cmd: Command) -> None:
        """Validator body: a refusal raised here leaves no trace in history."""
        if self._earlier(row, cmd) is not None:
            return  # a retry: the handler answers with the earlier result
        today = self._today()
        state = self._state or decisions.about_to_be_created(self._spec, today)
        reason = validation.reason(state, self._spec, row, cmd, today)
        if reason:
            raise rejected(reason)

    async def _command(self, row: CommandRow, cmd: Command) -> CommandResult:
        await workflow.wait_condition(lambda: self._state is not None)
        today = self._today()
        await self._ensure_calendar(today)
        # From here to the emit nothing awaits, so no other handler interleaves.
        earlier = self._earlier(row, cmd)
        if earlier is not None:
            result, target = earlier, self._seq - 1
        else:
            reason = validation.reason(self._current(), self._spec, row, cmd, today)
            if reason:
                raise rejected(reason)  # only when another command changed the state meanwhile
            s = self._current()
            events = self._emit(decisions.decide(s, self._calendar, self._rules, cmd, today, self._spec), cmd.actor)
            s = self._current()
            ids, asked = [e.event_id for e in events], request_digest(row.name, cmd)
            n = decisions.request_number(events)
            result = CommandResult(event_ids=ids, stage=s.stage.value, year=s.year, request=asked, n=n)
            self._remember(cmd.command_id, result)
            target = events[-1].seq
        await workflow.wait_condition(lambda: self._published_seq >= target)
        return result

    def _earlier(self, row: CommandRow, cmd: Command) -> CommandResult | None:
        """The result this command's key already got; a different request under it is refused."""
        earlier = self._results.get(cmd.command_id) if cmd.command_id is not None else None
        if earlier is not None and earlier.request and earlier.request != request_digest(row.name, cmd):
            raise ApplicationError(KEY_REUSED_WORDS, type=KEY_REUSED, non_retryable=True)
        return earlier

    def _remember(self, command_id: str | None, result: CommandResult) -> None:
        if command_id is None:
            return
        self._results[command_id] = result
        while len(self._results) > MAX_REMEMBERED_COMMANDS:
            del self._results[next(iter(self._results))]

    # ---- cooperating units -------------------------------------------------------------------

    async def _tell_lead(self, cmd: ReportProgress, result: CommandResult) -> None:
        """A cooperating unit's report goes to the lead's assignment too, so the lead can consolidate."""
        # The state's lead, not the spec's: a revision or a reassignment may have changed it since.
        lead = self._state.lead_assignment_id if self._state is not None else None
        if lead is None or not result.event_ids or self._state is None:
            return
        report = CooperatingReport(
            from_assignment_id=self._spec.assignment_id,
            from_unit_id=self._spec.unit_id,
            year=self._state.year,
            period=cmd.period,
            percent=cmd.percent,
            narrative=cmd.narrative,
        )
        try:
            await workflow.get_external_workflow_handle(workflow_id(lead)).signal(SIGNAL_COOPERATING_REPORT, report)
        except Exception as err:  # noqa: BLE001 - the lead may not run (yet, or any more): log, keep going
            workflow.logger.warning("could not tell lead %s about %s: %s", lead, cmd.period, err)

    @workflow.signal(name=SIGNAL_COOPERATING_REPORT)
    def cooperating_report(self, report: CooperatingReport) -> None:
        self._cooperating.append(report)

    def _drain_cooperating(self) -> None:
        if self._state is None:
            return
        while self._cooperating:
            r = self._cooperating.pop(0)
            if self._state.stage in FINAL:
                workflow.logger.info("dropped report from %s: assignment is %s", r.from_unit_id, self._state.stage)
                continue
            # Relayed, not typed in here: the actor names the cooperating unit's assignment.
            actor = Actor(sub=f"assignment:{r.from_assignment_id}", role=UserRole.SYSTEM, unit_id=r.from_unit_id)
            self._emit([CooperatingReportReceived(**r.model_dump())], actor)

    # ---- query -------------------------------------------------------------------------------

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> AssignmentStatus:
        state = self._state or decisions.about_to_be_created(self._spec, self._today())
        extra = {"notices": self._notices, "next_wake": self._wake, "unpublished_events": len(self._outbox)}
        return AssignmentStatus.model_validate({**state.model_dump(), **extra})
