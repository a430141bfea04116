"""NATS_URL may name several servers of a cluster, comma-separated.

nats-py takes a list (a single string is parsed as one URL), so every connect splits it:
`nats.connect(servers(settings.nats_url))`. With all three nodes listed a client starts even
when one is down, and fails over to the others (it also learns them from the cluster).
"""

from __future__ import annotations

import contextlib

from nats.aio.client import Client


def servers(url: str) -> list[str]:
    """`nats://a:4222, nats://b:4222` -> ["nats://a:4222", "nats://b:4222"]."""
    found = [part.strip() for part in url.split(",") if part.strip()]
    if not found:
        raise ValueError("NATS_URL is empty")
    return found


async def close_nats(nc: Client) -> None:
    """Flush what is buffered (acks, publishes) and close; drain would wait out its timeout."""
    with contextlib.suppress(Exception):
        await nc.flush(timeout=2)
    await nc.close()
