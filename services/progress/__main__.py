"""`python -m services.progress`: the progress service under uvicorn, logging JSON lines.

PROGRESS_WORKERS > 1 runs that many worker processes under uvicorn's supervisor, which binds
the socket and restarts a worker that dies. Each worker builds its app with `worker_app()`.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import structlog
import uvicorn
from fastapi import FastAPI

from services.progress.app import create_app
from services.progress.settings import ProgressSettings
from services.shared.logging import configure_logging

SUPERVISOR_PID = "POLICYFLOW_PROGRESS_SUPERVISOR_PID"


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """A worker whose supervisor is gone (even by kill -9) stops too: otherwise it would go on
    serving the inherited socket and a restarted service could not bind its port. The
    supervisor's pid comes from the environment, not getppid(): a worker that is still starting
    when the supervisor dies has already been handed to init and must stop as well."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        structlog.get_logger().warning("progress.supervisor_gone", parent=parent, pid=os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown, lifespan included

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def worker_app() -> FastAPI:
    """The app factory of each worker process (spawned: settings and logging are set up again)."""
    settings = ProgressSettings()
    configure_logging(json=True, level=settings.log_level)
    _exit_with_parent(int(os.environ.get(SUPERVISOR_PID) or os.getppid()))
    return create_app(settings)


def main() -> None:
    settings = ProgressSettings()
    configure_logging(json=True, level=settings.log_level)
    if settings.workers > 1:
        os.environ[SUPERVISOR_PID] = str(os.getpid())  # inherited by the spawned workers
        uvicorn.run(
            "services.progress.__main__:worker_app", factory=True, workers=settings.workers,
            host=settings.host, port=settings.port, log_config=None, access_log=False,
        )  # fmt: skip
        return
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
