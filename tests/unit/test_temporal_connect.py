"""Every Temporal client honours TEMPORAL_TLS_*; the worker and services honour NATS_REPLICAS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from contracts.subjects import event_stream_config
from services.assignment.settings import AssignmentSettings
from services.progress.settings import ProgressSettings
from services.shared.nats_urls import servers
from services.shared.temporal_connect import TemporalConnectionSettings, connect_with, tls_config
from workflows.settings import WorkerSettings

TLS_NAMES = ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_NAME")
SETTINGS = [AssignmentSettings, ProgressSettings, WorkerSettings]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*TLS_NAMES, "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "NATS_REPLICAS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("client.pem", "client.key", "ca.pem"):
        files[name] = tmp_path / name
        files[name].write_bytes(f"-----BEGIN {name}-----\n".encode())
    return files


def test_no_tls_variables_means_plaintext() -> None:
    for cls in SETTINGS:
        assert cls().temporal_tls() is False


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_tls_variables_build_an_mtls_config(
    cls: type[TemporalConnectionSettings], pem_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal-frontend.temporal.svc:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "policyflow")
    monkeypatch.setenv("TEMPORAL_TLS_CERT", str(pem_files["client.pem"]))
    monkeypatch.setenv("TEMPORAL_TLS_KEY", str(pem_files["client.key"]))
    monkeypatch.setenv("TEMPORAL_TLS_CA", str(pem_files["ca.pem"]))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "frontend.temporal.internal")
    settings = cls()
    tls = settings.temporal_tls()
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----BEGIN client.pem-----\n"
    assert tls.client_private_key == b"-----BEGIN client.key-----\n"
    assert tls.server_root_ca_cert == b"-----BEGIN ca.pem-----\n"
    assert tls.domain == "frontend.temporal.internal"
    assert settings.temporal_address == "temporal-frontend.temporal.svc:7233"
    assert settings.temporal_namespace == "policyflow"


def test_a_ca_alone_verifies_the_server_without_a_client_certificate(pem_files: dict[str, Path]) -> None:
    tls = tls_config(None, None, pem_files["ca.pem"], None)
    assert isinstance(tls, TLSConfig) and tls.client_cert is None and tls.server_root_ca_cert


def test_half_a_client_certificate_or_a_missing_file_is_refused(pem_files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        tls_config(pem_files["client.pem"], None, None, None)
    with pytest.raises(ValueError, match="TEMPORAL_TLS_CA: cannot read"):
        tls_config(None, None, tmp_path / "absent.pem", None)


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
async def test_connect_hands_the_tls_config_to_the_sdk(
    cls: type[TemporalConnectionSettings], pem_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CA", str(pem_files["ca.pem"]))
    seen: dict[str, Any] = {}

    async def fake_connect(address: str, **kwargs: Any) -> str:
        seen.update(kwargs, address=address)
        return "client"

    monkeypatch.setattr(Client, "connect", staticmethod(fake_connect))
    assert await connect_with(cls(), attempts=1, probe=False) == "client"  # type: ignore[comparison-overlap]
    assert isinstance(seen["tls"], TLSConfig) and seen["tls"].server_root_ca_cert == b"-----BEGIN ca.pem-----\n"
    assert seen["data_converter"] is pydantic_data_converter


def test_nats_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().nats_replicas == 1 and AssignmentSettings().nats_replicas == 1
    monkeypatch.setenv("NATS_REPLICAS", "3")
    assert WorkerSettings().nats_replicas == 3 and AssignmentSettings().nats_replicas == 3
    assert event_stream_config(3)["num_replicas"] == 3 and event_stream_config()["num_replicas"] == 1


def test_a_nats_url_may_list_the_cluster() -> None:
    assert servers("nats://a:4222") == ["nats://a:4222"]
    assert servers("nats://u:p@a:4222, nats://u:p@b:4222,nats://u:p@c:4222") == [
        "nats://u:p@a:4222",
        "nats://u:p@b:4222",
        "nats://u:p@c:4222",
    ]
    with pytest.raises(ValueError):
        servers(" , ")
