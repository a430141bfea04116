"""`python -m bench.profiles ingest|verify|replay|status|fold [N] [postgres]`: cProfile of a hot path.

With `postgres` as the last word, the ledger or read model is in a fresh PostgreSQL database
(bench/pg.py), dropped afterwards, and `status` runs the services on one.

This runs the services' own code under cProfile on generated lifecycle events and prints the
functions with the most own time and the most cumulative time. (py-spy, outside the project's
dependencies, `uv tool install py-spy`, samples a running service instead. aiosqlite runs SQLite
calls in a thread of its own, which cProfile does not follow: time spent there shows up as the
event loop waiting.)

    ingest   Ingestor.apply in batches of 500 (the service's batch) into a durable ledger
    verify   queries.verify over a ledger of N entries
    replay   queries.replay (the fold of every assignment) over a ledger of N entries
    fold     the progress read model folding N events (readmodel.apply_messages, batches of 256,
             the service's READ_MODEL_BATCH) into a fresh database
    status   the progress service (a process of its own, run under cProfile) while 50 clients
             read /v1/status; the rate is requests/s (not events)
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.events import events
from contracts.subjects import event_subject


def messages(count: int) -> list[tuple[int, str, bytes]]:
    return [
        (i, event_subject(e.programme_id, e.unit_id, e.type), e.model_dump_json().encode())
        for i, e in enumerate(events("bench-profile", count), start=1)
    ]


async def ingest(db: Path, count: int, profiler: cProfile.Profile, postgres: bool = False) -> float:
    if postgres:
        from bench import pg

        url = await pg.create_database()
        try:
            return await _ingest(url, count, profiler)
        finally:
            await pg.drop_database(url)
    from services.shared.db import sqlite_url

    return await _ingest(sqlite_url(db), count, profiler)


async def _ingest(url: str, count: int, profiler: cProfile.Profile) -> float:
    from services.audit.ingest import Ingestor
    from services.audit.store import create_tables
    from services.shared.consumer import Message
    from services.shared.db import make_engine

    engine = make_engine(url)
    await create_tables(engine)
    ingestor = Ingestor(engine, "profile")
    await ingestor.load()
    batches = [[Message(*m) for m in chunk] for chunk in _chunks(messages(count), 500)]
    started = time.perf_counter()
    profiler.enable()
    for batch in batches:
        await ingestor.apply(batch)
    profiler.disable()
    seconds = time.perf_counter() - started
    await engine.dispose()
    return count / seconds


async def build(db: Path | str, key_dir: Path, count: int) -> None:
    from bench.replay_verify import LedgerWriter

    writer = await LedgerWriter(db, key_dir).open()
    for chunk in _chunks(messages(count), 1000):
        await writer.write(chunk)
    await writer.close()


async def _ledger(db: Path, count: int, postgres: bool) -> str:
    """A ledger of `count` entries built by the audit service's code; its URL."""
    from services.shared.db import sqlite_url

    url = sqlite_url(db)
    if postgres:
        from bench import pg

        url = await pg.create_database()
    await build(url if postgres else db, db.parent / "keys", count)
    return url


async def verify(db: Path, count: int, profiler: cProfile.Profile, postgres: bool = False) -> float:
    from services.audit import queries
    from services.audit.checkpoints import Signer
    from services.shared.db import make_engine

    url = await _ledger(db, count, postgres)
    engine = make_engine(url)
    try:
        pem = Signer(db.parent / "keys").public_pem
        started = time.perf_counter()
        profiler.enable()
        out = await queries.verify(engine, pem)
        profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
        if postgres:
            await _drop(url)
    assert out["ok"], out
    return count / seconds


async def replay(db: Path, count: int, profiler: cProfile.Profile, postgres: bool = False) -> float:
    import datetime as dt

    from services.audit import queries
    from services.shared.db import make_engine

    url = await _ledger(db, count, postgres)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        profiler.enable()
        async for _ in queries.replay(engine, dt.datetime(2999, 1, 1, tzinfo=dt.UTC), None, None):
            pass
        profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
        if postgres:
            await _drop(url)
    return count / seconds


async def _drop(url: str) -> None:
    from bench import pg

    await pg.drop_database(url)


async def fold(db: Path, count: int, profiler: cProfile.Profile, postgres: bool = False) -> float:
    from services.progress import readmodel
    from services.progress.store import create_tables
    from services.shared import projection
    from services.shared.db import make_engine, sqlite_url

    url = sqlite_url(db)
    if postgres:
        from bench import pg

        url = await pg.create_database()
    engine = make_engine(url)
    try:
        await create_tables(engine)
        batches = _chunks(messages(count), 256)
        kept = projection.KeptStates()  # as the service's consumer keeps them
        started = time.perf_counter()
        profiler.enable()
        for batch in batches:
            await readmodel.apply_messages(engine, [(seq, data) for seq, _, data in batch], kept=kept)
        profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
        if postgres:
            await pg.drop_database(url)
    return count / seconds


def _chunks(items: list[tuple[int, str, bytes]], size: int) -> list[list[tuple[int, str, bytes]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def status(db: Path, count: int, profiler: cProfile.Profile, postgres: bool = False) -> float:  # noqa: ARG001
    """The progress service under cProfile while 50 clients read /v1/status (stats from its own file)."""
    import httpx

    from bench.driver import PfClient
    from bench.stack import ALL_PROCESSES, BenchStack
    from bench.status_api import ensure_assignments, loadgen, status_urls
    from contracts.base import UserRole

    stack = BenchStack(db.parent / "stack", db="postgres" if postgres else "sqlite")
    await stack.start_servers()
    try:
        reason = await stack.policyflow(*ALL_PROCESSES)
        if reason:
            raise SystemExit(reason)
        async with httpx.AsyncClient(timeout=600.0) as http:
            pf = PfClient(stack, http)
            ids = await ensure_assignments(stack, pf, min(count, 300))
            stack.stop_process("progress")
            out_file = db.parent / "progress.prof"
            stack.spawn("progress", profile_to=out_file)
            await stack.wait_healthy("progress")
            out = await loadgen(status_urls(stack.url("progress"), ids), pf.headers(UserRole.SUPERVISOR), 8.0)
            stack.children.pop("progress").stop(sig=signal.SIGINT)  # uvicorn re-raises SIGTERM: no stats
        return float(out["rps"])
    finally:
        await stack.close()


PATHS = {"ingest": ingest, "verify": verify, "replay": replay, "status": status, "fold": fold}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in PATHS:
        raise SystemExit(__doc__)
    postgres = argv[-1] == "postgres"
    argv = argv[:-1] if postgres else argv
    count = int(argv[1]) if len(argv) > 1 else 20_000
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="pf-profile-") as tmp:
        path = PATHS[argv[0]](Path(tmp) / "ledger.sqlite", count, profiler, **({"postgres": True} if postgres else {}))
        rate = asyncio.run(path)
        service = Path(tmp) / "progress.prof"  # written by a service run under cProfile
        source: cProfile.Profile | str = str(service) if service.exists() else profiler
        unit = "requests/s" if source != profiler else "events/s"
        print(f"{argv[0]}: {count} events, {rate:,.0f} {unit} under the profiler\n")
        for key in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(source, stream=out).sort_stats(key).print_stats(25)
            print(f"--- by {key} ---")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


if __name__ == "__main__":
    main(sys.argv[1:])
