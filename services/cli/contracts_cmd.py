"""`policyflow contracts export DIR`: JSON Schema of every event and API body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from contracts import api, commands
from contracts.events import FACT_TYPES, Event

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
def export(directory: Path) -> None:
    """Write one JSON Schema file per model under DIR/events, DIR/api, DIR/commands."""
    written = 0
    for name, schema in schemas().items():
        path = directory / f"{name}.schema.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written += 1
    typer.echo(f"wrote {written} schemas to {directory}")
