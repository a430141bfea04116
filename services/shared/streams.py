"""The streams, created in one place: by the worker, the services, `deploy/local` and tests."""

from __future__ import annotations

import asyncio
import dataclasses

import structlog
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo
from nats.js.errors import NotFoundError, ServerError, ServiceUnavailableError

from contracts.subjects import STREAM_MAX_BYTES, event_stream_config

log = structlog.get_logger("streams")


async def ensure_event_stream(
    js: JetStreamContext, replicas: int = 1, wait: float = 30.0, max_bytes: int = STREAM_MAX_BYTES
) -> None:
    """Create the event stream with `replicas` copies (NATS_REPLICAS) if it does not exist.

    An existing stream keeps its configuration, except that a replica count below `replicas`
    is raised (a deployment moved to a cluster); it is never lowered here. While a cluster
    elects its leaders the JetStream API may not answer, and right after a stream was deleted
    the server may still be removing its files ("error creating store"): retried for up to
    `wait` seconds.
    """
    await ensure_stream(js, event_stream_config(replicas, max_bytes), wait)


async def ensure_stream(js: JetStreamContext, config: dict[str, object], wait: float = 30.0) -> None:
    """Create the stream `config` describes if it does not exist; an existing one keeps its
    configuration, except that a lower replica count is raised to the configured one."""
    replicas = int(config.get("num_replicas", 1))  # type: ignore[call-overload]
    name = str(config["name"])
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            info = await _stream_or_create(js, config, name)
            break
        except (TimeoutError, NoRespondersError, ServiceUnavailableError, ServerError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("stream.not_ready", stream=name, error=repr(exc))
            await asyncio.sleep(0.5)
    if info is None:
        log.info("stream.created", stream=name, replicas=replicas)
        return
    have = info.config.num_replicas or 1
    if have < replicas:
        try:
            await js.update_stream(dataclasses.replace(info.config, num_replicas=replicas))
            log.info("stream.replicas_raised", stream=name, replicas=replicas, was=have)
        except NatsError as exc:
            log.warning("stream.replicas_not_raised", stream=name, replicas=have, wanted=replicas, error=str(exc))


async def _stream_or_create(js: JetStreamContext, config: dict[str, object], name: str) -> StreamInfo | None:
    """The existing stream's info, or None after creating it."""
    try:
        return await js.stream_info(name)
    except NotFoundError:
        pass
    try:
        await js.add_stream(StreamConfig(**config))  # type: ignore[arg-type]
        return None
    except (NatsError, TimeoutError) as exc:
        # Created meanwhile by another process, or this user may not create it: fail only if it is not there.
        try:
            return await js.stream_info(name)
        except NotFoundError:
            raise exc from None
