"""Connecting to Temporal, for the services and the worker alike: address, namespace, mTLS.

`TemporalConnectionSettings` holds the connection variables every Temporal client reads
(`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE` and the TLS files below); the settings of the
assignment and progress services and of the worker extend it. `connect` is the one place a
client is made, retrying while the server starts.

TLS (see deploy/temporal/README.md):
- `TEMPORAL_TLS_CERT` + `TEMPORAL_TLS_KEY`: client certificate and key files (mTLS);
- `TEMPORAL_TLS_CA`: CA bundle file that signed the frontend's certificate (else the system roots);
- `TEMPORAL_TLS_SERVER_NAME`: the name to send (SNI) and verify, when it is not the address's host.
Any of them set turns TLS on; none set means a plaintext connection (the embedded dev server).
No framework imports here, so the worker can use it too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

log = structlog.get_logger()


class TemporalConnectionSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    temporal_address: str = Field(default="127.0.0.1:7233", validation_alias=AliasChoices("TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field(default="default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE"))
    temporal_tls_cert: Path | None = Field(default=None, validation_alias=AliasChoices("TEMPORAL_TLS_CERT"))
    temporal_tls_key: Path | None = Field(default=None, validation_alias=AliasChoices("TEMPORAL_TLS_KEY"))
    temporal_tls_ca: Path | None = Field(default=None, validation_alias=AliasChoices("TEMPORAL_TLS_CA"))
    temporal_tls_server_name: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_TLS_SERVER_NAME")
    )

    def temporal_tls(self) -> TLSConfig | bool:
        return tls_config(
            self.temporal_tls_cert, self.temporal_tls_key, self.temporal_tls_ca, self.temporal_tls_server_name
        )


def tls_config(cert: Path | None, key: Path | None, ca: Path | None, server_name: str | None) -> TLSConfig | bool:
    """The SDK's TLS settings from the file names; False (plaintext) when nothing is set."""
    if not any((cert, key, ca, server_name)):
        return False
    if bool(cert) != bool(key):
        raise ValueError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: set both for mTLS, or neither")

    def read(path: Path | None, name: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{name}: cannot read {path}: {exc.strerror or exc}") from exc

    return TLSConfig(
        client_cert=read(cert, "TEMPORAL_TLS_CERT"),
        client_private_key=read(key, "TEMPORAL_TLS_KEY"),
        server_root_ca_cert=read(ca, "TEMPORAL_TLS_CA"),
        domain=server_name or None,
    )


async def connect(
    address: str,
    namespace: str = "default",
    tls: TLSConfig | bool = False,
    attempts: int = 60,
    delay: float = 0.5,
    probe: bool = True,
) -> Client:
    """A client with the pydantic converter, retrying while the server starts up.

    With `probe`, the namespace must also answer a visibility call: a freshly started dev
    server accepts connections a moment before it serves the namespace.
    """
    last: Exception | None = None
    for _ in range(max(1, attempts)):
        try:
            client = await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter, tls=tls)
            if probe:
                await client.count_workflows()
            return client
        except Exception as exc:  # noqa: BLE001 - retried until ready, then re-raised below
            last = exc
            log.info("temporal.not_ready", address=address, namespace=namespace, error=str(exc)[:300])
            await asyncio.sleep(delay)
    raise RuntimeError(f"Temporal at {address} (namespace {namespace}) not reachable: {last}")


async def connect_with(
    settings: TemporalConnectionSettings, attempts: int = 60, delay: float = 0.5, probe: bool = True
) -> Client:
    """`connect` with the address, namespace and TLS of these settings."""
    tls = settings.temporal_tls()
    return await connect(settings.temporal_address, settings.temporal_namespace, tls, attempts, delay, probe)
