"""One real stack (subprocesses on free ports, state in a temp dir) for the whole fault folder.

The `faults` marker is applied by folder (tests/conftest.py). Each test works on its own
programme, so its counts are its own even though the servers are shared; the kill test
leaves every process running again when it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import FaultStack


@pytest.fixture(scope="session")
async def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaultStack]:
    var_dir: Path = tmp_path_factory.mktemp("fault-stack")
    stack = FaultStack(var_dir)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60.0) as client:
        yield client
