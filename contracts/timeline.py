"""One line per event for the timeline a person reads: Chinese first, then English. Pure: the audit
service writes it into its history, the dashboard and the workbench when they read the stream instead,
so a moved date says why (an extension, a published calendar) whichever source answers."""

from __future__ import annotations

from typing import Any

LEVELS = {"blue": "蓝色", "yellow": "黄色", "red": "红色", "none": "无"}
ROLES = {"lead": "牵头", "cooperating": "配合", "responsible": "负责"}

TEMPLATES = {
    "ProgrammeImported": "导入实施方案 {document_no}，{task_count} 项任务 / programme imported: {task_count} tasks",
    "AssignmentCreated": "下达任务（{role_zh}），至 {horizon_year} 年 / assigned as {role} until {horizon_year}",
    "AssignmentAccepted": "签收任务 / accepted ({year})",
    "YearStarted": "进入 {year} 年度 / year {year} started",
    "AnnualPlanSubmitted": "提交 {year} 年度计划（第 {revision} 版，{milestones_n} 个节点）/ "
    "annual plan {year} submitted, revision {revision}",
    "AnnualPlanApproved": "{year} 年度计划审核通过 / annual plan {year} approved",
    "AnnualPlanReturned": "年度计划退回：{reasons_short} / annual plan {year} returned",
    "ProgressReported": "填报 {period} 进展 {percent}%，佐证 {evidence_n} 份 / progress {percent}% for {period}",
    "CooperatingReportReceived": "收到配合单位 {from_unit_id} 进展 {percent}% / cooperating report from {from_unit_id}",
    "ReminderIssued": "催办：{deadline_key} 于 {deadline_due} 到期 / reminder: {deadline_key} due {deadline_due}",
    "SupervisionEscalated": "{level_zh}督办：{deadline_key} 逾期 {working_days_overdue} 个工作日 / "
    "escalated {level}: {working_days_overdue} working days overdue",
    "EscalationCleared": "解除督办 {deadline_key} / escalation cleared",
    "VerificationRequested": "申请 {year} 年度核验 / verification requested ({reason})",
    "VerificationPassed": "{year} 年度核验通过 / verification passed",
    "VerificationFailed": "核验未通过，{rework_due} 前整改 / verification failed, rework due {rework_due}",
    "EvaluationRecorded": "五年评估得分 {score} / five-year evaluation scored {score}",
    "AssignmentCompleted": "任务办结 / assignment completed ({year})",
    "AssignmentCancelled": "任务撤销：{reason_short} / assignment cancelled",
    "TaskSummarySubmitted": "牵头单位提交 {year} 年度汇总（第 {revision} 版）/ "
    "lead's summary for {year}, revision {revision}",
    "ExtensionRequested": "申请延期（第 {n} 号）：{deadline_key} 由 {due} 延至 {new_due}，理由：{reason_short} / "
    "extension {n} requested: {deadline_key} from {due} to {new_due}",
    "ExtensionApproved": "批准延期（第 {n} 号）：{deadline_key} 由 {old_due} 改为 {new_due} / "
    "extension {n} approved: {deadline_key} now due {new_due}",
    "ExtensionRefused": "不予延期（第 {n} 号）：{reason_short} / extension {n} refused",
    "ManualReminderIssued": "督查催办：{message_short} / reminder from a supervisor",
    "AssignmentClosed": "办结销号：{reason_short} / closed early ({year})",
    "DeadlinesRecomputed": "依 {source} 公布的 {year} 年放假安排重新计算期限：{moved_words} / "
    "deadlines moved by the {year} working calendar",
    "AssignmentCreated/handover": "由 {from_unit_id}（{from_assignment_id}）转办而来：{reason_short} / "
    "reassigned from {from_unit_id}",
    "AssignmentReassigned": "转办至 {to_unit_id}（{to_assignment_id}）：{reason_short} / "
    "reassigned to {to_unit_id} as {to_assignment_id}",
    "AssignmentRemoved": "清单第 {revision} 次修订移除本任务 / removed in revision {revision}",
    "AssignmentRevised": "分工调整（{changed_words}）：{reason_short} / revised: {changed_words}",
    "ProgrammeRevised": "任务清单第 {revision} 次修订：新增 {added_n}，移除 {removed_n}，调整 {changed_n} / "
    "division revision {revision}: {added_n} added, {removed_n} removed, {changed_n} changed",
    "WorkingCalendarPublished": "公布 {year} 年放假安排（{source}，第 {revision} 版）/ "
    "working calendar {year} published, revision {revision}",
    "SelfEvaluationSubmitted": "提交 {year} 年五年评估自评（第 {revision} 版），自评 {score} 分 / "
    "self-evaluation for {year}, revision {revision}: {score}",
    "BulletinIssued": "印发 {period} 督查通报 / bulletin {period} issued",
    "ScoresSnapshotted": "{year} 年度考核得分定格 / scores of {year} snapshotted",
    "EvaluationOpened": "{year} 年五年评估开始，各单位提交自评 / five-year evaluation {year} opened",
}


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:  # an unexpected payload still gets a readable line
        return "?"


def _clip(text: Any, width: int = 60) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _division_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """A reassignment's handover and a revision's counts, for their lines."""
    raw = payload.get("handover")
    handover: dict[str, Any] = raw if isinstance(raw, dict) else {}
    names = ("to_unit_id", "to_assignment_id", "from_unit_id", "from_assignment_id")
    fields: dict[str, Any] = {k: handover[k] for k in names if k in handover}
    if "reason" in handover:
        fields["reason_short"] = _clip(handover["reason"])
    changed = payload.get("changed")
    if isinstance(changed, list):
        fields["changed_n"] = len(changed)
        fields["changed_words"] = ", ".join(str(c) for c in changed)
    fields["added_n"] = len(payload.get("added") or [])
    fields["removed_n"] = len(payload.get("removed") or [])
    return fields


def summary(event_type: str, payload: dict[str, Any]) -> str:
    if event_type == "AssignmentCreated" and isinstance(payload.get("handover"), dict):
        event_type = "AssignmentCreated/handover"  # a reassignment's new assignment says where it came from
    template = TEMPLATES.get(event_type)
    if template is None:
        return event_type
    raw_deadline = payload.get("deadline")
    deadline: dict[str, Any] = raw_deadline if isinstance(raw_deadline, dict) else {}
    fields = _Fields(payload)
    fields.update(
        role_zh=ROLES.get(str(payload.get("role")), "?"),
        level_zh=LEVELS.get(str(payload.get("level")), "?"),
        deadline_key=deadline.get("key", payload.get("deadline_key", "?")),
        deadline_due=deadline.get("due", "?"),
        milestones_n=len(payload.get("milestones") or []),
        evidence_n=len(payload.get("evidence") or []),
        reasons_short=_clip(payload.get("reasons")),
        reason_short=_clip(payload.get("reason")),
        message_short=_clip(payload.get("message")),
        moved_words="；".join(
            f"{m.get('key')} {m.get('old_due')} → {m.get('new_due')}"
            for m in payload.get("moved") or []
            if isinstance(m, dict)
        ),
    )
    fields.update(_division_fields(payload))
    return template.format_map(fields)
