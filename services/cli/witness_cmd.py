"""`policyflow witness serve` runs a witness (c2sp.org/tlog-witness) that cosigns the audit log's
checkpoints; `policyflow witness key` prints its verifier key (name+keyid+base64), which the audit
service (WITNESS_KEYS) and auditors (`audit verify --witness-key`) configure.

Settings come from the environment as `python -m services.witness` reads them (WITNESS_PORT,
WITNESS_LOG_KEYS, WITNESS_KEY_DIR, WITNESS_DATABASE_URL, WITNESS_NAME); an option overrides one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from services.cli.answers import answer, refuse
from services.cli.common import AsJson, t

app = typer.Typer(no_args_is_help=True, help="A witness that cosigns the audit log's checkpoints (C2SP tlog-witness).")

KeyDir = Annotated[
    Path | None,
    typer.Option("--key-dir", help="its own key directory [default: $WITNESS_KEY_DIR or $POLICYFLOW_VAR/witness/keys]"),
]
Name = Annotated[
    str | None, typer.Option("--name", help="its key name [default: $WITNESS_NAME or policyflow.local/witness]")
]


def _settings(as_json: bool, **overrides: Any) -> Any:
    from services.witness.settings import WitnessSettings

    try:
        return WitnessSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        reasons = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise refuse(t(f"见证人设置有误：{reasons}", f"witness settings: {reasons}"), as_json, 2) from None


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="port [default: $WITNESS_PORT or 8105]")] = None,
    host: Annotated[str | None, typer.Option(help="address [default: $WITNESS_HOST, $HOST or 127.0.0.1]")] = None,
    log_key: Annotated[
        list[str] | None,
        typer.Option(help="a log's verifier key name+keyid+base64 to witness (repeat) [default: $WITNESS_LOG_KEYS]"),
    ] = None,
    key_dir: KeyDir = None,
    name: Name = None,
    as_json: AsJson = False,
) -> None:
    """Run the witness in the foreground (JSON log lines on stderr) until Ctrl-C; with --json a setting
    it cannot use is one JSON line on stderr."""
    import uvicorn

    from services.shared.logging import configure_logging
    from services.witness.app import create_app

    settings = _settings(
        as_json, port=port, host=host, key_dir=key_dir, name=name, log_keys=",".join(log_key) if log_key else None
    )
    configure_logging(json=True, level=settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


@app.command()
def key(key_dir: KeyDir = None, name: Name = None, as_json: AsJson = False) -> None:
    """Print the witness's verifier key (made on first use) alone on stdout."""
    from services.witness.cosigner import Cosigner

    settings = _settings(as_json, key_dir=key_dir, name=name)
    try:
        cosigner = Cosigner(settings.keys, settings.name)
    except (OSError, ValueError) as exc:
        raise refuse(t(f"无法读取见证人密钥：{exc}", f"cannot read the witness key: {exc}"), as_json, 2) from None
    if as_json:
        answer({"name": cosigner.name, "verifier_key": cosigner.vkey, "key_dir": str(settings.keys)})
    else:
        typer.echo(cosigner.vkey)
