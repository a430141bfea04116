"""Worker settings from the environment, read when the worker starts (never at import)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contracts.subjects import TASK_QUEUE
from services.shared.temporal_connect import TemporalConnectionSettings


class WorkerSettings(TemporalConnectionSettings):
    """`NATS_URL`, `NATS_REPLICAS`, `TASK_QUEUE`, `LOG_LEVEL`, `GRACEFUL_SHUTDOWN_SECONDS`, `WORKER_IDENTITY`,
    `MAX_CACHED_WORKFLOWS`, and the Temporal connection: `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
    `TEMPORAL_TLS_*` (TemporalConnectionSettings).

    The defaults are the embedded stack's ports (deploy/local: NATS on 4333, Temporal on 7233).
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    nats_url: str = "nats://127.0.0.1:4333"
    # Copies of the event stream when the worker creates it: 3 on a 3-node NATS cluster.
    nats_replicas: int = Field(default=1, ge=1, le=5)
    task_queue: str = TASK_QUEUE
    log_level: str = "INFO"
    # Seconds in-flight activities get to finish on SIGTERM before they are cancelled.
    graceful_shutdown_seconds: float = 10.0
    # Shown in Temporal's history (WorkflowTaskStarted identity); the SDK's pid@host when empty.
    worker_identity: str = ""
    # Workflows kept in memory between their tasks (sticky cache): the worker's memory grows with it,
    # about 0.4 MiB each (the sandbox imports the workflow module afresh for every run), until the
    # bound. A workflow evicted replays its run's history (a year's at most) at its next task; 250
    # hold every workflow a dispatch (64 starts in flight) or a day's commands keep busy.
    max_cached_workflows: int = Field(default=250, ge=0)
