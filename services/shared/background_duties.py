"""What every service runs beside its requests on one background NATS connection (background_nats.py):
the access log's publisher (access_log.py) and the revocation watcher (revocations.py); set on
`app.state` where the middleware and the token check look for them."""

from __future__ import annotations

from typing import Any

from services.shared import access_log, revocations
from services.shared.background_nats import BackgroundNats


class BackgroundDuties:
    def __init__(self, app: Any, service: str, nats_url: str, replicas: int = 1) -> None:
        self.connection = BackgroundNats(nats_url, f"policyflow-{service}-background")
        self.access_log = app.state.access_log = access_log.started(service, self.connection, replicas)
        self.revocations = app.state.revocations = revocations.started(self.connection)

    async def stop(self) -> None:
        """The access log's last records first, then the watcher, then their connection."""
        await self.access_log.stop()
        await self.revocations.stop()
        await self.connection.close()
