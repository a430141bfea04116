"""policyflow audit commands: export the ledger from the audit service, verify an export offline.

`verify` exit codes: 0 the bundle is intact; 1 it was tampered with (the first bad entry is
named by line and ledger_seq); 2 it cannot be checked (missing files, unreadable key...).
`export` exits 2 when the service cannot be reached or refuses the token.

With `--json`, `export` answers `{"directory", "manifest", "evidence"}` and `verify`
`{"ok", "strict", "entries", "head", "checkpoints", "latest_checkpoint", "unsigned_tail",
"witnessed", "witnesses", "first_bad", "evidence"}` on stdout (a tampered bundle: `"ok": false`, and the TAMPERED line
as `{"error": ..., "status": 0}` on stderr); an error is that JSON line on stderr (`status`: the
service's HTTP status when it refused, else 0), with the same exit codes. Progress bars and
warnings are on stderr.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from services.audit.export import (
    BundleError,
    BundleResult,
    EvidenceResult,
    export_bundle,
    export_evidence,
    open_bundle,
    parse_witness_keys,
    verify_bundle,
    verify_evidence,
)
from services.cli.answers import answer, error_line, refuse
from services.cli.common import AsJson, t

app = typer.Typer(no_args_is_help=True, help="audit commands")
DEFAULT_URL = "http://127.0.0.1:8103"
DEFAULT_PROGRESS_URL = "http://127.0.0.1:8102"


def _fail(message: str, as_json: bool, status: int = 0) -> NoReturn:
    raise refuse(message, as_json, 2, status)


def _progress(*columns: object, as_json: bool) -> Progress:
    # On stderr, so stdout stays a clean result. Rich still prints the last frame when stderr is not a
    # terminal: with --json that would precede the error line a program reads, so it is left out.
    console = Console(stderr=True)
    quiet = as_json and not console.is_terminal
    return Progress(TextColumn("{task.description}"), BarColumn(), *columns, console=console, disable=quiet)  # type: ignore[arg-type]


def _http_fail(exc: httpx.HTTPError, what: str, base: str, as_json: bool) -> NoReturn:
    if isinstance(exc, httpx.HTTPStatusError):
        detail = exc.response.text[:300].strip()
        message = f"{exc.request.method} {exc.request.url.path}: HTTP {exc.response.status_code} {detail}"
        _fail(message, as_json, exc.response.status_code)
    _fail(f"cannot reach the {what} service at {base}: {exc}", as_json)


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="directory to write ledger.jsonl, checkpoints and key into")],
    url: Annotated[str | None, typer.Option(help="audit service [env POLICYFLOW_AUDIT_URL]")] = None,
    token: Annotated[str | None, typer.Option(help="bearer token [env POLICYFLOW_TOKEN]")] = None,
    evidence: Annotated[
        bool, typer.Option("--evidence", help="also fetch every evidence file the reports name (progress service)")
    ] = False,
    progress_url: Annotated[str | None, typer.Option(help="progress service [env POLICYFLOW_PROGRESS_URL]")] = None,
    as_json: AsJson = False,
) -> None:
    """Download the whole ledger (JSONL), the signed checkpoints and the public key (and the evidence files)."""
    base = url or os.environ.get("POLICYFLOW_AUDIT_URL") or DEFAULT_URL
    bearer = token or os.environ.get("POLICYFLOW_TOKEN")
    if not bearer:
        _fail("no token: set POLICYFLOW_TOKEN (an auditor's or supervisor's) or pass --token", as_json)
    headers = {"Authorization": f"Bearer {bearer}"}
    try:
        timeout = httpx.Timeout(30, read=120)
        with (
            httpx.Client(base_url=base, headers=headers, timeout=timeout) as client,
            _progress(MofNCompleteColumn(), TimeRemainingColumn(), as_json=as_json) as bar,
        ):
            task = bar.add_task("exporting", total=None)
            manifest = export_bundle(client, directory, lambda n, total: bar.update(task, completed=n, total=total))
    except httpx.HTTPError as exc:
        _http_fail(exc, "audit", base, as_json)
    except OSError as exc:
        _fail(f"cannot write {directory}: {exc.strerror}", as_json)
    if not as_json:
        typer.echo(
            f"exported {manifest['entries']} entries and {manifest['checkpoints']} checkpoints "
            f"(latest covers {manifest['latest_checkpoint']}) to {directory}"
        )
    found = None
    if evidence:
        progress_base = progress_url or os.environ.get("POLICYFLOW_PROGRESS_URL") or DEFAULT_PROGRESS_URL
        found = _export_evidence(directory, progress_base, headers, as_json)
    if as_json:
        files = None if found is None else {"exported": len(found["files"]), "unavailable": found["unavailable"]}
        answer({"directory": str(directory), "manifest": manifest, "evidence": files})


def _export_evidence(directory: Path, base: str, headers: dict[str, str], as_json: bool) -> dict[str, Any]:
    try:
        with (
            httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(30, read=120)) as client,
            _progress(MofNCompleteColumn(), TimeRemainingColumn(), as_json=as_json) as bar,
        ):
            task = bar.add_task("evidence", total=None)
            found = export_evidence(client, directory, lambda n, total: bar.update(task, completed=n, total=total))
    except httpx.HTTPError as exc:
        _http_fail(exc, "progress", base, as_json)
    except OSError as exc:
        _fail(f"cannot write {directory}: {exc.strerror}", as_json)
    if not as_json:
        typer.echo(f"exported {len(found['files'])} evidence files to {directory / 'evidence'}")
    for u in found["unavailable"]:
        typer.echo(f"warning: evidence {u['name']} ({u['sha256']}) not exported: {u['reason']}", err=True)
    return found


@app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="a directory written by `policyflow audit export`")],
    public_key: Annotated[
        Path | None, typer.Option(help="checkpoint public key obtained out of band (default: the bundle's)")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="also re-canonicalise every event (RFC 8785) and compare it with the stored bytes")
    ] = False,
    witnesses: Annotated[
        int, typer.Option(min=0, help="require a checkpoint cosigned by this many witnesses (C2SP tlog-cosignature)")
    ] = 0,
    witness_key: Annotated[
        list[str] | None,
        typer.Option(
            help="a witness's verifier key name+keyid+base64 from out of band (repeat; default: the bundle's)"
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Check an export offline: the hash chain, each checkpoint's Merkle root and C2SP note signature,
    the witnesses' cosignatures (--witnesses N), and the evidence files (when exported with them)
    against the hashes the reports name."""
    try:
        bundle = open_bundle(directory, public_key)  # before the bar: an unusable input is one clean line
        keys = parse_witness_keys(witness_key) if witness_key else None
        with _progress(DownloadColumn(), TimeRemainingColumn(), as_json=as_json) as bar:
            task = bar.add_task("verifying", total=bundle.ledger.stat().st_size)
            result = verify_bundle(bundle, lambda n: bar.advance(task, n), strict, witnesses, keys)
    except BundleError as exc:
        _fail(str(exc), as_json)
    files = verify_evidence(directory) if result.ok else None  # a broken ledger names no files to trust
    if files is not None:
        for line in files.unavailable:
            typer.echo(f"warning: {line} (not in the bundle)", err=True)
    tampered = _tampered(result, files)
    if as_json:
        answer(verdict(result, files, strict))
        if tampered:
            error_line(f"TAMPERED: {tampered[0]}" + (f" (and {len(tampered) - 1} more)" if len(tampered) > 1 else ""))
    else:
        for line in tampered:
            typer.echo(f"TAMPERED: {line}", err=True)
    if tampered:
        raise typer.Exit(1)
    if witnesses and not result.witnessed:
        message = t(
            f"未见证：没有一个检查点带有 {witnesses} 个见证人的有效联署（C2SP tlog-cosignature）",
            f"NOT WITNESSED: no checkpoint carries valid cosignatures by {witnesses} witnesses (C2SP tlog-cosignature)",
        )
        if as_json:
            answer({**verdict(result, files, strict), "ok": False})
            error_line(message)
        else:
            typer.echo(message, err=True)
        raise typer.Exit(1)
    if not as_json:
        tail = f"; {result.unsigned_tail} newer entries are chained but not yet signed" if result.unsigned_tail else ""
        if files is not None:
            tail += f"; {files.checked} evidence files match their hashes"
        typer.echo(
            f"OK{' (strict)' if strict else ''}: {result.count} entries, head {result.head}, "
            f"{result.checkpoints_checked} signed checkpoints match (latest covers {result.latest_checkpoint}){tail}"
        )
        if result.witnessed:
            names = ", ".join(result.witnesses)
            typer.echo(
                t(
                    f"见证：前 {result.witnessed} 条记录的检查点有 {len(result.witnesses)} 个见证人联署（{names}）",
                    f"WITNESSED: the checkpoint of the first {result.witnessed} entries is cosigned by "
                    f"{len(result.witnesses)} witnesses ({names})",
                )
            )


def _where(result: BundleResult) -> str:
    return f"line {result.line} (ledger_seq {result.ledger_seq})" if result.line else "checkpoints.json"


def _tampered(result: BundleResult, files: EvidenceResult | None) -> list[str]:
    """What `verify` names as TAMPERED, in order: the ledger's first bad entry, else each bad evidence file."""
    if not result.ok:
        return [f"{_where(result)}: {result.reason}"]
    return list(files.problems) if files is not None else []


def verdict(result: BundleResult, files: EvidenceResult | None, strict: bool) -> dict[str, Any]:
    """`audit verify --json`: what the lines say, as data (evidence is null when not exported or not checked)."""
    first_bad = None
    if not result.ok:
        first_bad = {"line": result.line, "ledger_seq": result.ledger_seq, "where": _where(result),
                     "reason": result.reason}  # fmt: skip
    evidence = None
    if files is not None:
        evidence = {"checked": files.checked, "problems": files.problems, "unavailable": files.unavailable}
    return {
        "ok": not _tampered(result, files),
        "strict": strict,
        "entries": result.count,
        "head": result.head,
        "checkpoints": result.checkpoints_checked,
        "latest_checkpoint": result.latest_checkpoint,
        "unsigned_tail": result.unsigned_tail,
        "witnessed": result.witnessed,
        "witnesses": list(result.witnesses),
        "first_bad": first_bad,
        "evidence": evidence,
    }
