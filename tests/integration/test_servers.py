"""The embedded servers start from the wheels and answer."""

from __future__ import annotations

import nats
from temporalio.client import Client


async def test_nats_jetstream_answers(nats_url: str, event_stream: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    info = await js.stream_info(event_stream)
    assert info.config.deny_purge is True
    assert info.config.duplicate_window and info.config.duplicate_window >= 3600
    await nc.close()


async def test_temporal_dev_server_answers(temporal_client: Client) -> None:
    assert (await temporal_client.count_workflows()).count >= 0
