"""`policyflow show`: one assignment as a person reads it: where it stands, its deadlines in words,
the plan (milestones, indicator targets, a returned plan's reasons), the latest report (indicator
values, evidence files), the last verification (findings, rework due) and a lead's summary (汇总).
"""

from __future__ import annotations

from typing import Any

from contracts import labels
from services.cli.common import console, deadline_text, escape, lang, light, stage_text, t


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _block(title: str, lines: list[str]) -> None:
    console().print(f"[bold]{title}[/bold]")
    for line in lines:
        console().print(f"  {line}")


def _plan(plan: dict[str, Any]) -> None:
    status = labels.plan_status(str(plan.get("status")), lang())
    title = t(f"{plan.get('year')}年度计划（第{plan.get('revision')}版，{status}）",
              f"annual plan {plan.get('year')} (revision {plan.get('revision')}, {status})")  # fmt: skip
    lines = [f"{m['due']}  {escape(m['title'])}" for m in plan.get("milestones", [])]
    for i in plan.get("indicators", []):
        lines.append(t("指标", "indicator") + f" {escape(i['name'])}: {i['target']:g}{escape(i.get('unit') or '')}")
    if plan.get("reasons"):
        lines.append(f"[yellow]{t('退回原因', 'returned because')}: {escape(str(plan['reasons']))}[/yellow]")
    _block(title, lines)


def _report(r: dict[str, Any]) -> None:
    when = labels.period(str(r["period"]), lang())
    title = t(f"最近一次进展填报：{when}，完成 {r['percent']:g}%", f"latest report: {when}, {r['percent']:g}% done")
    lines = [escape(r["narrative"])]
    lines += [f"{escape(v['name'])} = {v['value']:g}" for v in r.get("indicator_values", [])]
    for e in r.get("evidence", []):
        lines.append(
            f"{t('佐证材料', 'evidence')} {escape(e['name'])} ({_size(int(e['size']))}, sha256 {e['sha256'][:12]}…)"
        )
    _block(title, lines)


def _verification(v: dict[str, Any]) -> None:
    title = t(f"{v['year']}年度核验：", f"verification {v['year']}: ") + labels.verdict(str(v["decision"]), lang())
    lines = [f"{t('核验意见', 'findings')}: {escape(v['findings'])}"] if v.get("findings") else []
    if v.get("rework_due"):
        lines.append(f"[yellow]{t('整改期限', 'rework due')}: {v['rework_due']}[/yellow]")
    _block(title, lines)


def _summary(s: dict[str, Any]) -> None:
    title = t(
        f"牵头单位{s['year']}年度汇总（第{s['revision']}版）", f"lead's summary {s['year']} (revision {s['revision']})"
    )
    _block(title, [escape(s["text"])])


def show(d: dict[str, Any]) -> None:
    out = console()
    out.print(
        f"[bold]{d['assignment_id']}[/bold]  {t('任务', 'task')} {d['task_no']} {escape(d.get('task_title', ''))}"
    )
    role = labels.role(d["role"], lang())
    out.print(
        t(
            f"{d['unit_id']}（{role}），{d['year']}年度 {stage_text(d['stage'])}，完成 {d.get('percent', 0):g}%，"
            f"{light(d['overdue_level'])}，实施期至 {d['horizon_year']} 年",
            f"unit {d['unit_id']} ({role}), {stage_text(d['stage'])} for {d['year']} (horizon {d['horizon_year']}), "
            f"{d.get('percent', 0):g}% done, {light(d['overdue_level'])}",
        )
    )
    out.print(f"{t('下一步', 'next')}: {labels.next_step(d['stage'], lang())}")
    if d.get("deadlines"):
        _block(t("期限", "deadlines"), [deadline_text(dl) for dl in d["deadlines"]])
    if d.get("plan"):
        _plan(d["plan"])
    if d.get("last_report"):
        _report(d["last_report"])
    if d.get("last_verification"):
        _verification(d["last_verification"])
    if d.get("summary"):
        _summary(d["summary"])
    counts = t("，", ", ").join(f"{labels.count(k, lang())} {v}" for k, v in d.get("counts", {}).items())
    out.print(f"[dim]{counts}; workflow {d['workflow_id']}[/dim]")
