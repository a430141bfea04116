"""Worker settings from the environment, read when the worker starts (never at import)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.subjects import TASK_QUEUE


class WorkerSettings(BaseSettings):
    """`NATS_URL`, `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TASK_QUEUE`, `LOG_LEVEL`.

    The defaults are the embedded stack's ports (deploy/local: NATS on 4333, Temporal on 7233).
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4333"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = TASK_QUEUE
    log_level: str = "INFO"
    # Seconds in-flight activities get to finish on SIGTERM before they are cancelled.
    graceful_shutdown_seconds: float = 10.0
