"""Smoke run of each benchmark's code path at tiny sizes (bench/): it runs against real servers and
writes a well-formed result. No timing is asserted; the figures themselves come from `make bench`.
A benchmark whose policyflow part has not landed is skipped with its reason.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, run_one
from bench.stack import StackPool

KEYS = {"name", "raw_rate", "policyflow_rate", "unit", "ratio", "target_ratio", "quick", "extra"}


@pytest.fixture(scope="module")
async def pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StackPool]:
    shared = StackPool(tmp_path_factory.mktemp("bench"), shared=True)
    yield shared
    await shared.close()


@pytest.mark.parametrize("name", BENCHMARKS)
async def test_benchmark_runs_and_writes_its_result(name: str, pool: StackPool, tmp_path: Path) -> None:
    await run_one(name, quick=True, keep=False, pool=pool, options={}, smoke=True, results_dir=tmp_path)
    data = json.loads((tmp_path / f"{name}.json").read_text())
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
