"""What a CLI command printed, apart from the log lines of the services running in the same process
(their structlog lines share the captured stdout under CliRunner)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from typer.testing import CliRunner, Result

from services.cli.main import app
from tests.e2e.support import Stack, token

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def without_logs(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not LOG_LINE.match(line))


def json_answer(text: str) -> Any:
    """The one JSON document a `--json` command printed."""
    return json.loads(without_logs(text))


async def run_cli(stack: Stack, role: str, unit: str | None, *args: str) -> Result:
    """The CLI against a running stack as `role` (of `unit`). The CLI is synchronous and the services
    share this event loop: it runs in a thread."""
    env = {
        "POLICYFLOW_ASSIGNMENT_URL": stack.assignment_url,
        "POLICYFLOW_PROGRESS_URL": stack.progress_url,
        "POLICYFLOW_TOKEN": token(stack.key_dir, role, unit),
        "POLICYFLOW_CONFIG": str(stack.tmp / "no-config.toml"),
        "COLUMNS": "200",
    }
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def cli_errors(r: Result) -> list[str]:
    """The CLI's error lines (the in-process services' own log lines share the captured output)."""
    return [line for line in r.output.splitlines() if line.startswith("error: ")]
