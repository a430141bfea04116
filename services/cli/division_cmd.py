"""Changes to a running division from the command line (admins; reassignment: supervisors): a revised division shown
before it is applied (`programme import DIR` of a programme already imported, then `--apply`),
reassignment (`reassign`, 转办) and a unit added to a task (`programme add-unit`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from services.cli.client import Client, Config
from services.cli.common import AsJson, Assignment, Token, console, emit, escape, handled

ROLE_WORDS = {"lead": "牵头", "cooperating": "配合", "responsible": "负责"}


def revision_table(d: dict[str, Any]) -> Table:
    """One row per added, removed or changed assignment; a removed one with reports says how many."""
    held = {h["assignment_id"]: h["reports"] for h in d.get("removed_with_reports", [])}
    table = Table(title=f"{d['programme_id']} revision {d['revision']}")
    for column in ("", "assignment", "task", "unit", "role", "horizon", "note"):
        table.add_column(column)

    def role(value: str) -> str:
        return f"{ROLE_WORDS.get(value, value)} {value}"

    for a in d.get("added", []):
        table.add_row("[green]+ added[/]", a["assignment_id"], str(a["task_no"]), a["unit_id"], role(a["role"]),
                      str(a["horizon_year"]), "")  # fmt: skip
    for a in d.get("removed", []):
        note = f"[red]{held[a['assignment_id']]} reports: needs --force[/]" if a["assignment_id"] in held else ""
        table.add_row("[red]- removed[/]", a["assignment_id"], str(a["task_no"]), a["unit_id"], role(a["role"]),
                      str(a["horizon_year"]), note)  # fmt: skip
    for c in d.get("changed", []):
        b, a = c["before"], c["after"]
        roles = role(a["role"]) if a["role"] == b["role"] else f"{role(b['role'])} → {role(a['role'])}"
        years = str(a["horizon_year"]) if a["horizon_year"] == b["horizon_year"] else (
            f"{b['horizon_year']} → {a['horizon_year']}")  # fmt: skip
        table.add_row("[yellow]~ changed[/]", a["assignment_id"], str(a["task_no"]), a["unit_id"], roles, years, "")
    return table


def show_revision(d: dict[str, Any]) -> None:
    out = console()
    if d["state"] != "unchanged":
        out.print(revision_table(d))
    for warning in d.get("warnings", []):
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print(escape(d["message"]))


def revise(c: Client, body: dict[str, Any], apply: bool, force: bool, as_json: bool) -> None:
    """The difference first; applied only with `apply` (with the dry run's version, so nothing that
    changed in between is applied unseen)."""
    path = f"/v1/programmes/{body['programme_id']}/revisions"
    dry = c.request("assignment", "POST", path, json={"programme": body, "dry_run": True})
    if not apply or dry["state"] == "unchanged":
        if dry["state"] == "dry_run":
            dry = {**dry, "message": f"{dry['message']}: nothing applied; run again with --apply"
                   + (" --force" if dry["removed_with_reports"] else "")}  # fmt: skip
        emit(dry, as_json, show_revision)
        return
    applied = c.request("assignment", "POST", path, json={"programme": body, "dry_run": False,
                                                           "version": dry["version"], "force": force})  # fmt: skip
    emit(applied, as_json, show_revision)


@handled
def reassign(
    assignment: Assignment,
    to: Annotated[str, typer.Option("--to", help="the unit that takes the assignment over")],
    reason: Annotated[str, typer.Option(help="why (转办理由)")],
    carry_acceptance: Annotated[bool, typer.Option(help="the new unit starts accepted if the old one was")] = True,
    carry_plan: Annotated[bool, typer.Option(help="and with this year's approved plan, if any")] = True,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Supervisors: 转办 move an assignment to another unit; its history stays, linked to the new one."""
    body = {"to_unit": to, "reason": reason, "carry_acceptance": carry_acceptance, "carry_plan": carry_plan}
    with Client(Config.load(token), timeout=120) as c:
        data = c.request("assignment", "POST", f"/v1/assignments/{assignment}/reassign", json=body)

    def human(d: dict[str, Any]) -> None:
        console().print(f"{d['assignment_id']} → {d['reassigned_to']} ({d['to_unit']}), starts {d['starts']}")
        for aid in d["leads_updated"]:
            console().print(f"  lead updated for {aid}")

    emit(data, as_json, human)


@handled
def add_unit(
    programme_id: Annotated[str, typer.Argument(help="programme id")],
    task: Annotated[int, typer.Argument(help="task number")],
    unit: Annotated[str, typer.Argument(help="unit id")],
    reason: Annotated[str, typer.Option(help="why the unit joins the task")],
    role: Annotated[str, typer.Option(help="cooperating (default), lead or responsible")] = "cooperating",
    horizon_year: Annotated[int | None, typer.Option(help="default: the task lead's horizon")] = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Admins: a unit joins a task (a revision of one line, applied at once)."""
    body = {"unit_id": unit, "role": role, "horizon_year": horizon_year, "reason": reason}
    with Client(Config.load(token), timeout=120) as c:
        data = c.request("assignment", "POST", f"/v1/programmes/{programme_id}/tasks/{task}/units", json=body)
    emit(data, as_json, show_revision)
