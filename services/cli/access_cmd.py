"""`policyflow audit access`: the access log (who asked for what, allowed or refused, and why)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from services.cli import typed
from services.cli.client import Client, Config
from services.cli.common import AsJson, Token, console, emit, escape, handled, t


@handled
def access(
    who: Annotated[str | None, typer.Option("--who", help="a caller's subject (user name or token sub)")] = None,
    unit: Annotated[str | None, typer.Option(help="a unit id")] = None,
    service: Annotated[str | None, typer.Option(help="assignment, progress, audit or notify")] = None,
    refused: Annotated[bool, typer.Option("--refused", help="refusals only")] = False,
    since: Annotated[str | None, typer.Option(help="from this date or time, e.g. 2026-12-01")] = None,
    until: Annotated[str | None, typer.Option(help="before this date or time")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many, newest first")] = 50,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Auditors: the access log of every service, newest first (reads as well as commands)."""
    params: dict[str, Any] = {
        "sub": who,
        "unit_id": unit,
        "service": service,
        "refused": "true" if refused else None,
        "since": _moment(since, "--since"),
        "until": _moment(until, "--until"),
        "limit": limit,
    }
    with Client(Config.load(token)) as c:
        page = c.request("audit", "GET", "/v1/audit/access", params=params)
    emit(page, as_json, _table)


def _table(page: dict[str, Any]) -> None:
    table = Table(title=t(f"访问日志（共 {page['total']} 条）", f"access log ({page['total']} in all)"))
    for name in (t("时间", "at"), t("谁", "who"), t("服务", "service"), t("请求", "request"), t("结果", "answer"),
                 t("依据", "why")):  # fmt: skip
        table.add_column(name, overflow="fold")
    for r in page["items"]:
        who = " ".join(x for x in (r.get("sub") or "—", r.get("role") and f"({r['role']})") if x)
        answer = f"{r['status']} " + (t("允许", "allowed") if r["allowed"] else t("拒绝", "refused"))
        style = None if r["allowed"] else "red"
        table.add_row(r["at"][:19].replace("T", " "), escape(who), r["service"], escape(f"{r['method']} {r['path']}"),
                      answer, escape(r.get("why") or ""), style=style)  # fmt: skip
    console().print(table)


def _moment(text: str | None, option: str) -> str | None:
    """A date is that day's start in Beijing time; a time with its zone is passed on as written."""
    if text is None:
        return None
    if "T" in text or ":" in text:
        return text.strip()
    return f"{typed.date(text, option).isoformat()}T00:00:00+08:00"
