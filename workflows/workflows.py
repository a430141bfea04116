"""AssignmentWorkflow: one assignment (task x unit x role), from dispatch to its horizon year.

How it works, in one place:

* State is the fold (`contracts.fold.apply`) of the events this workflow emitted, so the
  status query, the read models and the audit replay agree by construction.
* Every fact becomes an event (deterministic id: assignment id + seq), is applied to the
  state at once and queued in an outbox; the main loop publishes the outbox in order through
  the `publish_events` activity. An update returns once its events are published.
* Runs started since the `publish-local-activity` patch publish through a local activity:
  the command's events are published and its update answered in the one workflow task that
  took the command (a marker in history instead of a scheduled / started / completed activity
  and a second workflow task). A task that fails after publishing is redone with a later
  workflow time; the stream keeps the first copy of each id, and the workflow adopts it.
* Commands are updates. The validator refuses a wrong one with a reason and without a trace
  in history; the handler re-checks (state may have moved since) and decides the facts.
* The main loop sleeps until the next reminder / escalation / year end, issues what is due,
  and continues-as-new when the assignment moves to a new year, in a workflow task of its own
  (a signal arriving meanwhile would otherwise fail the task that published the year's events).
* The working calendar is loaded by a local activity (recorded in history), never imported
  as data, so a `holidays` upgrade cannot change a replay.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.base import SYSTEM_ACTOR, Actor, Stage, UserRole
    from contracts.commands import (
        QUERY_STATUS,
        SIGNAL_COOPERATING_REPORT,
        UPDATE_ACCEPT,
        UPDATE_CANCEL,
        UPDATE_REPORT_PROGRESS,
        UPDATE_REQUEST_VERIFICATION,
        UPDATE_REVIEW_PLAN,
        UPDATE_SUBMIT_PLAN,
        UPDATE_VERIFY,
        WORKFLOW_NAME,
        AcceptAssignment,
        CancelAssignment,
        Command,
        CommandResult,
        CooperatingReport,
        ReportProgress,
        RequestVerification,
        ReviewAnnualPlan,
        SubmitAnnualPlan,
        VerifyYear,
    )
    from contracts.events import (
        AssignmentCreated,
        CooperatingReportReceived,
        EscalationCleared,
        Event,
        Fact,
        ReminderIssued,
        SupervisionEscalated,
        make_event,
    )
    from contracts.fold import AssignmentState, apply
    from contracts.ids import workflow_id
    from workflows import deadlines as rules
    from workflows import decisions, validation
    from workflows.activities import CalendarRequest, EventPublisher, Published, PublishEvents, load_working_calendar
    from workflows.calendar import WorkingCalendar, YearCalendar, shanghai_date, start_of_day
    from workflows.models import MAX_REMEMBERED_COMMANDS, AssignmentInput, AssignmentStatus, Carried

COMMAND_REJECTED = "CommandRejected"
PUBLISH_BATCH = 50
# The whole retry span of one publish (schedule_to_close) is 6h, a quarter of the stream's
# 24h duplicate window: every retry of a batch re-sends ids the stream still remembers, so
# a retry after a publish whose ack was lost is dropped as a duplicate, never stored twice.
PUBLISH_SPAN = dt.timedelta(hours=6)
PUBLISH_RETRY = RetryPolicy(
    initial_interval=dt.timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=dt.timedelta(minutes=1)
)
# If NATS stays away longer than the span, try again after a pause. Past 24h a lost ack could
# in theory yield a second copy; consumers also de-duplicate by event_id.
PUBLISH_PAUSE = dt.timedelta(minutes=10)
# Runs that began before this patch keep publishing through a (normal) activity until they
# continue as new: `workflow.patched` answers once per run, so a run never mixes the two.
PATCH_LOCAL_PUBLISH = "publish-local-activity"
PUBLISH_LOCAL_RETRY = dt.timedelta(seconds=30)
# Runs since this patch end (continue as new, or complete) in a workflow task that published
# nothing: see `_settle_in_a_quiet_task`.
PATCH_QUIET_END = "end-in-a-quiet-task"
QUIET_END = dt.timedelta(milliseconds=50)
# Runs since this patch keep the facts that the stream's copies displaced: see `_adopt`.
PATCH_DISPLACED_FACTS = "keep-displaced-facts"

SA_PROGRAMME = SearchAttributeKey.for_keyword("PolicyflowProgramme")
SA_TASK = SearchAttributeKey.for_int("PolicyflowTaskNo")
SA_UNIT = SearchAttributeKey.for_keyword("PolicyflowUnit")
SA_STAGE = SearchAttributeKey.for_keyword("PolicyflowStage")
SA_YEAR = SearchAttributeKey.for_int("PolicyflowYear")
SA_OVERDUE = SearchAttributeKey.for_keyword("PolicyflowOverdue")

FINAL = (Stage.COMPLETED, Stage.CANCELLED)


def rejected(reason: str) -> ApplicationError:
    return ApplicationError(reason, type=COMMAND_REJECTED, non_retryable=True)


def track_notices(notices: dict[str, str], fact: Fact) -> None:
    """Which notice each deadline has had: a closed or (re)opened deadline starts with none."""
    for key in [*fact.closes, *(d.key for d in fact.opens)]:
        notices.pop(key, None)
    if isinstance(fact, SupervisionEscalated):
        notices[fact.deadline.key] = fact.level.value
    elif isinstance(fact, ReminderIssued):
        notices[fact.deadline.key] = "reminder"


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
        # The state and notices before the outbox's first event: what a stored copy is folded onto.
        self._outbox_base: tuple[AssignmentState | None, dict[str, str]] = (self._state, dict(self._notices))
        self._calendar_years: dict[int, YearCalendar] = {}
        self._calendar = WorkingCalendar()
        self._run_year = self._state.year if self._state else 0
        self._wake: dt.datetime | None = None
        self._published_at = -1  # the history length (so: the workflow task) of the last publish
        self._displaced: set[int] = set()  # seqs whose facts the stream's copies replaced

    # ---- main loop -------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: AssignmentInput) -> AssignmentStatus:
        today = self._today()
        await self._ensure_calendar(today)
        if self._state is None:
            self._create(today)
        while True:
            self._drain_cooperating()
            self._issue_notices(today)
            self._verify_at_year_end(today)
            await self._flush()
            self._sync_search_attributes()
            state = self._current()
            if state.stage in FINAL:
                break
            if state.year != self._run_year or workflow.info().is_continue_as_new_suggested():
                await self._settle_in_a_quiet_task()
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
        await self._settle_in_a_quiet_task()
        return self.status()

    async def _sleep_until_next_wake(self, today: dt.date) -> None:
        self._wake = self._next_wake(today)
        timeout = None if self._wake is None else max(self._wake - workflow.now(), dt.timedelta(0))
        await self._wait(lambda: bool(self._outbox or self._cooperating), timeout)

    async def _wait(self, condition: Callable[[], bool], timeout: dt.timedelta | None) -> None:
        try:
            await workflow.wait_condition(condition, timeout=timeout)
        except TimeoutError:
            pass

    def _continue_as_new(self) -> None:
        state = self._current()
        carried = Carried(
            state=state,
            next_seq=self._seq,
            notices={k: v for k, v in self._notices.items() if k in state.deadlines},
            results=self._results,
            pending_cooperating=self._cooperating,
        )
        workflow.logger.info("continue-as-new into %s", state.year)
        workflow.continue_as_new(self._input.model_copy(update={"carried": carried}))

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

    async def _settle_in_a_quiet_task(self) -> None:
        """Settle, in a workflow task that publishes nothing (before continue-as-new or the end).

        The server refuses to end a run while a signal waits that arrived during the task (a
        cooperating unit's report reaching its lead during the lead's verification): the task
        fails. One that had published would leave its events in the stream, and its redo, with
        the signal first and the update aborted, would decide other facts under the same ids.
        A timer ends such a task instead; the next one starts with whatever arrived meanwhile.
        Commands that come in the meantime are answered by this run as soon as they come (they
        must not wait for the timer: the dev server fires timers about a second late).
        """
        await self._settle()
        while self._published_in_this_task() and workflow.patched(PATCH_QUIET_END):
            await self._wait(lambda: bool(self._outbox or self._cooperating), QUIET_END)
            await self._settle()

    def _published_in_this_task(self) -> bool:
        return self._published_at == workflow.info().get_current_history_length()

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
        self._calendar = WorkingCalendar(self._calendar_years.values())

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
        if not self._outbox:
            # `apply` returns a new state, so keeping the old one costs nothing.
            self._outbox_base = (self._state, dict(self._notices))
        self._state = apply(self._state, event)
        self._outbox.append(event)
        track_notices(self._notices, fact)
        return event

    def _adopt(self, stored: list[Event]) -> None:
        """Take the stream's copies of outbox events and fold the outbox again onto its base.

        Only after a workflow task published events and then failed: its redo made the same ids
        with a later time (or, across a day's end, other deadlines). What consumers got wins.
        If the redo took its inputs in another order (a signal before the command that the failed
        task had taken), a copy holds another fact than the one this run decided: that fact is
        displaced, not lost. A relayed report is queued again; a command decides again on what
        the stream holds (`_command`); a notice is issued again by the main loop.
        """
        by_seq = {e.seq: e for e in stored}
        displaced = [e for e in self._outbox if e.seq in by_seq and by_seq[e.seq].type != e.type]
        if displaced and workflow.patched(PATCH_DISPLACED_FACTS):
            self._displaced.update(e.seq for e in displaced)
            reports = [e.fact() for e in displaced if e.type == CooperatingReportReceived.TYPE]
            fields = CooperatingReport.model_fields
            self._cooperating[:0] = [CooperatingReport(**f.model_dump(include=set(fields))) for f in reports]
            workflow.logger.warning("the stream's copies displaced %s", ", ".join(e.event_id for e in displaced))
        self._outbox = [by_seq.get(e.seq, e) for e in self._outbox]
        state, notices = self._outbox_base[0], dict(self._outbox_base[1])
        for event in self._outbox:
            fact = event.fact()
            state = apply(state, event)
            track_notices(notices, fact)
            if isinstance(fact, AssignmentCreated):
                self._run_year = fact.start_year
        self._state, self._notices = state, notices
        workflow.logger.warning("adopted the stream's copy of %s", ", ".join(e.event_id for e in stored))

    async def _flush(self) -> None:
        while self._outbox:
            batch = self._outbox[:PUBLISH_BATCH]
            try:
                published = await self._publish(batch)
            except ActivityError as err:
                workflow.logger.error("publishing %s failed for %s; retrying later", batch[0].event_id, PUBLISH_SPAN)
                workflow.logger.debug("cause: %s", err.cause)
                await workflow.sleep(PUBLISH_PAUSE)
                continue
            if published.stored:
                self._adopt(published.stored)
                batch = self._outbox[: len(batch)]  # the stream's copies, as folded
            del self._outbox[: len(batch)]
            self._published_seq = batch[-1].seq
            self._published_at = workflow.info().get_current_history_length()
            if self._outbox:  # more than a batch: the next one's base is the state after this one
                state, notices = self._outbox_base[0], dict(self._outbox_base[1])
                for event in batch:
                    state = apply(state, event)
                    track_notices(notices, event.fact())
                self._outbox_base = (state, notices)

    async def _publish(self, batch: list[Event]) -> Published:
        if workflow.patched(PATCH_LOCAL_PUBLISH):
            # In the workflow task itself: no activity task round trip, no second workflow task.
            # A worker that dies mid-batch fails the workflow task; its redo publishes again.
            return await workflow.execute_local_activity_method(
                EventPublisher.publish_events,
                PublishEvents(events=batch),
                start_to_close_timeout=dt.timedelta(minutes=5),  # a full batch at the slowest acks
                schedule_to_close_timeout=PUBLISH_SPAN,
                retry_policy=PUBLISH_RETRY,
                # Short retries stay inside the workflow task; once the backoff passes this, each
                # retry waits on a durable timer instead of holding the task open (NATS is away).
                local_retry_threshold=PUBLISH_LOCAL_RETRY,
            )
        return await workflow.execute_activity_method(
            EventPublisher.publish_events,
            PublishEvents(events=batch),
            start_to_close_timeout=dt.timedelta(minutes=5),  # a full batch at the slowest acks
            heartbeat_timeout=dt.timedelta(seconds=10),  # one beat per event published
            schedule_to_close_timeout=PUBLISH_SPAN,
            retry_policy=PUBLISH_RETRY,
        )

    def _sync_search_attributes(self) -> None:
        if not self._input.search_attributes or self._state is None:
            return
        s = self._state
        wanted: list[SearchAttributeUpdate[Any]] = [
            SA_PROGRAMME.value_set(s.programme_id),
            SA_TASK.value_set(s.task_no),
            SA_UNIT.value_set(s.unit_id),
            SA_STAGE.value_set(s.stage.value),
            SA_YEAR.value_set(s.year),
            SA_OVERDUE.value_set(s.overdue_level.value),
        ]
        current = workflow.info().typed_search_attributes
        changed = [u for u in wanted if current.get(u.key) != u.value]
        if changed:
            workflow.upsert_search_attributes(changed)

    def _create(self, today: dt.date) -> None:
        fact = decisions.created(self._spec, self._calendar, today)
        self._emit([fact], self._input.created_by)
        self._run_year = fact.start_year

    # ---- commands ----------------------------------------------------------------------------

    def _check(self, cmd: Command) -> None:
        """Validator body: a refusal raised here leaves no trace in history."""
        if cmd.command_id is not None and cmd.command_id in self._results:
            return  # a retry: the handler answers with the earlier result
        today = self._today()
        state = self._state or decisions.about_to_be_created(self._spec, today)
        reason = validation.reason(state, self._spec, cmd, today)
        if reason:
            raise rejected(reason)

    async def _command(self, cmd: Command) -> CommandResult:
        await workflow.wait_condition(lambda: self._state is not None)
        while True:
            today = self._today()
            await self._ensure_calendar(today)
            # From here to the emit nothing awaits, so no other handler interleaves.
            seqs: list[int] = []
            if cmd.command_id is not None and cmd.command_id in self._results:
                result = self._results[cmd.command_id]
                target = self._seq - 1
            else:
                reason = validation.reason(self._current(), self._spec, cmd, today)
                if reason:
                    raise rejected(reason)  # only when another command changed the state meanwhile
                s = self._current()
                events = self._emit(decisions.decide(s, self._calendar, self._rules, cmd, today), cmd.actor)
                s = self._current()
                result = CommandResult(event_ids=[e.event_id for e in events], stage=s.stage.value, year=s.year)
                self._remember(cmd.command_id, result)
                seqs, target = [e.seq for e in events], events[-1].seq
            await self._until_published(target)
            if not self._displaced.intersection(seqs):
                return result
            # The stream kept other facts under this command's ids (see `_adopt`): decide again.
            if cmd.command_id is not None:
                self._results.pop(cmd.command_id, None)

    async def _until_published(self, seq: int) -> None:
        await workflow.wait_condition(lambda: self._published_seq >= seq)

    def _remember(self, command_id: str | None, result: CommandResult) -> None:
        if command_id is None:
            return
        self._results[command_id] = result
        while len(self._results) > MAX_REMEMBERED_COMMANDS:
            del self._results[next(iter(self._results))]

    @workflow.update(name=UPDATE_ACCEPT)
    async def accept(self, cmd: AcceptAssignment) -> CommandResult:
        return await self._command(cmd)

    @accept.validator
    def _validate_accept(self, cmd: AcceptAssignment) -> None:
        self._check(cmd)

    @workflow.update(name=UPDATE_SUBMIT_PLAN)
    async def submit_plan(self, cmd: SubmitAnnualPlan) -> CommandResult:
        return await self._command(cmd)

    @submit_plan.validator
    def _validate_submit_plan(self, cmd: SubmitAnnualPlan) -> None:
        self._check(cmd)

    @workflow.update(name=UPDATE_REVIEW_PLAN)
    async def review_plan(self, cmd: ReviewAnnualPlan) -> CommandResult:
        return await self._command(cmd)

    @review_plan.validator
    def _validate_review_plan(self, cmd: ReviewAnnualPlan) -> None:
        self._check(cmd)

    @workflow.update(name=UPDATE_REPORT_PROGRESS)
    async def report_progress(self, cmd: ReportProgress) -> CommandResult:
        result = await self._command(cmd)
        await self._tell_lead(cmd, result)
        return result

    @report_progress.validator
    def _validate_report_progress(self, cmd: ReportProgress) -> None:
        self._check(cmd)

    @workflow.update(name=UPDATE_REQUEST_VERIFICATION)
    async def request_verification(self, cmd: RequestVerification) -> CommandResult:
        return await self._command(cmd)

    @request_verification.validator
    def _validate_request_verification(self, cmd: RequestVerification) -> None:
        self._check(cmd)

    @workflow.update(name=UPDATE_VERIFY)
    async def verify(self, cmd: VerifyYear) -> CommandResult:
        return await self._command(cmd)

    @verify.validator
    def _validate_verify(self, cmd: VerifyYear) -> None:
        self._check(cmd)

    @workflow.update(name=UPDATE_CANCEL)
    async def cancel(self, cmd: CancelAssignment) -> CommandResult:
        return await self._command(cmd)

    @cancel.validator
    def _validate_cancel(self, cmd: CancelAssignment) -> None:
        self._check(cmd)

    # ---- cooperating units -------------------------------------------------------------------

    async def _tell_lead(self, cmd: ReportProgress, result: CommandResult) -> None:
        """A cooperating unit's report goes to the lead's assignment too, so the lead can consolidate."""
        lead = self._spec.lead_assignment_id
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
