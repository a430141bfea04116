"""policyflow admin commands (operators; a supervisor token).

`policyflow admin rebuild-read-models` asks the progress service to drop its read model and
fold the whole event stream again, and follows the service's NDJSON progress lines with a
progress bar.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli import client
from services.cli.client import ApiError, Config

app = typer.Typer(no_args_is_help=True, help="admin commands")

TOKEN_HELP = "supervisor token (default: env POLICYFLOW_TOKEN, then the config file)"
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


def follow(lines: Any, console: Console) -> dict[str, Any]:
    """Drive a progress bar from NDJSON lines; return the summary line (or raise ApiError)."""
    summary: dict[str, Any] = {}
    with Progress(
        TextColumn("[bold]rebuilding read models"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
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
) -> None:
    """Drop the progress service's read model and rebuild it from the event stream."""
    config = Config.load(token)
    base = (url or config.urls["progress"]).rstrip("/")
    if not yes:
        typer.confirm(f"Drop and rebuild the read model of {base}? Status is partial until it ends", abort=True)
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    console = Console(stderr=True)
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(30.0, read=None), transport=client.TRANSPORT) as http,
            http.stream("POST", f"{base}/v1/admin/rebuild-read-models", headers=headers) as resp,
        ):
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, _detail(resp))
            summary = follow(resp.iter_lines(), console)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach the progress service at {base}: {exc}", err=True)
        raise typer.Exit(1) from exc
    except ApiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"rebuilt: {summary['messages']} events read, {summary['assignments']} assignments, "
        f"stream position {summary['position']}"
    )
