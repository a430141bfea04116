"""The one NATS connection a service process keeps for its background duties: the access log's
publisher (access_log.py) and the revocation watcher (revocations.py). Connected on first need and
retried until it is, so a service starts and answers while NATS is away; closed once, at stop,
after its users have stopped."""

from __future__ import annotations

import asyncio

import nats
import structlog
from nats.aio.client import Client as NatsClient

from services.shared.nats_urls import close_nats, servers

log = structlog.get_logger("background_nats")
RETRY_MOST_SECONDS = 10.0


class BackgroundNats:
    def __init__(self, nats_url: str, name: str) -> None:
        self.nats_url, self.name = nats_url, name
        self._nc: NatsClient | None = None
        self._connecting = asyncio.Lock()

    async def client(self) -> NatsClient:
        """The connection, waiting (and retrying) until NATS answers; it reconnects by itself after."""
        async with self._connecting:
            delay = 0.5
            while self._nc is None:
                try:
                    self._nc = await nats.connect(
                        servers(self.nats_url), name=self.name, connect_timeout=5, max_reconnect_attempts=-1
                    )
                except (OSError, nats.errors.Error) as exc:
                    log.warning("nats.not_connected", name=self.name, error=str(exc)[:200], retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MOST_SECONDS)
            return self._nc

    @property
    def connected(self) -> NatsClient | None:
        """The connection if it was made (for a last flush at stop), without waiting for one."""
        return self._nc

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            await close_nats(nc)
