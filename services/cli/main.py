"""The `policyflow` command: a client over the HTTP APIs, plus local helpers."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli import (
    access_cmd,
    admin,
    audit,
    calendar,
    changes_cmd,
    common,
    contracts_cmd,
    docs_cmd,
    evidence,
    export_cmd,
    login,
    ops,
    programme,
    schedule_cmd,
    tokens,
    users,
    witness_cmd,
)

app = typer.Typer(
    no_args_is_help=True,
    help="policyflow: supervised, auditable implementation of a government plan.\n\n"
    "Words are Chinese unless --lang en (or POLICYFLOW_LANG=en). With --json a command prints its JSON answer, "
    'and an error as {"error": ..., "status": ...} on stderr; any error exits non-zero.',
)


@app.callback()
def _options(
    lang: Annotated[
        str | None,
        typer.Option("--lang", envvar="POLICYFLOW_LANG", help="zh (default) or en: the words of tables and answers"),
    ] = None,
) -> None:
    if lang is not None and lang not in ("zh", "en"):
        raise typer.BadParameter("choose zh or en", param_hint="--lang")
    common.set_lang(lang)


app.add_typer(programme.app, name="programme", help="Parse, check and import programmes from policy text.")
app.add_typer(tokens.app, name="token", help="Issue dev tokens for the local stack.")
app.add_typer(users.app, name="users", help="Accounts for signing in with a password (on the progress host).")
app.command("login", help="Sign in (password, or the single sign-on provider in the browser); keep the token.")(
    login.login
)
app.add_typer(contracts_cmd.app, name="contracts", help="Export contracts as JSON Schema.")
app.add_typer(audit.app, name="audit", help="Auditors: export and verify the ledger; read the access log.")
audit.app.command("access")(access_cmd.access)
app.add_typer(evidence.app, name="evidence", help="Evidence files (佐证材料): upload, list, download.")
app.add_typer(admin.app, name="admin", help="Operators: rebuild read models, back up and restore.")
app.add_typer(
    export_cmd.app, name="export", help="Views as .xlsx or .csv files: status, summaries, indicators, scores."
)
app.command("bulletin", help="The 督查通报 of a quarter or a year as a PDF (or --format docx).")(export_cmd.bulletin)
app.add_typer(calendar.app, name="calendar", help="The working calendar (放假安排): publish a year, show it.")
app.add_typer(
    witness_cmd.app, name="witness", help="A witness that cosigns the audit log's checkpoints (C2SP tlog-witness)."
)
app.add_typer(
    schedule_cmd.app, name="schedule", help="The programme's calendar schedule: show, pause, trigger, backfill."
)
app.add_typer(docs_cmd.app, name="docs", help="Export the generated OpenAPI and AsyncAPI documents.")
ops.register(app)
changes_cmd.register(app)

if __name__ == "__main__":
    app()
