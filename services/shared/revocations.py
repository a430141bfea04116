"""Tokens of a disabled account stop working everywhere, before they expire.

`policyflow users disable` and `reset-password` record, in the JetStream key-value bucket
`POLICYFLOW_REVOKED`, the account's name and the moment; every service watches the bucket and
refuses this installation's tokens of that account issued at or before that moment (a token's
`iat`). A token issued after it (a reset password, a new sign-in) works. The provider's tokens
are the provider's to revoke. Keys are the name in hex (a bucket's keys allow few characters).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from services.shared.background_nats import BackgroundNats
from services.shared.nats_urls import close_nats, servers

REVOKED_BUCKET = "POLICYFLOW_REVOKED"
log = structlog.get_logger("revocations")


def key_of(sub: str) -> str:
    return sub.encode().hex()


async def _bucket(nc: NatsClient, timeout: float = 5.0) -> KeyValue:
    js = nc.jetstream(timeout=timeout)
    try:
        return await js.key_value(REVOKED_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=REVOKED_BUCKET, history=1, description="disabled accounts")


async def revoke(nats_url: str, sub: str, at: dt.datetime | None = None, timeout: float = 5.0) -> None:
    """Refuse `sub`'s tokens issued up to `at` (now): OSError or nats' errors when NATS is away."""
    moment = int((at or dt.datetime.now(dt.UTC)).timestamp())
    nc = await nats.connect(servers(nats_url), connect_timeout=5, allow_reconnect=False)
    try:
        await (await _bucket(nc, timeout)).put(key_of(sub), str(moment).encode())
    finally:
        await close_nats(nc)


class Revocations:
    """The bucket as it stands, kept current by a watch; `refused` is a dictionary lookup."""

    def __init__(self, connection: BackgroundNats) -> None:
        self.connection = connection
        self.until: dict[str, int] = {}  # hex of the name -> tokens issued up to this second are refused
        self._task: asyncio.Task[None] | None = None

    def refused(self, sub: str, issued_at: int) -> bool:
        moment = self.until.get(key_of(sub))
        return moment is not None and issued_at <= moment

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="revocations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        delay = 0.5
        while True:
            try:
                watcher = await (await _bucket(await self.connection.client())).watchall()
                async for entry in watcher:
                    if entry is None:  # the initial values have all been seen
                        continue
                    if entry.value:
                        with contextlib.suppress(ValueError):
                            self.until[entry.key] = int(entry.value.decode())
                    else:
                        self.until.pop(entry.key, None)
            except asyncio.CancelledError:
                raise
            except (OSError, nats.errors.Error) as exc:
                log.warning("revocations.not_watching", error=str(exc)[:200], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def started(connection: BackgroundNats) -> Revocations:
    watch = Revocations(connection)
    watch.start()
    return watch
