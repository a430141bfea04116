"""policyflow admin commands (operators; an admin token).

`policyflow admin rebuild-read-models` asks the progress service to drop its read model and
fold the whole event stream again, and follows the service's NDJSON progress lines with a
progress bar (on stderr). Exit codes: 0 rebuilt; 1 refused, unreachable, stopped or not confirmed.
With `--json` the answer is the service's last line, `{"finished": true, "messages": n,
"position": p, "assignments": a}`, and an error is one line `{"error": ..., "status": ...}` on
stderr (status: the service's HTTP status, 0 when it was not reached or the rebuild stopped).
Without `--yes` the question is asked on stderr when `--json` is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli import client
from services.cli.answers import answer, refuse
from services.cli.backup_parts import BackupError
from services.cli.backup_place import Place
from services.cli.client import Config
from services.cli.common import AsJson
from services.cli.errors import ApiError

app = typer.Typer(no_args_is_help=True, help="admin commands")

TOKEN_HELP = "admin token (default: env POLICYFLOW_TOKEN, then the config file)"
URL_HELP = "progress service URL (default: env POLICYFLOW_PROGRESS_URL, then the config file)"
Token = Annotated[str | None, typer.Option("--token", help=TOKEN_HELP)]
Url = Annotated[str | None, typer.Option("--url", help=URL_HELP)]


def _detail(resp: httpx.Response) -> str:
    resp.read()
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason_phrase
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:300]


def follow(lines: Any, console: Console, quiet: bool = False) -> dict[str, Any]:
    """Drive a progress bar from NDJSON lines (none when `quiet`); return the summary line (or raise ApiError)."""
    summary: dict[str, Any] = {}
    with Progress(
        TextColumn("[bold]rebuilding read models"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=quiet,
    ) as bar:
        task = bar.add_task("rebuild", total=None)
        for raw in lines:
            if not raw.strip():
                continue
            item = json.loads(raw)
            if "error" in item:
                raise ApiError(0, str(item["error"]))
            if "done" in item and "finished" not in item:
                bar.update(task, completed=item["done"], total=item["total"] or 1)
            if item.get("finished"):
                n = int(item["messages"])
                bar.update(task, completed=n, total=n or 1)
                summary = item
    if not summary:
        raise ApiError(0, "the progress service stopped answering before the rebuild finished; run it again")
    return summary


@app.command("rebuild-read-models")
def rebuild_read_models(
    token: Token = None,
    url: Url = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    as_json: AsJson = False,
) -> None:
    """Drop the progress service's read model and rebuild it from the event stream."""
    config = Config.load(token)
    base = (url or config.urls["progress"]).rstrip("/")
    question = f"Drop and rebuild the read model of {base}? Status is partial until it ends"
    if not yes and as_json and not typer.confirm(question, err=True):
        raise refuse("not confirmed: nothing was rebuilt", as_json, 1)
    if not yes and not as_json:
        typer.confirm(question, abort=True)
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    console = Console(stderr=True)
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(30.0, read=None), transport=client.TRANSPORT) as http,
            http.stream("POST", f"{base}/v1/admin/rebuild-read-models", headers=headers) as resp,
        ):
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, _detail(resp))
            # With --json and no terminal, the bar's last frame would precede the error line a program reads.
            summary = follow(resp.iter_lines(), console, quiet=as_json and not console.is_terminal)
    except httpx.HTTPError as exc:
        raise refuse(f"cannot reach the progress service at {base}: {exc}", as_json, 1) from exc
    except ApiError as exc:
        raise refuse(exc.detail if as_json else str(exc), as_json, 1, exc.status) from exc
    if as_json:
        answer(summary)
        return
    typer.echo(
        f"rebuilt: {summary['messages']} events read, {summary['assignments']} assignments, "
        f"stream position {summary['position']}"
    )


VarDir = Annotated[
    Path | None, typer.Option("--var", help="the stack's state directory (default: env POLICYFLOW_VAR, then var)")
]


@app.command("backup")
def backup(
    target: Annotated[Path, typer.Argument(help="a new or empty directory for the backup")],
    var: VarDir = None,
    as_json: AsJson = False,
) -> None:
    """Back up the whole state while the stack runs: databases, Temporal, the event stream, evidence, keys."""
    from services.cli import backup as backups

    try:
        manifest = backups.make_backup(Place.from_env(var), target.resolve(), quiet=as_json)
    except BackupError as exc:
        raise refuse(f"backup failed: {exc}", as_json, 1) from exc
    if as_json:
        answer({k: manifest[k] for k in ("created_at", "parts", "notes")} | {"files": len(manifest["files"])})
        return
    stream = manifest["parts"]["stream"]
    typer.echo(
        f"backed up to {target}: {len(manifest['files'])} files, event stream to seq {stream['last_seq']}; "
        f"the keys are under {target / 'secret'}: keep them apart"
    )
    for note in manifest["notes"]:
        typer.echo(f"note: {note}")


@app.command("restore")
def restore(
    source: Annotated[Path, typer.Argument(help="a directory made by `policyflow admin backup`")],
    var: VarDir = None,
    as_json: AsJson = False,
) -> None:
    """Bring a backup back onto an empty var directory (or the configured, empty servers), after checking every hash."""
    from services.cli import backup as backups

    try:
        result = backups.restore_backup(source.resolve(), Place.from_env(var), quiet=as_json)
    except BackupError as exc:
        raise refuse(f"restore refused: {exc}", as_json, 1) from exc
    if as_json:
        answer(result)
        return
    typer.echo(
        f"restored into {result['restored']}: event stream to seq {result['stream'].get('last_seq')}. "
        "Start it with `make up`: every reader catches up from its own position; then run `policyflow audit verify`"
    )
    for note in result["notes"]:
        typer.echo(f"note: {note}")
