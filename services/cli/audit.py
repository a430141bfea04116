"""policyflow audit commands: export the ledger from the audit service, verify an export offline.

`verify` exit codes: 0 the bundle is intact; 1 it was tampered with (the first bad entry is
named by line and ledger_seq); 2 it cannot be checked (missing files, unreadable key...).
`export` exits 2 when the service cannot be reached or refuses the token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from services.audit.export import (
    BundleError,
    export_bundle,
    export_evidence,
    open_bundle,
    verify_bundle,
    verify_evidence,
)

app = typer.Typer(no_args_is_help=True, help="audit commands")
DEFAULT_URL = "http://127.0.0.1:8103"
DEFAULT_PROGRESS_URL = "http://127.0.0.1:8102"


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _progress(*columns: object) -> Progress:
    # On stderr, so stdout stays a clean one-line result; rich hides the bar when not a terminal.
    return Progress(TextColumn("{task.description}"), BarColumn(), *columns, console=Console(stderr=True))  # type: ignore[arg-type]


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="directory to write ledger.jsonl, checkpoints and key into")],
    url: Annotated[str | None, typer.Option(help="audit service [env POLICYFLOW_AUDIT_URL]")] = None,
    token: Annotated[str | None, typer.Option(help="bearer token [env POLICYFLOW_TOKEN]")] = None,
    evidence: Annotated[
        bool, typer.Option("--evidence", help="also fetch every evidence file the reports name (progress service)")
    ] = False,
    progress_url: Annotated[str | None, typer.Option(help="progress service [env POLICYFLOW_PROGRESS_URL]")] = None,
) -> None:
    """Download the whole ledger (JSONL), the signed checkpoints and the public key (and the evidence files)."""
    base = url or os.environ.get("POLICYFLOW_AUDIT_URL") or DEFAULT_URL
    bearer = token or os.environ.get("POLICYFLOW_TOKEN")
    if not bearer:
        _fail("no token: set POLICYFLOW_TOKEN (an auditor's or supervisor's) or pass --token")
    headers = {"Authorization": f"Bearer {bearer}"}
    try:
        timeout = httpx.Timeout(30, read=120)
        with (
            httpx.Client(base_url=base, headers=headers, timeout=timeout) as client,
            _progress(MofNCompleteColumn(), TimeRemainingColumn()) as bar,
        ):
            task = bar.add_task("exporting", total=None)
            manifest = export_bundle(client, directory, lambda n, total: bar.update(task, completed=n, total=total))
    except httpx.HTTPStatusError as exc:
        detail = exc.response.text[:300].strip()
        _fail(f"{exc.request.method} {exc.request.url.path}: HTTP {exc.response.status_code} {detail}")
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the audit service at {base}: {exc}")
    except OSError as exc:
        _fail(f"cannot write {directory}: {exc.strerror}")
    typer.echo(
        f"exported {manifest['entries']} entries and {manifest['checkpoints']} checkpoints "
        f"(latest covers {manifest['latest_checkpoint']}) to {directory}"
    )
    if evidence:
        _export_evidence(directory, progress_url or os.environ.get("POLICYFLOW_PROGRESS_URL") or DEFAULT_PROGRESS_URL,
                         headers)  # fmt: skip


def _export_evidence(directory: Path, base: str, headers: dict[str, str]) -> None:
    try:
        with (
            httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(30, read=120)) as client,
            _progress(MofNCompleteColumn(), TimeRemainingColumn()) as bar,
        ):
            task = bar.add_task("evidence", total=None)
            found = export_evidence(client, directory, lambda n, total: bar.update(task, completed=n, total=total))
    except httpx.HTTPStatusError as exc:
        detail = exc.response.text[:300].strip()
        _fail(f"{exc.request.method} {exc.request.url.path}: HTTP {exc.response.status_code} {detail}")
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the progress service at {base}: {exc}")
    except OSError as exc:
        _fail(f"cannot write {directory}: {exc.strerror}")
    typer.echo(f"exported {len(found['files'])} evidence files to {directory / 'evidence'}")
    for u in found["unavailable"]:
        typer.echo(f"warning: evidence {u['name']} ({u['sha256']}) not exported: {u['reason']}", err=True)


@app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="a directory written by `policyflow audit export`")],
    public_key: Annotated[
        Path | None, typer.Option(help="checkpoint public key obtained out of band (default: the bundle's)")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="also re-canonicalise every event (RFC 8785) and compare it with the stored bytes")
    ] = False,
) -> None:
    """Check an export offline: the hash chain, each checkpoint's Merkle root and signature, and the
    evidence files (when exported with them) against the hashes the reports name."""
    try:
        bundle = open_bundle(directory, public_key)  # before the bar: an unusable input is one clean line
        with _progress(DownloadColumn(), TimeRemainingColumn()) as bar:
            task = bar.add_task("verifying", total=bundle.ledger.stat().st_size)
            result = verify_bundle(bundle, lambda n: bar.advance(task, n), strict=strict)
    except BundleError as exc:
        _fail(str(exc))
    if not result.ok:
        where = f"line {result.line} (ledger_seq {result.ledger_seq})" if result.line else "checkpoints.json"
        typer.echo(f"TAMPERED: {where}: {result.reason}", err=True)
        raise typer.Exit(1)
    tail = f"; {result.unsigned_tail} newer entries are chained but not yet signed" if result.unsigned_tail else ""
    files = verify_evidence(directory)
    if files is not None:
        for line in files.unavailable:
            typer.echo(f"warning: {line} (not in the bundle)", err=True)
        if files.problems:
            for line in files.problems:
                typer.echo(f"TAMPERED: {line}", err=True)
            raise typer.Exit(1)
        tail += f"; {files.checked} evidence files match their hashes"
    typer.echo(
        f"OK{' (strict)' if strict else ''}: {result.count} entries, head {result.head}, "
        f"{result.checkpoints_checked} signed checkpoints match (latest covers {result.latest_checkpoint}){tail}"
    )
