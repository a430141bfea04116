"""The units' names for the texts (渝中区, not yuzhong), from the assignment service's public unit
registry (`GET /v1/units`, readable without a token: issue 18 holds unit ids and names public).

Kept in memory and fetched again after NOTIFY_UNIT_NAMES_TTL_SECONDS. When the assignment service
cannot be reached the texts name the unit by its id, and the fetch is not tried again for a while,
so that a burst of events is not slowed down by a service that is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import httpx
import structlog

log = structlog.get_logger("notify.names")
PAGE = 500


class UnitNames:
    def __init__(
        self,
        http: httpx.AsyncClient,
        assignment_url: str,
        ttl: float = 600.0,
        retry_after: float = 30.0,
        timeout: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http, self.url = http, assignment_url.rstrip("/")
        self.ttl, self.retry_after, self.timeout, self.monotonic = ttl, retry_after, timeout, monotonic
        self.names: dict[str, str] = {}
        self._next_fetch = 0.0
        self._last_try = -retry_after

    async def _fetch(self) -> dict[str, str]:
        names: dict[str, str] = {}
        offset = 0
        while True:
            r = await self.http.get(
                f"{self.url}/v1/units", params={"limit": PAGE, "offset": offset}, timeout=self.timeout
            )
            r.raise_for_status()
            page = r.json()
            names.update({str(u["unit_id"]): str(u["name"]) for u in page["items"]})
            offset += len(page["items"])
            if not page["items"] or offset >= int(page["total"]):
                return names

    async def refresh(self, wanted: Iterable[str] = ()) -> None:
        """Fetch the registry if the cached copy is old, or names none of `wanted` (a unit added
        since), at most once per `retry_after` seconds."""
        now = self.monotonic()
        missing = any(u not in self.names for u in wanted)
        if now < self._next_fetch and not (missing and now >= self._last_try + self.retry_after):
            return
        self._last_try = now
        try:
            fetched = await self._fetch()
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self._next_fetch = now + self.retry_after
            log.warning("notify.unit_names_unavailable", url=self.url, error=str(exc) or type(exc).__name__)
            return
        self.names = fetched
        self._next_fetch = now + self.ttl

    def name(self, unit_id: str) -> str:
        return self.names.get(unit_id, unit_id)
