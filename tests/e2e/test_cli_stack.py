"""The `policyflow` command against the real stack: a supervisor imports and dispatches, a district works."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from typer.testing import CliRunner, Result

from contracts.ids import assignment_id
from services.cli.main import app
from tests.e2e.support import Stack, running_stack, small_programme, token
from tests.support.clock import china_today


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-cli-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("cli"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


async def run(stack: Stack, role: str, unit: str | None, *args: str) -> Result:
    """The CLI is synchronous and the services share this event loop: run it in a thread."""
    env = {
        "POLICYFLOW_ASSIGNMENT_URL": stack.assignment_url,
        "POLICYFLOW_PROGRESS_URL": stack.progress_url,
        "POLICYFLOW_TOKEN": token(stack.key_dir, role, unit),
        "POLICYFLOW_CONFIG": str(stack.tmp / "no-config.toml"),
        "COLUMNS": "200",
    }
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def errors(r: Result) -> list[str]:
    """The CLI's error lines (the in-process services' own log lines share the captured output)."""
    return [line for line in r.output.splitlines() if line.startswith("error: ")]


def json_out(r: Result) -> Any:
    """The CLI's --json document, without the in-process services' log lines (they start with a date)."""
    return json.loads("\n".join(line for line in r.stdout.splitlines() if not line[:1].isdigit()))


async def test_cli_walks_through_a_year(stack: Stack, tmp_path: Path) -> None:
    body = small_programme(start_year=china_today().year)
    pid = body.programme_id
    path = tmp_path / "programme.json"
    path.write_text(body.model_dump_json())
    r = await run(stack, "supervisor", None, "programme", "import", str(path))
    assert r.exit_code == 0 and f"imported {pid}" in r.output, r.output
    r = await run(stack, "supervisor", None, "dispatch", pid)
    assert r.exit_code == 0 and "started 7 assignments" in r.output, r.output

    aid = assignment_id(pid, 2, "wanzhou")
    r = await run(stack, "department", "wanzhou", "inbox")
    assert r.exit_code == 0 and aid in r.output, r.output
    r = await run(stack, "department", "wanzhou", "accept", aid, "--json")
    assert r.exit_code == 0 and json_out(r)["stage"] == "planning", r.output
    year = json_out(r)["year"]  # the workflow's, by the server's clock
    r = await run(stack, "department", "wanzhou", "accept", aid)
    refusal = f"error: 409 assignment is already accepted: stage is planning for {year}"
    assert r.exit_code == 1 and errors(r) == [refusal]
    r = await run(
        stack,
        "department",
        "wanzhou",
        "plan",
        "submit",
        aid,
        "--year",
        str(year),
        "--milestone",
        f"{year}-12-15:完成海绵城市建设任务",
        "--indicator",
        "达标面积占比:45:%",
    )
    assert r.exit_code == 0 and "plan_submitted" in r.output, r.output
    r = await run(stack, "department", "wanzhou", "review", aid, "approve")
    assert r.exit_code == 1 and errors(r)[0].startswith("error: 403 ")
    r = await run(stack, "supervisor", None, "review", aid, "approve", "--comment", "同意")
    assert r.exit_code == 0 and "implementing" in r.output, r.output
    r = await run(stack, "supervisor", None, "show", aid, "--json")
    assert r.exit_code == 0 and json_out(r)["stage"] == "implementing"

    for _ in range(100):  # the read model catches up within moments
        r = await run(stack, "supervisor", None, "status", "--unit", "wanzhou", "--json")
        if r.exit_code == 0 and json_out(r)["items"][0]["stage"] == "implementing":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(r.output)
    r = await run(stack, "supervisor", None, "status", "--programme", pid)
    assert r.exit_code == 0 and "status (7 of 7)" in r.output, r.output
