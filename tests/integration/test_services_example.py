"""The shipped example programme (渝府办发〔2022〕79号, example division) imports and dispatches in full."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from services.assignment.programme_dir import load_programme_dir
from tests.e2e.support import Stack, get_json, running_stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cq-2022-79"


@pytest.fixture
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-ex-{uuid.uuid4().hex[:8]}"
    # No worker: this measures import and dispatch; the workflows wait on their own task queue.
    async with running_stack(
        tmp_path_factory.mktemp("ex"), nats_url, temporal_client, temporal_address, tq, worker=False
    ) as s:
        yield s


@pytest.mark.skipif(not (EXAMPLE / "policy.txt").exists(), reason="examples/cq-2022-79 is not there")
async def test_example_programme_imports_and_dispatches_every_responsibility(stack: Stack) -> None:
    body = load_programme_dir(EXAMPLE, programme_id=f"cq-{uuid.uuid4().hex[:8]}")
    n = len(body.division.responsibilities)
    assert n > 1000
    sup = stack.headers("supervisor")
    async with httpx.AsyncClient(timeout=120) as c:
        r = await c.post(
            f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=stack.headers("admin")
        )
        assert r.status_code == 200, r.text
        assert (r.json()["task_count"], r.json()["responsibility_count"]) == (30, n)
        started = time.monotonic()
        r = await c.post(
            f"{stack.assignment_url}/v1/programmes/{body.programme_id}/dispatch", headers=stack.headers("admin")
        )
        took = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert (r.json()["started"], r.json()["skipped"]) == (n, 0)
        units = await get_json(c, f"{stack.assignment_url}/v1/units", sup, limit=500)
        assert units["total"] == len(body.units)
        district = next(u["unit_id"] for u in units["items"] if u["kind"] == "district")
        inbox = await get_json(c, f"{stack.assignment_url}/v1/units/{district}/assignments", sup, limit=500)
        assert inbox["total"] == sum(1 for x in body.division.responsibilities if x.unit_id == district)
    # The bound is the dev server's SQLite-backed start rate (~25-45 starts/s here), not the service.
    print(f"dispatched {n} assignments in {took:.1f}s ({n / took:.0f}/s)")
