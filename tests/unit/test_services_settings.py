"""Service settings come from the environment when a service starts, with the documented names."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.subjects import INBOX_DURABLE, READ_MODEL_DURABLE, TASK_QUEUE
from services.assignment.settings import AssignmentSettings
from services.progress.settings import ProgressSettings

NAMES = (
    "HOST",
    "ASSIGNMENT_PORT",
    "PROGRESS_PORT",
    "NATS_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TASK_QUEUE",
    "DATABASE_URL",
    "ASSIGNMENT_DATABASE_URL",
    "PROGRESS_DATABASE_URL",
    "POLICYFLOW_VAR",
    "POLICYFLOW_KEY_DIR",
    "POLICYFLOW_ASSIGNMENT_URL",
    "READ_MODEL_LINGER_MS",
    "INBOX_LINGER_MS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_local_stack() -> None:
    a, p = AssignmentSettings(), ProgressSettings()
    assert (a.host, a.port, p.port) == ("127.0.0.1", 8101, 8102)
    assert a.task_queue == TASK_QUEUE and a.temporal_namespace == "default"
    assert a.inbox_durable == INBOX_DURABLE and p.read_model_durable == READ_MODEL_DURABLE
    assert a.db_url().endswith("var/assignment.sqlite") and p.db_url().endswith("var/progress.sqlite")
    assert a.keys() == Path("var/keys")


def test_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSIGNMENT_PORT", "9101")
    monkeypatch.setenv("PROGRESS_PORT", "9102")
    monkeypatch.setenv("POLICYFLOW_VAR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/shared")
    monkeypatch.setenv("PROGRESS_DATABASE_URL", "postgresql://db/progress")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "policyflow")
    monkeypatch.setenv("POLICYFLOW_ASSIGNMENT_URL", "http://assignment:9101")
    a, p = AssignmentSettings(), ProgressSettings()
    assert (a.port, p.port) == (9101, 9102)
    assert a.db_url() == "postgresql://db/shared"  # the generic name, when there is no service-specific one
    assert p.db_url() == "postgresql://db/progress"  # the service-specific name wins
    assert a.keys() == tmp_path / "keys" and a.temporal_namespace == "policyflow"
    assert p.assignment_url == "http://assignment:9101"


def test_projection_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AssignmentSettings().inbox_linger_ms == ProgressSettings().read_model_linger_ms == 50.0
    monkeypatch.setenv("READ_MODEL_LINGER_MS", "0")
    monkeypatch.setenv("INBOX_LINGER_MS", "120")
    assert ProgressSettings().read_model_linger_ms == 0 and AssignmentSettings().inbox_linger_ms == 120
    monkeypatch.setenv("INBOX_LINGER_MS", "-1")
    with pytest.raises(ValueError):
        AssignmentSettings()
