"""The words people read for the project's keys: stages, roles, levels, deadlines, facts.

Chinese first (the officials who use policyflow read Chinese); `lang="en"` gives the English the
CLI shows with `--lang en`. One table per kind, used by the CLI, the pages and the API's texts.
"""

from __future__ import annotations

import re
from typing import Literal

from contracts.ids import PROGRAMME_ID_PATTERN, QUARTER_PATTERN, SHA256_PATTERN, UNIT_ID_PATTERN
from contracts.indicators import INDICATOR_ID_PATTERN

Lang = Literal["zh", "en"]

STAGES = {
    "assigned": ("待签收", "awaiting acceptance"),
    "planning": ("编制年度计划", "planning"),
    "plan_submitted": ("计划待审核", "plan awaiting review"),
    "implementing": ("实施中", "implementing"),
    "verifying": ("核验中", "awaiting verification"),
    "completed": ("已办结", "completed"),
    "cancelled": ("已撤销", "cancelled"),
}
ROLES = {"lead": ("牵头", "lead"), "cooperating": ("配合", "cooperating"), "responsible": ("负责", "responsible")}
USER_ROLES = {
    "department": ("责任单位", "department"),
    "supervisor": ("督查人员", "supervisor"),
    "verifier": ("核验人员", "verifier"),
    "auditor": ("审计人员", "auditor"),
    "admin": ("系统管理员", "admin"),
    "system": ("系统", "system"),
}
LEVELS = {
    "none": ("正常", "on time"),
    "blue": ("蓝色督办", "blue escalation"),
    "yellow": ("黄色督办", "yellow escalation"),
    "red": ("红色督办", "red escalation"),
}
DEADLINE_KINDS = {
    "acceptance": ("签收", "acceptance"),
    "annual_plan": ("年度计划", "annual plan"),
    "quarterly_report": ("季度进展填报", "quarterly report"),
    "verification": ("申请核验", "verification request"),
    "review": ("核验结论", "verifier's decision"),
    "rework": ("整改", "rework"),
}
PLAN_STATUSES = {
    "submitted": ("待审核", "awaiting review"),
    "approved": ("已通过", "approved"),
    "returned": ("已退回", "returned"),
}
VERDICTS = {"pass": ("核验通过", "passed"), "fail": ("核验未通过", "failed")}
COUNTS = {
    "reports": ("进展填报", "reports"),
    "cooperating_reports": ("配合单位进展", "cooperating units' reports"),
    "plans_returned": ("计划退回", "plans returned"),
    "verifications_failed": ("核验未通过", "verifications failed"),
    "reminders": ("催办", "reminders"),
    "escalations": ("督办升级", "escalations"),
    "manual_reminders": ("督查催办", "reminders from supervisors"),
}
# What the unit (or the reviewer) is expected to do next, by stage.
NEXT_STEPS = {
    "assigned": ("签收任务", "accept the assignment"),
    "planning": ("提交年度计划", "submit the annual plan"),
    "plan_submitted": ("等待督查人员审核计划", "wait for the plan's review"),
    "implementing": ("填报进展，完成后申请核验", "report progress, then request verification"),
    "verifying": ("等待核验结论", "wait for the verifier's decision"),
    "completed": ("无需操作", "nothing"),
    "cancelled": ("无需操作", "nothing"),
}
FACTS = {
    "ProgrammeImported": ("导入实施方案", "programme imported"),
    "AssignmentCreated": ("下达任务", "assigned"),
    "AssignmentAccepted": ("签收任务", "accepted"),
    "YearStarted": ("进入新年度", "year started"),
    "AnnualPlanSubmitted": ("提交年度计划", "annual plan submitted"),
    "AnnualPlanApproved": ("年度计划审核通过", "annual plan approved"),
    "AnnualPlanReturned": ("年度计划退回", "annual plan returned"),
    "ProgressReported": ("填报进展", "progress reported"),
    "CooperatingReportReceived": ("收到配合单位进展", "cooperating unit's report received"),
    "ReminderIssued": ("催办", "reminder"),
    "SupervisionEscalated": ("督办升级", "escalated"),
    "EscalationCleared": ("解除督办", "escalation cleared"),
    "VerificationRequested": ("申请核验", "verification requested"),
    "VerificationPassed": ("核验通过", "verification passed"),
    "VerificationFailed": ("核验未通过", "verification failed"),
    "EvaluationRecorded": ("五年评估", "five-year evaluation"),
    "AssignmentCompleted": ("任务办结", "completed"),
    "AssignmentCancelled": ("任务撤销", "cancelled"),
    "TaskSummarySubmitted": ("牵头单位年度汇总", "lead's annual summary"),
    "ExtensionRequested": ("延期申请", "extension requested"),
    "ExtensionApproved": ("延期批准", "extension approved"),
    "ExtensionRefused": ("延期不予批准", "extension refused"),
    "ManualReminderIssued": ("督查催办", "reminder from a supervisor"),
    "AssignmentClosed": ("办结销号", "closed early"),
    "DeadlinesRecomputed": ("按放假安排调整期限", "deadlines moved by a published calendar"),
    "AssignmentReassigned": ("转办", "reassigned"),
    "AssignmentRemoved": ("清单修订移除", "removed by a revision"),
    "AssignmentRevised": ("分工调整", "responsibility revised"),
    "ProgrammeRevised": ("任务清单修订", "division revised"),
    "WorkingCalendarPublished": ("公布放假安排", "working calendar published"),
}
EXTENSION_STATUSES = {
    "open": ("待审批", "awaiting decision"),
    "approved": ("已批准", "approved"),
    "refused": ("不予批准", "refused"),
    "lapsed": ("已失效", "lapsed"),
}

# Every `pattern=` in contracts/, as the form people should write, with an example (a test checks
# that none is missing): what a refusal says instead of the regular expression.
PATTERNS = {
    QUARTER_PATTERN: ("应写作年份加季度，如 2026-Q4", "must look like 2026-Q4 (a year and its quarter, Q1 to Q4)"),
    PROGRAMME_ID_PATTERN: (
        "应由小写字母、数字和连字符组成，如 cq-2022-79",
        "must look like cq-2022-79 (2 to 63 lower-case letters, digits and hyphens)",
    ),
    UNIT_ID_PATTERN: (
        "应由小写字母、数字、下划线和连字符组成，如 yuzhong",
        "must look like yuzhong (2 to 64 lower-case letters, digits, _ and -)",
    ),
    SHA256_PATTERN: (
        "应为文件的 SHA-256 值（64 位十六进制字符）",
        "must be a file's SHA-256: 64 characters 0-9 and a-f, as `sha256sum` prints it",
    ),
    INDICATOR_ID_PATTERN: (
        "应为指标编号：小写字母开头，由小写字母、数字和下划线组成，如 green_building_share",
        "must be an indicator id like green_building_share (1 to 63 lower-case letters, digits and _)",
    ),
}

_QUARTERS = "一二三四"


def _pick(table: dict[str, tuple[str, str]], key: str, lang: Lang) -> str:
    words = table.get(key)
    return key if words is None else words[0 if lang == "zh" else 1]


def stage(key: str, lang: Lang = "zh") -> str:
    return _pick(STAGES, key, lang)


def role(key: str, lang: Lang = "zh") -> str:
    return _pick(ROLES, key, lang)


def user_role(key: str, lang: Lang = "zh") -> str:
    return _pick(USER_ROLES, key, lang)


def level(key: str, lang: Lang = "zh") -> str:
    return _pick(LEVELS, key, lang)


def plan_status(key: str, lang: Lang = "zh") -> str:
    return _pick(PLAN_STATUSES, key, lang)


def verdict(key: str, lang: Lang = "zh") -> str:
    return _pick(VERDICTS, key, lang)


def extension_status(key: str, lang: Lang = "zh") -> str:
    return _pick(EXTENSION_STATUSES, key, lang)


def count(key: str, lang: Lang = "zh") -> str:
    return _pick(COUNTS, key, lang)


def next_step(stage_key: str, lang: Lang = "zh") -> str:
    return _pick(NEXT_STEPS, stage_key, lang)


def fact(type_: str, lang: Lang = "zh") -> str:
    return _pick(FACTS, type_, lang)


def pattern(regex: str, lang: Lang = "zh") -> str:
    """What a value of this form looks like, in words (never the expression itself)."""
    words = PATTERNS.get(regex)
    if words is None:
        return "格式不对" if lang == "zh" else "is not written in the expected form"
    return words[0 if lang == "zh" else 1]


def period(text: str, lang: Lang = "zh") -> str:
    """`2026-Q3` as people say it: 2026年第三季度."""
    m = re.fullmatch(r"(\d{4})-Q([1-4])", text)
    if m is None:
        return text
    year, q = m.group(1), int(m.group(2))
    return f"{year}年第{_QUARTERS[q - 1]}季度" if lang == "zh" else f"Q{q} {year}"


def deadline(key: str, lang: Lang = "zh") -> str:
    """A deadline's key (`annual_plan:2027`, `report:2026-Q3`) as words: 2027年度计划."""
    kind, _, rest = key.partition(":")
    if kind == "acceptance":
        return "签收" if lang == "zh" else "acceptance"
    if kind == "report":
        return f"{period(rest, lang)}进展填报" if lang == "zh" else f"progress report for {period(rest, lang)}"
    names = {
        "annual_plan": ("年度计划", "annual plan"),
        "verification": ("年度申请核验", "verification request"),
        "review": ("年度核验结论", "verifier's decision"),
        "rework": ("年度整改", "rework"),
    }
    words = names.get(kind)
    if words is None or not rest.isdigit():
        return key
    return f"{rest}{words[0]}" if lang == "zh" else f"{words[1]} {rest}"
