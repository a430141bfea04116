"""`policyflow docs export DIR`: the services' OpenAPI documents and the event stream's AsyncAPI document.

Both are generated from the code: OpenAPI from each service's FastAPI app (built, never started),
AsyncAPI by faststream from a NATS broker description with one publisher per fact type on
`pf.events.<programme>.<unit>.<Type>` and the durable consumers that read the stream. The output
is deterministic (sorted where a generator's order is not), so a test can compare it with the
committed files and fail when they drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from services.shared.asyncapi import asyncapi_document

app = typer.Typer(no_args_is_help=True, help="Generated API documents.")

SERVICES = ("assignment", "progress", "audit", "notify")


def openapi_documents() -> dict[str, dict[str, Any]]:
    """service name -> OpenAPI document of its app (the apps are built, not started)."""
    from services.assignment.app import create_app as assignment_app
    from services.audit.app import create_app as audit_app
    from services.notify.app import create_app as notify_app
    from services.progress.app import create_app as progress_app

    return {
        "assignment": assignment_app().openapi(),
        "progress": progress_app().openapi(),
        "audit": audit_app().openapi(),
        "notify": notify_app().openapi(),
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def documents() -> dict[str, str]:
    """Relative path -> file text, exactly as committed under docs/."""
    out = {f"openapi/{name}.json": render(doc) for name, doc in openapi_documents().items()}
    out["asyncapi.json"] = render(asyncapi_document())
    return out


@app.command("export")
def export(directory: Annotated[Path, typer.Argument(help="where to write, e.g. docs")]) -> None:
    """Write DIR/openapi/{assignment,progress,audit,notify}.json and DIR/asyncapi.json."""
    for rel, text in documents().items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {path}")


@app.command("check")
def check(directory: Annotated[Path, typer.Argument(help="where the committed documents are")]) -> None:
    """Exit 1 when a committed document differs from what the code generates."""
    stale = [
        rel
        for rel, text in documents().items()
        if not (directory / rel).exists() or (directory / rel).read_text(encoding="utf-8") != text
    ]
    for rel in stale:
        typer.echo(f"stale: {directory / rel} (run `make docs`)", err=True)
    if stale:
        raise typer.Exit(1)
    typer.echo("docs are up to date")
