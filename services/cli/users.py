"""`policyflow users add|list|disable|reset-password`: accounts of the embedded default.

Run on the host of the progress service: these write to its database directly (PROGRESS_DATABASE_URL,
else DATABASE_URL, else $POLICYFLOW_VAR/progress.sqlite, as the service reads it), so the first
admin can be made before anyone can sign in. A first or reset password is printed once and kept
only as an argon2id hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import typer

from services.cli.common import AsJson, escape, lang, t
from services.shared.auth import HUMAN_ROLES

if TYPE_CHECKING:  # sqlalchemy's asyncio half would slow every command's start
    from sqlalchemy.ext.asyncio import AsyncEngine

app = typer.Typer(no_args_is_help=True, help="Accounts for signing in with a password (the embedded default).")
T = TypeVar("T")
Supervises = typer.Option(
    None, "--supervises", help="supervised area, repeatable: unit:UNIT or task:PROGRAMME/N (none: city-wide)"
)


def _run(work: Callable[[AsyncEngine], Awaitable[T]], as_json: bool) -> T:
    from services.progress import accounts
    from services.progress.settings import ProgressSettings
    from services.progress.store import create_tables
    from services.shared.db import make_engine

    async def go() -> T:
        engine = make_engine(ProgressSettings().db_url())
        try:
            await create_tables(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        with contextlib.redirect_stdout(sys.stderr):  # the database's own log lines: stdout is the answer's
            return asyncio.run(go())
    except accounts.AccountError as exc:
        if as_json:
            sys.stderr.write(json.dumps({"error": str(exc), "status": 0}, ensure_ascii=False) + "\n")
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _password_said(name: str, password: str, as_json: bool, extra: dict[str, Any]) -> None:
    if as_json:
        typer.echo(json.dumps({"name": name, "password": password, **extra}, ensure_ascii=False))
        return
    typer.echo(
        t(f"用户 {name} 的密码（只显示这一次，请当面或经可靠渠道交给本人）：", f"password for {name} (shown once):")
    )
    typer.echo(password)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="user name (letters, digits, . _ @ -)"),
    role: str = typer.Option(..., "--role", help=", ".join(r.value for r in HUMAN_ROLES)),
    unit: str | None = typer.Option(None, "--unit", help="unit id; required for department"),
    supervises: list[str] | None = Supervises,
    programme: list[str] | None = typer.Option(
        None, "--programme", help="limit the account to this programme, repeatable (none: every programme)"
    ),
    as_json: AsJson = False,
) -> None:
    """Create an account and print its first password once."""
    from services.progress import accounts  # here: it would slow every other command's start

    scope, programmes = tuple(supervises or ()), tuple(programme or ())
    password = _run(lambda e: accounts.add_user(e, name, role, unit, scope, programmes), as_json)
    said = {"role": role, "unit_id": unit, "supervises": list(scope), "programmes": list(programmes)}
    _password_said(name, password, as_json, said)


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """Every account: role, unit, supervised area, whether disabled (never a password)."""
    from services.progress import accounts  # here: it would slow every other command's start

    rows = _run(accounts.list_users, as_json)
    if as_json:
        items = [
            {"name": a.name, "role": a.role, "unit_id": a.unit_id, "supervises": list(a.supervises),
             "programmes": list(a.programmes), "disabled": a.disabled, "created_at": a.created_at.isoformat()}
            for a in rows
        ]  # fmt: skip
        typer.echo(json.dumps({"items": items}, ensure_ascii=False))
        return
    if not rows:
        typer.echo(t("还没有账号：policyflow users add NAME --role admin", "no accounts yet"))
    for a in rows:
        state = t("已停用", "disabled") if a.disabled else ""
        area = ",".join(a.supervises) or ("全市" if lang() == "zh" and a.role == "supervisor" else "")
        progs = ",".join(a.programmes)
        typer.echo("\t".join(escape(x) for x in (a.name, a.role, a.unit_id or "", area, progs, state)).rstrip())


@app.command("disable")
def disable(name: str = typer.Argument(...), as_json: AsJson = False) -> None:
    """Stop the account signing in; its open sessions end at once."""
    from services.progress import accounts  # here: it would slow every other command's start

    ended = _run(lambda e: accounts.disable_user(e, name), as_json)
    revoked = _revoke(name, as_json)
    if as_json:
        typer.echo(json.dumps({"name": name, "disabled": True, "sessions_ended": ended, "tokens_revoked": revoked}))
    else:
        typer.echo(t(f"已停用 {name}，结束了 {ended} 个登录会话", f"disabled {name}; {ended} sessions ended"))


@app.command("reset-password")
def reset_password(name: str = typer.Argument(...), as_json: AsJson = False) -> None:
    """A new password, printed once; the account is enabled and unlocked, its sessions end."""
    from services.progress import accounts  # here: it would slow every other command's start

    password = _run(lambda e: accounts.reset_password(e, name), as_json)
    revoked = _revoke(name, as_json)
    _password_said(name, password, as_json, {"tokens_revoked": revoked})


def _revoke(name: str, as_json: bool) -> bool:
    """Refuse the tokens the account was given before now, in every service (services/shared/revocations.py).
    Without NATS they stay valid until they expire, which is said."""
    import nats.errors

    from services.progress.settings import ProgressSettings
    from services.shared.revocations import revoke

    settings = ProgressSettings()
    url = settings.nats_url
    passwords = settings.var_dir / "nats" / "passwords.env"
    if "NATS_URL" not in os.environ and passwords.is_file():  # the embedded default: its admin user
        from deploy.local.servers import nats_passwords, nats_user_url

        url = nats_user_url(urlsplit(url).port or 4333, "admin", nats_passwords(passwords.parent))
    try:
        asyncio.run(revoke(url, name))
    except (OSError, nats.errors.Error) as exc:
        hours = f"{settings.login_token_hours:g}"
        typer.echo(
            t(f"警告：无法连接 NATS（{settings.nats_url}），{name} 已领取的令牌在到期前（最长 {hours} 小时）仍然有效",
              f"warning: NATS at {settings.nats_url} could not be reached ({exc or type(exc).__name__}): the tokens "
              f"{name} already holds stay valid until they expire (at most {hours} h)"),
            err=True,
        )  # fmt: skip
        return False
    if not as_json:
        typer.echo(
            t(f"{name} 此前领取的令牌已在各服务作废", f"tokens issued to {name} before now are refused everywhere")
        )
    return True
