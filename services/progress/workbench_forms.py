"""What the workbench's forms send, read into the command table's bodies, with reasons in Chinese.

Each reader takes the submitted form (strings), returns the body's fields or the reasons keyed by
the form field they belong beside. What people type is taken as they type it: full-width digits
and punctuation (`２０２６－０６－３０`, `７０．５`), blank rows left out. The body's own model still
judges the result (contracts), so a rule is never written twice: the readers only turn text into
values and say so in words when they cannot.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

# A form's fields as submitted: one value per name (files are handled by the page).
Form = Mapping[str, str]

MILESTONE_ROWS, INDICATOR_ROWS = 6, 4


@dataclass
class Read:
    """The body's fields, or why not: reasons keyed by form field (`""`: the form as a whole)."""

    fields: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def plain(text: str) -> str:
    """Full-width digits and punctuation as their ASCII forms (NFKC), spaces trimmed."""
    return unicodedata.normalize("NFKC", text or "").strip()


def _number(text: str) -> float | None:
    cleaned = plain(text).replace(",", "").rstrip("%")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _date(text: str) -> dt.date | None:
    cleaned = plain(text).replace("/", "-").replace(".", "-")
    for sep in ("年", "月"):
        cleaned = cleaned.replace(sep, "-")
    cleaned = cleaned.rstrip("日")
    try:
        y, m, d = (int(p) for p in cleaned.split("-"))
        return dt.date(y, m, d)
    except ValueError:
        return None


def plan(form: Form) -> Read:
    out = Read()
    milestones, indicators = [], []
    for i in range(int(form.get("milestone_rows", MILESTONE_ROWS) or MILESTONE_ROWS)):
        due, title = form.get(f"milestone_due_{i}", ""), plain(form.get(f"milestone_title_{i}", ""))
        if not plain(due) and not title:
            continue
        day = _date(due)
        if day is None:
            out.errors[f"milestone_due_{i}"] = "请填写日期，例如 2026-06-30"
        if not title:
            out.errors[f"milestone_title_{i}"] = "请填写节点内容"
        if day is not None and title:
            milestones.append({"title": title, "due": day.isoformat()})
    if not milestones and not any(k.startswith("milestone") for k in out.errors):
        out.errors["milestone_title_0"] = "年度计划至少需要一个节点"
    for i in range(int(form.get("indicator_rows", INDICATOR_ROWS) or INDICATOR_ROWS)):
        name, target = plain(form.get(f"indicator_name_{i}", "")), form.get(f"indicator_target_{i}", "")
        unit = plain(form.get(f"indicator_unit_{i}", ""))
        if not name and not plain(target):
            continue
        value = _number(target)
        if not name:
            out.errors[f"indicator_name_{i}"] = "请填写指标名称"
        if value is None:
            out.errors[f"indicator_target_{i}"] = "目标值须为数字，例如 70 或 3000"
        if name and value is not None:
            indicators.append({"name": name, "target": value, "unit": unit})
    out.fields = {"year": int(plain(form.get("year", "0")) or 0), "milestones": milestones, "indicators": indicators}
    return out


def review(form: Form) -> Read:
    decision = form.get("decision", "")
    out = Read(fields={"decision": decision, "comment": form.get("comment", "").strip()})
    if decision not in ("approve", "return"):
        out.errors["decision"] = "请选择“通过”或“退回”"
    elif decision == "return" and not out.fields["comment"]:
        out.errors["comment"] = "退回计划须写明原因，以便单位修改"
    return out


def report(form: Form) -> Read:
    out = Read()
    percent = _number(form.get("percent", ""))
    if percent is None or not 0 <= percent <= 100:
        out.errors["percent"] = "完成进度须为 0 到 100 之间的数字"
    narrative = form.get("narrative", "").strip()
    if not narrative:
        out.errors["narrative"] = "请填写本季度工作进展"
    values = []
    for key, raw in form.items():
        if key.startswith("value:") and plain(raw):
            number = _number(raw)
            if number is None:
                out.errors[key] = "指标完成值须为数字"
            else:
                values.append({"name": key[len("value:") :], "value": number})
    out.fields = {
        "period": plain(form.get("period", "")),
        "percent": percent if percent is not None else 0.0,
        "narrative": narrative,
        "indicator_values": values,
    }
    return out


def verification_request(form: Form) -> Read:
    return Read(fields={"note": form.get("note", "").strip()})


def verify(form: Form) -> Read:
    decision = form.get("decision", "")
    out = Read(fields={"decision": decision, "findings": form.get("findings", "").strip()})
    score_text = plain(form.get("score", ""))
    if score_text:
        score = _number(score_text)
        if score is None or not 0 <= score <= 100:
            out.errors["score"] = "评估得分须为 0 到 100 之间的数字"
        else:
            out.fields["score"] = score
    if decision not in ("pass", "fail"):
        out.errors["decision"] = "请选择“通过”或“不通过”"
    elif decision == "fail" and not out.fields["findings"]:
        out.errors["findings"] = "核验不通过须写明意见，以便单位整改"
    return out


def summary(form: Form) -> Read:
    text = form.get("text", "").strip()
    out = Read(fields={"year": int(plain(form.get("year", "0")) or 0), "text": text})
    if not text:
        out.errors["text"] = "请填写年度汇总"
    return out


def self_evaluation(form: Form) -> Read:
    """A unit's self-evaluation (自评) while its five-year evaluation is open."""
    text = form.get("text", "").strip()
    out = Read(fields={"year": int(plain(form.get("year", "0")) or 0), "text": text})
    score = _number(plain(form.get("score", "")))
    if score is None or not 0 <= score <= 100:
        out.errors["score"] = "自评得分须为 0 到 100 之间的数字"
    else:
        out.fields["score"] = score
    if not text:
        out.errors["text"] = "请填写自评内容"
    return out


def cancel(form: Form) -> Read:
    reason = form.get("reason", "").strip()
    return Read(fields={"reason": reason}, errors={} if reason else {"reason": "撤销任务须写明原因"})


def extension(form: Form) -> Read:
    """A unit's extension request (延期申请)."""
    out = Read(fields={"deadline_key": form.get("deadline_key", ""), "reason": form.get("reason", "").strip()})
    new_due = _date(form.get("new_due", ""))
    if new_due is None:
        out.errors["new_due"] = "请填写申请延至的日期，如 2027-06-30"
    else:
        out.fields["new_due"] = new_due
    if not out.fields["reason"]:
        out.errors["reason"] = "延期申请须写明理由"
    return out


def extension_decision(form: Form) -> Read:
    """A supervisor's decision on an extension request; `n` travels in the path."""
    decision = form.get("decision", "")
    out = Read(fields={"decision": decision, "reason": form.get("reason", "").strip()})
    if plain(form.get("new_due", "")):
        new_due = _date(form.get("new_due", ""))
        if new_due is None:
            out.errors["new_due"] = "日期格式不对，如 2027-06-30"
        out.fields["new_due"] = new_due
    if decision not in ("approve", "refuse"):
        out.errors["decision"] = "请选择“批准”或“不予批准”"
    elif decision == "refuse" and not out.fields["reason"]:
        out.errors["reason"] = "不予批准须写明理由"
    return out


Reader = Callable[[Form], Read]
READERS: dict[str, Reader] = {
    "accept": lambda _form: Read(),
    "submit_plan": plan,
    "review_plan": review,
    "report_progress": report,
    "request_verification": verification_request,
    "verify": verify,
    "submit_summary": summary,
    "submit_self_evaluation": self_evaluation,
    "cancel": cancel,
    "request_extension": extension,
    "decide_extension": extension_decision,
}

# A body field that the model refused, as the form field its reason goes beside.
_FORM_FIELD = {"milestones": "milestone_title_0", "indicators": "indicator_name_0", "indicator_values": "percent"}
_WORDS = {
    "string_too_long": "内容过长，请精简",
    "too_long": "条目过多，请精简",
    "string_pattern_mismatch": "格式不对，季度应写作 2026-Q4",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
}


def model_errors(exc: ValidationError) -> dict[str, str]:
    """A body model's refusals as reasons beside form fields."""
    out: dict[str, str] = {}
    for e in exc.errors():
        top = str(e["loc"][0]) if e["loc"] else ""
        out.setdefault(_FORM_FIELD.get(top, top), _WORDS.get(e["type"], "填写的内容不符合要求，请检查"))
    return out


# A workflow's refusal names what it is about; the page shows it beside that field.
_REFUSAL_FIELDS = (
    ("milestone", "milestone_title_0"),
    ("indicator", "indicator_name_0"),
    ("progress for", "period"),
    ("findings", "findings"),
    ("score", "score"),
    ("comment", "comment"),
)


# The workflow's refusals are written once, in English (workflows/validation.py); the pages put the
# gist in Chinese first, found by words that each reason always contains, and keep the reason itself.
_REFUSAL_WORDS = (
    ("outside the plan year", "节点日期须在计划年度内"),
    ("appears more than once", "指标名称重复"),
    ("is not open", "本年度计划目前不能提交"),
    ("awaits review", "没有待审核的年度计划"),
    ("returning a plan needs", "退回计划须写明原因"),
    ("before the quarter begins", "该季度尚未开始，不能填报"),
    ("is not in the approved plan", "该指标不在已批准的年度计划中"),
    ("cannot be reported", "当前不能填报该季度进展"),
    ("cannot be requested", "当前不能申请核验"),
    ("nothing awaits verification", "没有待核验的工作"),
    ("a failed verification needs", "核验不通过须写明意见"),
    ("has no score", "核验不通过时不评分"),
    ("not a five-year evaluation year", "本年度不是五年评估年度"),
    ("its evaluation is closed", "该年度已核验，评估已结束"),
    ("self-evaluation is empty", "请填写自评内容"),
    ("evaluation year", "评估年度的得分填写有误"),
    ("only the task's lead unit", "只有牵头单位可以撰写汇总"),
    ("accept the assignment before", "请先签收任务"),
    ("already accepted", "任务已签收"),
    ("is cancelled", "任务已撤销"),
    ("is still open: wait", "该期限已有待审批的延期申请"),
    ("is outside the programme year", "新的日期须在该期限所属年度内"),
    ("is not later than", "新的日期须晚于原期限"),
    ("has already passed", "新的日期已过"),
    ("can no longer be extended", "当前不能申请延期"),
    ("is already", "该延期申请已处理"),
    ("is completed", "任务已办结"),
    ("must come from unit", "无权进行此操作"),
    ("not uploaded", "佐证材料未上传"),
    ("did not answer in time", "系统繁忙，请稍后重试"),
)


def refusal_words(reason: str) -> str:
    """A refusal as the page shows it: the gist in Chinese, then the reason as it was given."""
    gist = next((zh for en, zh in _REFUSAL_WORDS if en in reason), "未能提交")
    return f"{gist}。（{reason}）"


def refusal_field(reason: str, name: str) -> str:
    if name == "report_progress" and "indicator" in reason:
        return "percent"
    return next((f for word, f in _REFUSAL_FIELDS if word in reason), "")
