"""Smoke run of each benchmark's code path at tiny sizes (bench/): it runs against real servers and
writes a well-formed result. No timing is asserted; the figures themselves come from `make bench`.
A benchmark whose policyflow part has not landed is skipped with its reason. The benchmarks that
touch a service database run again with the services on PostgreSQL (`bench --db postgres`), and
the soak's short form (half a minute, a process killed every 10 s) must lose nothing acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import BENCHMARKS, run_one
from bench.stack import StackPool
from tests.databases import postgres_unavailable
from tests.support.requirements import require

KEYS = {"name", "raw_rate", "policyflow_rate", "unit", "ratio", "target_ratio", "quick", "extra"}


@pytest.fixture(scope="module")
async def pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StackPool]:
    shared = StackPool(tmp_path_factory.mktemp("bench"), shared=True)
    yield shared
    await shared.close()


@pytest.fixture(scope="module")
async def pg_pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StackPool]:
    require(await postgres_unavailable())
    shared = StackPool(tmp_path_factory.mktemp("bench-pg"), shared=True, db="postgres")
    yield shared
    await shared.close()


@pytest.mark.parametrize("name", BENCHMARKS)
async def test_benchmark_runs_and_writes_its_result(name: str, pool: StackPool, tmp_path: Path) -> None:
    await run_one(name, quick=True, keep=False, pool=pool, options={}, smoke=True, results_dir=tmp_path)
    check_result(tmp_path / f"{name}.json", name)


# The benchmarks whose own code reads or writes a service database (status_api only asks over HTTP).
ON_POSTGRES = ("audit_ingest", "replay_verify", "readmodel_lag")


@pytest.mark.postgres
@pytest.mark.parametrize("name", ON_POSTGRES)
async def test_benchmark_runs_on_postgres(name: str, pg_pool: StackPool, tmp_path: Path) -> None:
    await run_one(name, quick=True, keep=False, pool=pg_pool, options={}, smoke=True, results_dir=tmp_path)
    data = check_result(tmp_path / f"{name}.postgres.json", name)
    assert data["extra"]["db"] == "postgres"


@pytest.mark.postgres
@pytest.mark.timeout(600)
async def test_soak_short_form_loses_nothing(pool: StackPool, tmp_path: Path) -> None:
    require(await postgres_unavailable())
    await run_one("soak", quick=True, keep=False, pool=pool, options={}, smoke=True, results_dir=tmp_path)
    data = json.loads((tmp_path / "soak.json").read_text())
    extra = data["extra"]
    assert "error" not in extra, extra["error"]
    assert extra["db"] == "postgres"
    assert extra["commands"] > 0 and extra["kills"], extra["summary"]
    assert extra["ledger"]["acknowledged"] > 0
    assert extra["lost"] == 0, extra["ledger"]
    assert extra["ledger"]["ledger_entries"] == extra["ledger"]["ledger_distinct_event_ids"]
    assert extra["per_minute"] and extra["per_minute"][0]["command_p99_ms"] > 0
    assert extra["memory_mib"], "no memory samples"


def check_result(path: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    assert set(data) == KEYS
    assert data["name"] == name
    assert data["quick"] is True
    assert isinstance(data["unit"], str) and data["unit"]
    if "not_available" in data["extra"]:
        pytest.skip(data["extra"]["not_available"])
    assert "error" not in data["extra"], data["extra"]["error"]
    assert data["raw_rate"] > 0
    assert data["policyflow_rate"] > 0
    assert data["ratio"] == pytest.approx(data["policyflow_rate"] / data["raw_rate"], rel=1e-2)
    assert data["extra"]["machine"]["nproc"] >= 1
    return data
