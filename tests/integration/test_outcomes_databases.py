"""The scripted year's figures and scores on SQLite and on PostgreSQL (tests/databases.py): the
progress read model's answer equals the audit ledger's, on either database."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.databases import TestDatabase
from tests.e2e.support import get_json, running_stack
from tests.integration.audit_support import running, settings_for
from tests.support import outcome_year as year
from tests.support.publishing import publish
from tests.support.waiting import caught_up

pytestmark = pytest.mark.integration
P = year.PROGRAMME


async def test_figures_and_scores_on_each_database(
    database: TestDatabase, nats_url: str, temporal_client: Client, temporal_address: str
) -> None:
    tq = f"tq-outdb-{uuid.uuid4().hex[:8]}"
    urls = {name: database.url(name) for name in ("assignment", "progress")}
    async with running_stack(
        database.tmp, nats_url, temporal_client, temporal_address, tq, worker=False, db_urls=urls
    ) as stack:
        (database.tmp / "audit").mkdir()
        async with running(settings_for(database.tmp / "audit", nats_url, database_url=database.url("audit"))) as audit:
            events = year.events()
            await caught_up(stack, await publish(stack.js, events))
            await audit.wait_for_size(len(events))
            sup = stack.headers("supervisor")
            views: list[tuple[str, dict[str, Any]]] = [
                ("indicators", {"as_of": "2027-05-31"}),
                ("scores", {"year": 2027, "as_of": "2027-12-31"}),
            ]
            async with httpx.AsyncClient(timeout=30) as c:
                for path, params in views:
                    live = await get_json(c, f"{stack.progress_url}/v1/programmes/{P}/{path}", sup, **params)
                    r = await audit.client.get(f"/v1/audit/programmes/{P}/{path}", params=params, headers=audit.auth())
                    assert r.status_code == 200 and r.json() == live, r.text
                scores = await get_json(c, f"{stack.progress_url}/v1/programmes/{P}/scores", sup, year=2027)
                assert [(u["unit_id"], u["total"]) for u in scores["units"]] == [
                    ("alpha", 84.37), ("beta", 65.83), ("gamma", 0)]  # fmt: skip
