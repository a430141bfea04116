"""`policyflow contracts export DIR`: JSON Schema of every event and API body.

Exit codes: 0 written; 1 DIR cannot be written. With `--json` the answer is
`{"directory": ..., "count": n, "written": [paths]}` and an error is one line
`{"error": ..., "status": 0}` on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from contracts import api, commands
from contracts.events import FACT_TYPES, Event
from services.cli.answers import answer, refuse
from services.cli.common import AsJson

app = typer.Typer(no_args_is_help=True, help="Contracts for non-Python consumers.")


def schemas() -> dict[str, dict[str, Any]]:
    """name -> JSON Schema, for the envelope, each fact, each command and each API body."""
    out: dict[str, dict[str, Any]] = {"events/Event": Event.model_json_schema()}
    for type_, cls in FACT_TYPES.items():
        schema = cls.model_json_schema()
        schema["x-event-type"], schema["x-schema-version"] = type_, cls.SCHEMA_VERSION
        out[f"events/{type_}"] = schema
    for module, folder in ((api, "api"), (commands, "commands")):
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__:
                if getattr(obj, "__pydantic_generic_metadata__", {}).get("parameters"):
                    continue  # generic Page[T]: concrete pages appear inside each body
                out[f"{folder}/{name}"] = obj.model_json_schema()
    return out


@app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="where to write, e.g. build/schemas")], as_json: AsJson = False
) -> None:
    """Write one JSON Schema file per model under DIR/events, DIR/api, DIR/commands."""
    written: list[str] = []
    for name, schema in schemas().items():
        path = directory / f"{name}.schema.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:
            raise refuse(f"cannot write {exc.filename or path}: {exc.strerror}", as_json, 1) from exc
        written.append(str(path))
    if as_json:
        answer({"directory": str(directory), "count": len(written), "written": written})
    else:
        typer.echo(f"wrote {len(written)} schemas to {directory}")
