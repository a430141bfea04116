"""`policyflow docs export DIR`: the services' OpenAPI documents and the event stream's AsyncAPI document.

Both are generated from the code: OpenAPI from each service's FastAPI app (built, never started),
AsyncAPI by faststream from a NATS broker description with one publisher per fact type on
`pf.events.<programme>.<unit>.<Type>` and the durable consumers that read the stream. The output
is deterministic (sorted where a generator's order is not), so a test can compare it with the
committed files and fail when they drift.

Exit codes: 0 written / up to date; 1 a document is stale (`check`) or cannot be written or read.
With `--json`, `export` answers `{"directory": ..., "written": [paths]}` and `check`
`{"ok": bool, "directory": ..., "stale": [paths]}` (when stale, also the error line on stderr);
an error is one line `{"error": ..., "status": 0}` on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from services.cli.answers import answer, error_line, refuse
from services.cli.common import AsJson
from services.notify.asyncapi import asyncapi_document

app = typer.Typer(no_args_is_help=True, help="Generated API documents.")

SERVICES = ("assignment", "progress", "audit", "notify", "witness")


def openapi_documents() -> dict[str, dict[str, Any]]:
    """service name -> OpenAPI document of its app (the apps are built, not started)."""
    from services.assignment.app import create_app as assignment_app
    from services.audit.app import create_app as audit_app
    from services.notify.app import create_app as notify_app
    from services.progress.app import create_app as progress_app
    from services.witness.app import create_app as witness_app

    return {
        "assignment": assignment_app().openapi(),
        "progress": progress_app().openapi(),
        "audit": audit_app().openapi(),
        "notify": notify_app().openapi(),
        "witness": witness_app().openapi(),
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def documents() -> dict[str, str]:
    """Relative path -> file text, exactly as committed under docs/."""
    out = {f"openapi/{name}.json": render(doc) for name, doc in openapi_documents().items()}
    out["asyncapi.json"] = render(asyncapi_document())
    return out


@app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="where to write, e.g. docs")], as_json: AsJson = False
) -> None:
    """Write DIR/openapi/{assignment,progress,audit,notify,witness}.json and DIR/asyncapi.json."""
    written: list[str] = []
    for rel, text in documents().items():
        path = directory / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise refuse(f"cannot write {exc.filename or path}: {exc.strerror}", as_json, 1) from exc
        written.append(str(path))
        if not as_json:
            typer.echo(f"wrote {path}")
    if as_json:
        answer({"directory": str(directory), "written": written})


def _differs(path: Path, text: str, as_json: bool) -> bool:
    try:
        return not path.exists() or path.read_text(encoding="utf-8") != text
    except (OSError, UnicodeDecodeError) as exc:
        raise refuse(f"cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}", as_json, 1) from exc


@app.command("check")
def check(
    directory: Annotated[Path, typer.Argument(help="where the committed documents are")], as_json: AsJson = False
) -> None:
    """Exit 1 when a committed document differs from what the code generates."""
    stale = [str(directory / rel) for rel, text in documents().items() if _differs(directory / rel, text, as_json)]
    if as_json:
        answer({"ok": not stale, "directory": str(directory), "stale": stale})
        if stale:
            error_line(f"{len(stale)} document(s) stale: {', '.join(stale)} (run `make docs`)")
    else:
        for path in stale:
            typer.echo(f"stale: {path} (run `make docs`)", err=True)
    if stale:
        raise typer.Exit(1)
    if not as_json:
        typer.echo("docs are up to date")
