"""The `policyflow` command: a client over the HTTP APIs, plus local helpers."""

from __future__ import annotations

import typer

from services.cli import admin, audit, ops, programme

app = typer.Typer(no_args_is_help=True, help="policyflow: supervised, auditable implementation of a government plan.")
app.add_typer(programme.app, name="programme", help="Parse and import programmes from policy text.")
app.add_typer(audit.app, name="audit", help="Auditors: export and verify the ledger.")
app.add_typer(admin.app, name="admin", help="Operators: rebuild read models.")
ops.register(app) if hasattr(ops, "register") else None

if __name__ == "__main__":
    app()
