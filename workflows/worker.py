"""The worker process: `python -m workflows.worker`.

Connects to NATS (ensures the event stream) and Temporal, runs `AssignmentWorkflow` and its
activities on the task queue, and shuts down gracefully on SIGTERM / SIGINT. Tests and the
local stack reuse `build_worker` / `run_worker`.
"""

from __future__ import annotations

import asyncio
import compileall
import datetime as dt
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import nats
import structlog
from nats.js import JetStreamContext
from temporalio.client import Client
from temporalio.worker import Worker

from services.shared.nats_urls import servers
from services.shared.streams import ensure_event_stream
from services.shared.temporal_connect import connect_with
from workflows.activities import EventPublisher, load_working_calendar
from workflows.calendar_fanout import CalendarFanOut
from workflows.calendar_record import CalendarRecordHandoff
from workflows.calendar_workflow import WorkingCalendarWorkflow
from workflows.programme import ProgrammeWorkflow
from workflows.programme_calendar import ProgrammeCalendarRecord, ProgrammeCalendarRun
from workflows.settings import WorkerSettings
from workflows.workflows import AssignmentWorkflow

log = structlog.get_logger("workflows.worker")


def build_worker(
    client: Client,
    js: JetStreamContext,
    task_queue: str,
    *,
    publisher: EventPublisher | None = None,
    graceful_shutdown: dt.timedelta = dt.timedelta(seconds=10),
    **options: Any,
) -> Worker:
    """A worker for the assignment and programme workflows; `publisher` replaces the JetStream one (fault tests)."""
    publisher = publisher or EventPublisher(js)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            AssignmentWorkflow,
            ProgrammeWorkflow,
            WorkingCalendarWorkflow,
            ProgrammeCalendarRun,
            ProgrammeCalendarRecord,
        ],  # fmt: skip
        activities=[
            publisher.publish_events,
            load_working_calendar,
            CalendarFanOut(client).signal_assignments,
            CalendarRecordHandoff(client).hand_over,
        ],  # fmt: skip
        graceful_shutdown_timeout=graceful_shutdown,
        **options,
    )


async def run_worker(
    client: Client,
    js: JetStreamContext,
    task_queue: str,
    stop: asyncio.Event | None = None,
    *,
    replicas: int = 1,
    **options: Any,
) -> None:
    """Run until `stop` is set (or forever), then shut down, letting running activities finish.

    The event stream is created first if missing, with `replicas` copies (NATS_REPLICAS).
    """
    await ensure_event_stream(js, replicas)
    async with build_worker(client, js, task_queue, **options):
        log.info("worker_started", task_queue=task_queue, namespace=client.namespace)
        await (stop or asyncio.Event()).wait()
        log.info("worker_stopping", task_queue=task_queue)


def cache_sandbox_bytecode(cache_dir: Path) -> bool:
    """Compile the workflow package once into `cache_dir`, where the import system reads it.

    The sandbox imports `workflows.workflows` afresh for every workflow run it creates. Where no
    bytecode is written (PYTHONDONTWRITEBYTECODE) each of those imports compiled the source again:
    about 40 % of the worker's event-loop thread while a programme was dispatched (py-spy).
    False (and nothing changed) where bytecode is written: the usual `__pycache__` does this.
    """
    if not sys.dont_write_bytecode:
        return False
    sys.pycache_prefix = str(cache_dir)  # read by every later import, written only here
    return compileall.compile_dir(str(Path(__file__).parent), maxlevels=0, quiet=1)


def configure_logging(level: str) -> None:
    """JSON lines on stderr; the SDK's own (stdlib) logs go there too."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


async def connect_temporal(settings: WorkerSettings, attempts: int = 150) -> Client:
    """The local stack starts Temporal next to the worker: wait for it to answer (TLS per settings)."""
    return await connect_with(settings, attempts=attempts, delay=0.4, probe=False)


async def main(settings: WorkerSettings | None = None) -> None:
    settings = settings or WorkerSettings()
    configure_logging(settings.log_level)
    bytecode_dir: Path | None = None
    try:
        # Private to this process (bytecode in a shared directory could be planted by someone else).
        bytecode_dir = Path(tempfile.mkdtemp(prefix="policyflow-worker-bytecode-"))
        if cache_sandbox_bytecode(bytecode_dir):
            log.info("sandbox_bytecode_cached", directory=str(bytecode_dir))
    except OSError as exc:  # no writable temp directory: slower new runs, nothing worse
        log.warning("sandbox_bytecode_not_cached", error=str(exc))
    try:
        await serve(settings)
    finally:
        if bytecode_dir is not None:
            shutil.rmtree(bytecode_dir, ignore_errors=True)
    log.info("worker_stopped")


async def serve(settings: WorkerSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await nats.connect(servers(settings.nats_url), name="policyflow-worker", max_reconnect_attempts=-1)
    try:
        client = await connect_temporal(settings)
        identity = {"identity": settings.worker_identity} if settings.worker_identity else {}
        await run_worker(
            client,
            nc.jetstream(),
            settings.task_queue,
            stop,
            replicas=settings.nats_replicas,
            graceful_shutdown=dt.timedelta(seconds=settings.graceful_shutdown_seconds),
            max_cached_workflows=settings.max_cached_workflows,
            **identity,
        )
    finally:
        await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
