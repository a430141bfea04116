"""policyflow schedule: the programme's own calendar as a Temporal Schedule (督查通报 each quarter,
the year's 考核 scores snapshot, the five-year evaluation), shown, paused, run now or back-filled."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from services.cli.client import Client, Config
from services.cli.common import AsJson, Token, console, emit, escape, handled, t
from services.cli.errors import ApiError

app = typer.Typer(no_args_is_help=True, help="The programme's calendar schedule: bulletins, scores, evaluations.")
Programme = Annotated[str, typer.Argument(help="programme id, e.g. cq-2022-79")]
Reason = Annotated[str, typer.Option("--reason", help="why (kept with the schedule, shown by `show`)")]
KINDS = {"bulletin": ("督查通报", "bulletin"), "snapshot": ("考核得分定格", "scores snapshot"),
         "evaluation": ("五年评估开始", "evaluation opens")}  # fmt: skip


def _when(text: str) -> str:
    return dt.datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")


def _what(o: dict[str, Any]) -> str:
    zh, en = KINDS[o["kind"]]
    return t(f"{o['period']} {zh}", f"{en} {o['period']}")


def _show(s: dict[str, Any]) -> None:
    out = console()
    if not s["exists"]:
        pid = s["programme_id"]
        zh = f"方案 {pid} 尚无日程（下达任务时建立，或 policyflow schedule create）"
        out.print(t(zh, f"programme {pid} has no schedule yet (made at dispatch, or policyflow schedule create)"))
        return
    state = t("已暂停", "paused") if s["paused"] else t("运行中", "running")
    out.print(f"{escape(s['schedule_id'])}: {state}" + (f"（{escape(s['note'])}）" if s["note"] else ""))
    out.print(t(f"  {s['start_year']}–{s['end_year']} 年；五年评估：", f"  years {s['start_year']}–{s['end_year']}; "
                "evaluations: ") + ("、".join(str(y) for y in s["evaluation_years"]) or t("无", "none")))  # fmt: skip
    for o in s["next_due"]:
        out.print(t(f"  下次：{_when(o['due_at'])} {_what(o)}", f"  next: {_when(o['due_at'])} {_what(o)}"))
    if not s["next_due"] and not s["paused"]:
        out.print(t("  此后没有日期", "  no dates left"))
    recorded = s["recorded"]
    out.print(t(f"  已记录 {len(recorded)} 项", f"  recorded: {len(recorded)}") +
              (t("，最近：", ", latest: ") + escape(recorded[-1]) if recorded else ""))  # fmt: skip


def _due(answer: dict[str, Any]) -> None:
    due = answer["due"]
    if not due:
        console().print(
            t("这段时间没有到期的日期，不记录任何事项", "no dates fall due in that time; nothing is recorded")
        )
        return
    console().print(
        t(
            f"将记录 {len(due)} 项（已记录过的不再重复）：",
            f"{len(due)} to record (those recorded before are not again):",
        )
    )
    for o in due:
        console().print(f"  {_when(o['due_at'])} {_what(o)}")


@app.command()
@handled
def show(programme: Programme, token: Token = None, as_json: AsJson = False) -> None:
    """Whether the schedule runs or is paused, its next dates and what it has recorded."""
    with Client(Config.load(token)) as c:
        emit(c.request("assignment", "GET", f"/v1/programmes/{programme}/schedule"), as_json, _show)


@app.command()
@handled
def create(programme: Programme, token: Token = None, as_json: AsJson = False) -> None:
    """Make the schedule from the programme's calendar (dispatch does this), or bring it up to date."""
    with Client(Config.load(token)) as c:
        emit(c.request("assignment", "PUT", f"/v1/programmes/{programme}/schedule"), as_json, _show)


@app.command()
@handled
def pause(programme: Programme, reason: Reason = "", token: Token = None, as_json: AsJson = False) -> None:
    """Stop the schedule firing until unpaused (dates passed meanwhile are not run: backfill them)."""
    with Client(Config.load(token)) as c:
        answer = c.request("assignment", "POST", f"/v1/programmes/{programme}/schedule/pause", json={"reason": reason})
        emit(answer, as_json, _show)


@app.command()
@handled
def unpause(programme: Programme, reason: Reason = "", token: Token = None, as_json: AsJson = False) -> None:
    """Let the schedule fire again."""
    with Client(Config.load(token)) as c:
        path = f"/v1/programmes/{programme}/schedule/unpause"
        emit(c.request("assignment", "POST", path, json={"reason": reason}), as_json, _show)


@app.command()
@handled
def trigger(programme: Programme, token: Token = None, as_json: AsJson = False) -> None:
    """Run it now: it records the latest date due by now, if not recorded already."""
    with Client(Config.load(token)) as c:
        emit(c.request("assignment", "POST", f"/v1/programmes/{programme}/schedule/trigger"), as_json, _due)


@app.command()
@handled
def backfill(
    programme: Programme,
    start: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="first day, YYYY-MM-DD")],
    end: Annotated[dt.datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="last day, YYYY-MM-DD")],
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Run it for every date from --from to --to (China time) as if it fired then; each date is recorded once."""
    if end < start:
        raise ApiError(
            0, t(f"--to {end.date()} 早于 --from {start.date()}", f"--to {end.date()} is before --from {start.date()}")
        )
    body = {"from_date": start.date().isoformat(), "to_date": end.date().isoformat()}
    with Client(Config.load(token)) as c:
        answer = c.request("assignment", "POST", f"/v1/programmes/{programme}/schedule/backfill", json=body)
        emit(answer, as_json, _due)
