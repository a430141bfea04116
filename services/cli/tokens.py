"""`policyflow token issue`: a dev token for the local stack, signed with the local key."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import typer

from contracts.base import UserRole
from services.shared.auth import HUMAN_ROLES, AuthError, issue_token

app = typer.Typer(no_args_is_help=True, help="Issue dev tokens for the local stack.")


def default_key_dir() -> Path:
    """Where the local stack keeps its signing key: POLICYFLOW_KEY_DIR, else $POLICYFLOW_VAR/keys."""
    if os.environ.get("POLICYFLOW_KEY_DIR"):
        return Path(os.environ["POLICYFLOW_KEY_DIR"])
    return Path(os.environ.get("POLICYFLOW_VAR", "var")) / "keys"


@app.command("issue")
def issue(
    role: str = typer.Option(..., "--role", help="department, supervisor, verifier or auditor"),
    unit: str | None = typer.Option(None, "--unit", help="unit id; required for department"),
    sub: str | None = typer.Option(None, "--sub", help="subject (person) named in the token"),
    hours: float = typer.Option(12.0, "--hours", min=0.01, max=24 * 366, help="validity"),
    key_dir: Path = typer.Option(
        None, "--key-dir", help="signing key directory [default: $POLICYFLOW_KEY_DIR or $POLICYFLOW_VAR/keys]"
    ),
) -> None:
    """Print one token alone on stdout."""
    roles = {r.value: r for r in HUMAN_ROLES}
    if role not in roles:
        typer.echo(f"error: unknown role {role!r}; choose one of {', '.join(roles)}", err=True)
        raise typer.Exit(2)
    directory = key_dir or default_key_dir()
    try:
        token = issue_token(directory, UserRole(role), unit_id=unit, sub=sub, ttl=dt.timedelta(hours=hours))
    except AuthError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(token)
