"""The command table: one row per assignment command, the one place a command is declared.

A row says what the command is called (the workflow update's name), which request body the
HTTP API takes and where, which command the workflow receives, and who may send it. The
progress service builds its routes, role checks and OpenAPI from these rows; the workflow
registers one update handler per row, whose validator checks the sender from the same row
and then the command's own rule (`workflows.validation`), and whose decision is
`workflows.decisions.decide`. Adding a command: a command class, a row, a check, a decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts.api import (
    CancelBody,
    ClosureBody,
    ExtensionBody,
    ExtensionDecisionBody,
    PlanBody,
    ReminderBody,
    ReportBody,
    ReviewBody,
    SelfEvaluationBody,
    SummaryBody,
    VerificationBody,
    VerificationRequestBody,
)
from contracts.base import Frozen, UserRole
from contracts.commands import (
    UPDATE_REASSIGN,
    UPDATE_REMOVE,
    UPDATE_REVISE,
    AcceptAssignment,
    CancelAssignment,
    CloseAssignment,
    Command,
    DecideExtension,
    ReassignAssignment,
    RemindAssignment,
    RemoveAssignment,
    ReportProgress,
    RequestExtension,
    RequestVerification,
    ReviewAnnualPlan,
    ReviseAssignment,
    SubmitAnnualPlan,
    SubmitSelfEvaluation,
    SubmitTaskSummary,
    VerifyYear,
)

D, S, V, A = UserRole.DEPARTMENT, UserRole.SUPERVISOR, UserRole.VERIFIER, UserRole.ADMIN


@dataclass(frozen=True)
class CommandRow:
    name: str  # the workflow update's name; also the route's operation id
    command: type[Command]  # what the workflow receives: the body's fields, path fields, actor, command_id
    body: type[Frozen] | None  # the HTTP request body (None: the command has no fields of its own)
    path: str  # under /v1/assignments/{assignment_id}; {year} and the like become command fields
    senders: tuple[UserRole, ...]  # roles that may send it
    what: str  # how refusals name it: "an annual plan must come from unit ..."
    summary: str  # the OpenAPI summary (签收 etc. for the people who read it)

    @property
    def body_required(self) -> bool:
        """Whether the request must carry a body: it has a field without a default."""
        return self.body is not None and any(f.is_required() for f in self.body.model_fields.values())

    @property
    def path_fields(self) -> list[str]:
        """The command's fields that the path carries ({year}), in their order."""
        return re.findall(r"{(\w+)}", self.path)

    @property
    def own_unit_only(self) -> bool:
        """Departments act only on their own unit's assignments (the unit is part of the id)."""
        return UserRole.DEPARTMENT in self.senders

    @property
    def who_may_send(self) -> str:
        """The senders in words, for the API's documentation."""
        own = ", on its own unit's assignments" if self.own_unit_only else ""
        return f"Who may send it: {' or '.join(r.value for r in self.senders)}{own}."


# Reviewing, verifying and cancelling are never a department's, so no unit approves or passes
# its own work. Verification (城市体检) is the verifiers' and the supervisors'. Auditors only read.
COMMANDS: tuple[CommandRow, ...] = (
    CommandRow("accept", AcceptAssignment, None, "/accept", (D,), "accepting the assignment", "签收 accept"),
    CommandRow("submit_plan", SubmitAnnualPlan, PlanBody, "/plans", (D,), "an annual plan",
               "年度计划 submit the annual plan"),
    CommandRow("review_plan", ReviewAnnualPlan, ReviewBody, "/plans/{year}/review", (S,), "reviewing a plan",
               "审核 approve or return an annual plan"),
    CommandRow("report_progress", ReportProgress, ReportBody, "/reports", (D,), "a progress report",
               "进展填报 report progress for a quarter"),
    CommandRow("request_verification", RequestVerification, VerificationRequestBody,
               "/verification-requests", (D,), "a verification request", "申请核验 declare the year's work done"),
    CommandRow("verify", VerifyYear, VerificationBody, "/verification", (V, S), "verification",
               "核验 pass or fail the year"),
    CommandRow("submit_summary", SubmitTaskSummary, SummaryBody, "/summaries", (D,), "a task summary (汇总)",
               "汇总 the lead unit's consolidated annual summary of its task"),
    CommandRow("submit_self_evaluation", SubmitSelfEvaluation, SelfEvaluationBody, "/self-evaluations", (D,),
               "a self-evaluation (自评)", "自评 the unit's self-evaluation in a five-year evaluation year"),
    CommandRow("cancel", CancelAssignment, CancelBody, "/cancel", (S,), "cancelling", "撤销 cancel"),
    # Changes during the year (issue 21): a unit asks, a supervisor decides, chases or closes.
    CommandRow("request_extension", RequestExtension, ExtensionBody, "/extensions", (D,),
               "an extension request", "延期申请 ask to move one open deadline"),
    CommandRow("decide_extension", DecideExtension, ExtensionDecisionBody, "/extensions/{n}/decision", (S,),
               "deciding an extension request", "延期审批 approve or refuse an extension request"),
    CommandRow("remind", RemindAssignment, ReminderBody, "/reminders", (S,), "a reminder (催办)",
               "催办 chase the unit with a message"),
    CommandRow("close", CloseAssignment, ClosureBody, "/closure", (S,), "closing the assignment (销号)",
               "办结销号 close the task for this unit before its horizon"),
)  # fmt: skip

# Changes to the division of work. The assignment service keeps the division and sends these (its own
# routes: /v1/assignments/{id}/reassign, /v1/programmes/{id}/revisions, /v1/programmes/{id}/units), so
# the progress service does not route them; the workflow handles them like every other row.
DIVISION_COMMANDS: tuple[CommandRow, ...] = (
    CommandRow(UPDATE_REASSIGN, ReassignAssignment, None, "/reassign", (S,), "reassigning (转办)",
               "转办 move the assignment to another unit"),
    CommandRow(UPDATE_REMOVE, RemoveAssignment, None, "", (A,), "removing the assignment",
               "a revised division no longer has it"),
    # Sent by a revision (an admin's) and to a reassigned lead's cooperating units (a supervisor's).
    CommandRow(UPDATE_REVISE, ReviseAssignment, None, "", (S, A), "revising the assignment",
               "role, horizon or lead changed"),
)  # fmt: skip

WORKFLOW_COMMANDS: tuple[CommandRow, ...] = (*COMMANDS, *DIVISION_COMMANDS)
BY_NAME: dict[str, CommandRow] = {row.name: row for row in WORKFLOW_COMMANDS}
BY_COMMAND: dict[type[Command], CommandRow] = {row.command: row for row in WORKFLOW_COMMANDS}
