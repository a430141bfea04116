"""The whole local stack as child processes: servers, worker and services.

`make up` runs it in the foreground; tests can use it too. External servers are reused
when NATS_URL / TEMPORAL_ADDRESS are set.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import nats.js.errors
import structlog

from contracts.subjects import STREAM_MAX_BYTES
from deploy.local.servers import (
    Server,
    file_store_limit,
    free_port,
    nats_passwords,
    nats_server,
    nats_user_url,
    temporal_dev_server,
    wait_for_port,
)
from services.shared.streams import ensure_event_stream

JETSTREAM_DISABLED = {10039, 10076}  # "jetstream not enabled for account", "jetstream not enabled"
# nats-server's log lines when its store fails: a write error sticks to the stream until a restart.
STORE_FAILED = ("critical write error", "JetStream out of resources", "Disabling JetStream")
NATS_RESTART_FREE_BYTES = 4 * 1024**2

log = structlog.get_logger("stack")

SERVICES = (
    ("assignment", "ASSIGNMENT_PORT", 8101),
    ("progress", "PROGRESS_PORT", 8102),
    ("audit", "AUDIT_PORT", 8103),
    ("notify", "NOTIFY_PORT", 8104),
)


async def create_event_stream(url: str, max_bytes: int = STREAM_MAX_BYTES) -> None:
    """Create the event stream before any reader starts, so readers need no right to create it."""
    nc = await nats.connect(url)
    try:
        await ensure_event_stream(nc.jetstream(), max_bytes=max_bytes)
    finally:
        await nc.close()


async def jetstream_enabled(url: str) -> bool:
    """Whether the server's JetStream answers (it disables itself when its store cannot be written)."""
    nc = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        await nc.jetstream().account_info()
        return True
    except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):
        return False
    except nats.js.errors.APIError as exc:
        return exc.err_code not in JETSTREAM_DISABLED
    finally:
        await nc.close()


@dataclass
class StackConfig:
    var_dir: Path
    nats_port: int = 4333
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: {name: port for name, _, port in SERVICES})
    nats_url: str | None = None
    temporal_address: str | None = None
    headless: bool = False
    # The notifier's mail: an external relay when SMTP_HOST is set, else the embedded sink
    # (services.notify.sink) on smtp_port, which keeps each message under var/mail.
    smtp_host: str | None = None
    smtp_port: int = 0  # 0: a free port (tests, benchmarks); `make up` uses SMTP_PORT or 8025
    # The event stream's size limit; JetStream's max_file_store follows the disk's free space, not below it.
    stream_max_bytes: int = STREAM_MAX_BYTES
    # A witness (services/witness) cosigning the audit log's checkpoints, with its own key and state
    # under var/witness; on for `make up` (WITNESS=0 turns it off), off unless asked for elsewhere.
    witness: bool = False
    witness_port: int = 8105

    @classmethod
    def from_env(cls) -> StackConfig:
        env = os.environ
        return cls(
            var_dir=Path(env.get("POLICYFLOW_VAR", "var")).resolve(),
            nats_port=int(env.get("NATS_PORT", 4333)),
            temporal_port=int(env.get("TEMPORAL_PORT", 7233)),
            temporal_ui_port=int(env.get("TEMPORAL_UI_PORT", 8233)),
            host=env.get("HOST", "127.0.0.1"),
            ports={name: int(env.get(var, default)) for name, var, default in SERVICES},
            nats_url=env.get("NATS_URL") or None,
            temporal_address=env.get("TEMPORAL_ADDRESS") or None,
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=int(env.get("SMTP_PORT", 8025)),
            stream_max_bytes=int(env.get("NATS_STREAM_MAX_BYTES", STREAM_MAX_BYTES)),
            witness=env.get("WITNESS", "1") != "0",
            witness_port=int(env.get("WITNESS_PORT", 8105)),
        )


@dataclass
class Stack:
    config: StackConfig
    servers: list[Server] = field(default_factory=list)
    processes: list[Server] = field(default_factory=list)
    witness_key: str | None = None  # the embedded witness's verifier key, once it runs
    nats_restarts: int = 0
    _next_nats_restart: float = 0.0
    _nats_log_mark: int = 0  # where nats-server's log stood when it last started

    @property
    def nats_url(self) -> str:
        return self.config.nats_url or f"nats://127.0.0.1:{self.config.nats_port}"

    def nats_url_for(self, user: str) -> str:
        """Each process connects to the embedded NATS as its own user, with its own permissions."""
        if self.config.nats_url:
            return self.config.nats_url
        return nats_user_url(self.config.nats_port, user, nats_passwords(self.config.var_dir / "nats"))

    @property
    def temporal_address(self) -> str:
        return self.config.temporal_address or f"127.0.0.1:{self.config.temporal_port}"

    @property
    def mail_dir(self) -> Path | None:
        """Where the embedded SMTP sink keeps the messages (None with an external SMTP_HOST)."""
        return None if self.config.smtp_host else self.config.var_dir / "mail"

    def url(self, service: str) -> str:
        return f"http://{self.config.host}:{self.config.ports[service]}"

    @property
    def witness_url(self) -> str:
        return f"http://{self.config.host}:{self.config.witness_port}"

    def child_env(self) -> dict[str, str]:
        if self.mail_dir is not None and not self.config.smtp_port:
            self.config.smtp_port = free_port()
        env = dict(os.environ)
        env.update(
            TEMPORAL_ADDRESS=self.temporal_address,
            POLICYFLOW_VAR=str(self.config.var_dir),
            POLICYFLOW_KEY_DIR=str(self.config.var_dir / "keys"),
            HOST=self.config.host,
            POLICYFLOW_AUDIT_URL=self.url("audit"),
            POLICYFLOW_ASSIGNMENT_URL=self.url("assignment"),
            TEMPORAL_UI_URL=f"http://127.0.0.1:{self.config.temporal_ui_port}",
        )
        # The notifier's links lead to the workbench of this stack unless PUBLIC_BASE_URL says otherwise.
        env.setdefault("PUBLIC_BASE_URL", self.url("progress"))
        if self.mail_dir is not None:
            env.update(
                SMTP_HOST="127.0.0.1",
                SMTP_PORT=str(self.config.smtp_port),
                NOTIFY_MAIL_DIR=str(self.mail_dir),
                NOTIFY_ALLOW_PRIVATE_URLS=env.get("NOTIFY_ALLOW_PRIVATE_URLS", "1"),
            )
        for name, var, _ in SERVICES:
            env[var] = str(self.config.ports[name])
        return env

    def start_servers(self) -> None:
        c = self.config
        if not c.nats_url:
            limit = file_store_limit(c.var_dir / "nats" / "jetstream", floor=c.stream_max_bytes)
            server = nats_server(c.var_dir / "nats", port=c.nats_port, auth=True, max_file_store=limit)
            self._nats_log_mark = server.log_path.stat().st_size if server.log_path.exists() else 0
            self.servers.append(server.start())
        asyncio.run(create_event_stream(self.nats_url_for("admin"), c.stream_max_bytes))
        if not c.temporal_address:
            server = temporal_dev_server(
                c.var_dir / "temporal", port=c.temporal_port, ui_port=c.temporal_ui_port, headless=c.headless
            )
            self.servers.append(server.start())

    def start_processes(self) -> None:
        env = self.child_env()
        logs = self.config.var_dir / "logs"
        worker = Server("worker", [sys.executable, "-m", "workflows.worker"], 0, logs / "worker.log")
        self._spawn(worker, {**env, "NATS_URL": self.nats_url_for("worker")})
        if self.mail_dir is not None:
            sink = Server("smtp-sink", [sys.executable, "-m", "services.notify.sink"], self.config.smtp_port,
                          logs / "smtp-sink.log")  # fmt: skip
            self._spawn(sink, env)
        if self.config.witness:
            env = self.start_witness(env)
        for name, _, _ in SERVICES:
            port = self.config.ports[name]
            proc = Server(name, [sys.executable, "-m", f"services.{name}"], port, logs / f"{name}.log")
            self._spawn(proc, {**env, "NATS_URL": self.nats_url_for(name)})
        for proc in self.processes:
            if proc.port:
                wait_for_port(proc.port, proc.proc, proc.name, timeout=90)
                if proc.name in self.config.ports:
                    self.wait_healthy(proc.name)

    def start_witness(self, env: dict[str, str]) -> dict[str, str]:
        """Start the witness, trusting the audit log's key, and return `env` with the audit service told
        to ask it (ahead of any WITNESS_URLS already set). Both keys are made here first, each under
        its lock, so each side can be given the other's verifier key before either starts."""
        from services.audit.checkpoints import Signer
        from services.audit.settings import DEFAULT_ORIGIN
        from services.witness.cosigner import Cosigner
        from services.witness.settings import DEFAULT_NAME

        c = self.config
        log_key = Signer(Path(env["POLICYFLOW_KEY_DIR"]), env.get("AUDIT_ORIGIN") or DEFAULT_ORIGIN).vkey
        self.witness_key = Cosigner(c.var_dir / "witness" / "keys", env.get("WITNESS_NAME") or DEFAULT_NAME).vkey
        witness_env = {k: v for k, v in env.items() if k != "WITNESS_KEY_DIR"}  # its own directory, under var/witness
        witness_env.update(WITNESS_PORT=str(c.witness_port), WITNESS_LOG_KEYS=log_key)
        proc = Server("witness", [sys.executable, "-m", "services.witness"], c.witness_port,
                      c.var_dir / "logs" / "witness.log")  # fmt: skip
        self._spawn(proc, witness_env)  # waited for with the others; the audit service asks again if early
        urls = [self.witness_url, *(u for u in env.get("WITNESS_URLS", "").split(",") if u.strip())]
        keys = [self.witness_key, *(k for k in env.get("WITNESS_KEYS", "").split(",") if k.strip())]
        return {**env, "WITNESS_URLS": ",".join(urls), "WITNESS_KEYS": ",".join(keys)}

    def _spawn(self, proc: Server, env: dict[str, str]) -> None:
        import subprocess

        proc.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(proc.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        proc.proc = subprocess.Popen(
            proc.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
        self.processes.append(proc)

    def wait_healthy(self, service: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.url(service)}/healthz", timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{service} not healthy after {timeout:.0f}s: {last}")

    def restart_nats_if_store_failed(self) -> bool:
        """Start the embedded nats-server again when its store failed, once the disk has room.

        On a full disk JetStream refuses each publish (the workflows' publish activities retry, so
        nothing is lost), but a stream that hit a write error keeps refusing after space returns,
        and JetStream may disable itself: both last until the server restarts. Returns whether it
        was restarted."""
        server = next((s for s in self.servers if s.name == "nats-server"), None)
        if server is None or time.monotonic() < self._next_nats_restart:
            return False
        exited = server.proc is None or server.proc.poll() is not None
        why = "nats-server exited" if exited else self._nats_store_failure(server)
        if why is None:
            return False
        store = self.config.var_dir / "nats" / "jetstream"
        if shutil.disk_usage(store if store.exists() else self.config.var_dir).free < NATS_RESTART_FREE_BYTES:
            return False  # still full: a restart would fail the same way
        self._next_nats_restart = time.monotonic() + 5.0
        self.nats_restarts += 1
        log.error("nats.restarting", reason=why, restarts=self.nats_restarts)
        self._nats_log_mark = server.log_path.stat().st_size if server.log_path.exists() else 0
        try:
            server.restart()
        except RuntimeError as exc:
            log.error("nats.restart_failed", error=str(exc))
        return True

    def _nats_store_failure(self, server: Server) -> str | None:
        """What the server's log says of its store since it started, or JetStream not answering."""
        if server.log_path.exists():
            with server.log_path.open("rb") as f:
                f.seek(self._nats_log_mark)
                said = f.read().decode(errors="replace")
            for line in said.splitlines():
                if any(mark in line for mark in STORE_FAILED):
                    return line.split("] ", 2)[-1][:300]
        try:
            enabled = asyncio.run(jetstream_enabled(self.nats_url_for("admin")))
        except (OSError, TimeoutError, nats.errors.Error):
            return None  # not answering now (starting, or busy): asked again next time
        return None if enabled else "JetStream disabled"

    def stop(self) -> None:
        """Signal every process at once, then wait; servers go last so clients can finish."""
        for proc in self.processes:
            proc.terminate()
        for proc in reversed(self.processes):
            proc.stop()
        for server in reversed(self.servers):
            server.stop()
