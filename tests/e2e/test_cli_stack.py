"""The `policyflow` command against the real stack: an admin imports and dispatches, a district works."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from typer.testing import Result

from contracts.ids import assignment_id
from tests.e2e.support import Stack, running_stack, small_programme
from tests.support.cli_output import cli_errors, run_cli
from tests.support.clock import china_today

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-cli-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("cli"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


def json_out(r: Result) -> Any:
    """The CLI's --json document, without the in-process services' log lines (they start with a date)."""
    return json.loads("\n".join(line for line in r.stdout.splitlines() if not line[:1].isdigit()))


async def test_cli_walks_through_a_year(stack: Stack, tmp_path: Path) -> None:
    body = small_programme(start_year=china_today().year)
    pid = body.programme_id
    path = tmp_path / "programme.json"
    path.write_text(body.model_dump_json())
    r = await run_cli(stack, "admin", None, "programme", "import", str(path))
    assert r.exit_code == 0 and f"imported {pid}" in r.output, r.output
    r = await run_cli(stack, "admin", None, "dispatch", pid)
    assert r.exit_code == 0 and "started 7 assignments" in r.output, r.output

    aid = assignment_id(pid, 2, "wanzhou")
    r = await run_cli(stack, "department", "wanzhou", "inbox")
    assert r.exit_code == 0 and aid in r.output, r.output
    r = await run_cli(stack, "department", "wanzhou", "accept", aid, "--json")
    assert r.exit_code == 0 and json_out(r)["stage"] == "planning", r.output
    year = json_out(r)["year"]  # the workflow's, by the server's clock
    r = await run_cli(stack, "department", "wanzhou", "accept", aid)
    refusal = f"error: 409 assignment is already accepted: stage is planning for {year}"
    assert r.exit_code == 1 and cli_errors(r) == [refusal]
    r = await run_cli(
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
    assert r.exit_code == 0 and "计划待审核" in r.output, r.output
    r = await run_cli(stack, "department", "wanzhou", "review", aid, "approve")
    assert r.exit_code == 1 and cli_errors(r)[0].startswith("error: 403 ")
    r = await run_cli(stack, "supervisor", None, "review", aid, "approve", "--comment", "同意")
    assert r.exit_code == 0 and "实施中" in r.output, r.output
    r = await run_cli(stack, "supervisor", None, "show", aid, "--json")
    assert r.exit_code == 0 and json_out(r)["stage"] == "implementing"

    for _ in range(100):  # the read model catches up within moments
        r = await run_cli(stack, "supervisor", None, "status", "--unit", "wanzhou", "--json")
        if r.exit_code == 0 and json_out(r)["items"][0]["stage"] == "implementing":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(r.output)
    r = await run_cli(stack, "supervisor", None, "status", "--programme", pid)
    assert r.exit_code == 0 and "任务进展 (7 / 共 7)" in r.output, r.output


def readme_journey() -> str:
    """The README's second-terminal commands, as written there."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text[text.index("Then, in another terminal") :]
    return re.search(r"```bash\n(.*?)```", after, re.DOTALL).group(1)  # type: ignore[union-attr]


async def test_the_readmes_commands_work_as_written(stack: Stack, tmp_path: Path) -> None:
    """Run in bash (stopping at the first failure) against this stack: the example's assignment and
    year become this programme's; nothing else is changed."""
    year = china_today().year
    body = small_programme(start_year=year)
    path = tmp_path / "programme.json"
    path.write_text(body.model_dump_json())
    for args in (["programme", "import", str(path)], ["dispatch", body.programme_id]):
        assert (await run_cli(stack, "admin", None, *args)).exit_code == 0
    aid = assignment_id(body.programme_id, 3, "yuzhong")
    script = readme_journey()
    assert "policyflow token issue --role department --unit yuzhong --save" in script
    script = script.replace("cq-2022-79.t14.yuzhong", aid).replace("2026", str(year))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYFLOW_") and k != "VIRTUAL_ENV"}
    env |= {
        "PATH": "/usr/bin:/bin",  # no uv, no .venv: what a fresh terminal has
        "POLICYFLOW_ASSIGNMENT_URL": stack.assignment_url,
        "POLICYFLOW_PROGRESS_URL": stack.progress_url,
        "POLICYFLOW_KEY_DIR": str(stack.key_dir),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "COLUMNS": "200",
    }
    done = await asyncio.to_thread(
        subprocess.run, ["bash", "-e", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert aid in out and "计划待审核" in out  # inbox, accept, plan submit
    shown = out[out.index(f"{aid}  任务 3") :]  # `show`, the last command
    for words in ("实施中", f"{year}年度计划（第1版，已通过）", "新建建筑绿色建筑占比评估", "指标 绿色建筑占比: 70%"):
        assert words in shown, shown
