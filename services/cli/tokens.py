"""`policyflow token issue`: a dev token for the local stack, signed with the local key.

`--save` keeps it in the CLI's config file (where `policyflow login` will keep a signed-in user's),
so that the commands after it use it without an environment variable; a token that cannot be
issued is an error and exit code 2, never an empty line on stdout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import jwt
import typer

from contracts.base import UserRole
from services.cli.client import save_token
from services.cli.common import AsJson, lang, t
from services.cli.errors import ApiError
from services.shared.auth import HUMAN_ROLES, AuthError, issue_token

app = typer.Typer(no_args_is_help=True, help="Issue dev tokens for the local stack.")


def default_key_dir() -> Path:
    """Where the local stack keeps its signing key: POLICYFLOW_KEY_DIR, else $POLICYFLOW_VAR/keys."""
    if os.environ.get("POLICYFLOW_KEY_DIR"):
        return Path(os.environ["POLICYFLOW_KEY_DIR"])
    return Path(os.environ.get("POLICYFLOW_VAR", "var")) / "keys"


def _refuse(message: str, as_json: bool) -> typer.Exit:
    if as_json:
        sys.stderr.write(json.dumps({"error": message, "status": 0}, ensure_ascii=False) + "\n")
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("issue")
def issue(
    role: str = typer.Option(..., "--role", help="department, supervisor, verifier, auditor or admin"),
    unit: str | None = typer.Option(None, "--unit", help="unit id; required for department"),
    supervises: list[str] = typer.Option(
        [],
        "--supervises",
        help="supervisor or verifier: the area, repeatable: unit:UNIT (a district's 督查室) or task:PROGRAMME/N "
        "(a lead department's task); none: city-wide",
    ),
    programmes: list[str] = typer.Option(
        [], "--programme", help="limit the token to this programme, repeatable; none: every programme"
    ),
    sub: str | None = typer.Option(None, "--sub", help="subject (person) named in the token"),
    hours: float = typer.Option(12.0, "--hours", min=0.01, max=24 * 366, help="validity"),
    key_dir: Path = typer.Option(
        None, "--key-dir", help="signing key directory [default: $POLICYFLOW_KEY_DIR or $POLICYFLOW_VAR/keys]"
    ),
    save: bool = typer.Option(
        False, "--save", help="keep it in the CLI's config file, which later commands read (instead of printing it)"
    ),
    as_json: AsJson = False,
) -> None:
    """Print one token alone on stdout, or keep it with --save."""
    roles = {r.value: r for r in HUMAN_ROLES}
    if role not in roles:
        raise _refuse(f"unknown role {role!r}; choose one of {', '.join(roles)}", as_json)
    directory = key_dir or default_key_dir()
    try:
        token = issue_token(
            directory,
            UserRole(role),
            unit_id=unit,
            sub=sub,
            ttl=dt.timedelta(hours=hours),
            supervises=tuple(supervises),
            programmes=tuple(programmes),
        )
        saved = save_token(token) if save else None
    except AuthError as exc:
        raise _refuse(str(exc), as_json) from exc
    except ApiError as exc:
        raise _refuse(exc.detail, as_json) from exc
    expires = dt.datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], dt.UTC)
    if as_json:
        answer = {
            "token": token,
            "role": role,
            "unit_id": unit,
            "supervises": supervises,
            "programmes": programmes,
            "expires_at": expires.isoformat(),
        }
        typer.echo(json.dumps({**answer, "saved_to": str(saved) if saved else None}, ensure_ascii=False))
    elif saved is None:
        typer.echo(token)
    if saved is not None and not as_json:
        who = " ".join([role, *([unit] if unit else []), *supervises, *programmes])
        until = expires.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
        said = t(f"已保存 {who} 的令牌到 {saved}，有效至 {until}（北京时间）", f"saved the token for {who} in {saved}")
        typer.echo(said if lang() == "zh" else f"{said}, valid until {until} (Beijing time)", err=True)
    if saved is not None and os.environ.get("POLICYFLOW_TOKEN"):
        typer.echo(
            t(
                "注意：本终端设置了 POLICYFLOW_TOKEN，它优先于保存的令牌；请先执行 `unset POLICYFLOW_TOKEN`",
                "note: POLICYFLOW_TOKEN is set in this shell and is used before the saved token: "
                "`unset POLICYFLOW_TOKEN`",
            ),
            err=True,
        )
