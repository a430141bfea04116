"""Shared fixtures: real servers from the wheels, on free ports, state in a temp dir.

Tests are marked by folder: tests/unit -> unit, tests/integration -> integration,
tests/e2e -> e2e, tests/faults -> faults.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from contracts.subjects import EVENT_STREAM
from deploy.local.servers import Server, find_binary, nats_server, temporal_dev_server
from services.shared.temporal_connect import connect
from tests.e2e.support import fresh_event_stream
from tests.support.oidc_provider import OidcProvider, running_provider
from tests.support.oidc_provider import why_not as oidc_missing
from tests.support.requirements import require

# The `database` fixture (SQLite, and PostgreSQL when reachable): tests/databases.py.
pytest_plugins = ["tests.databases"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for folder in ("unit", "integration", "e2e", "faults"):
            if folder in parts:
                item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def nats_proc(state_root: Path) -> Iterator[Server]:
    server = nats_server(state_root / f"nats-{uuid.uuid4().hex[:6]}").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_proc: Server) -> str:
    return f"nats://127.0.0.1:{nats_proc.port}"


@pytest.fixture
async def event_stream(nats_url: str) -> AsyncIterator[str]:
    """A fresh event stream for one test: created, yielded by name, deleted after.

    The stream denies purge and delete of messages, but the stream itself can go. The access stream
    goes too (tests.e2e.support.fresh_event_stream), so an audit service ledgers this test's refusals only.
    """
    nc = await nats.connect(nats_url)
    await fresh_event_stream(nc.jetstream())
    yield EVENT_STREAM
    await nc.close()


@pytest.fixture(scope="session")
def temporal_proc(state_root: Path) -> Iterator[Server]:
    server = temporal_dev_server(state_root / f"temporal-{uuid.uuid4().hex[:6]}", headless=True).start()
    yield server
    server.stop()


async def connect_temporal(address: str, attempts: int = 150) -> Client:
    """A client once the server serves its namespace (the one connect the code uses)."""
    return await connect(address, attempts=attempts, delay=0.2)


@pytest.fixture(scope="session")
def temporal_address(temporal_proc: Server) -> str:
    return f"127.0.0.1:{temporal_proc.port}"


@pytest.fixture(scope="session")
async def temporal_client(temporal_address: str) -> Client:
    return await connect_temporal(temporal_address)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so workers of different tests never share work."""
    return f"tq-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One real OpenID provider (tests/oidc, Node.js) for the whole run, on a loopback port."""
    require(oidc_missing())
    with running_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider
