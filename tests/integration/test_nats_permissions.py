"""NATS users and permissions: only the worker publishes events; readers only read.

Connects to a real nats-server configured with deploy/nats/authorization.conf as each
user and shows that a forbidden publish or subscribe is refused by the server itself.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from contracts.access_log import ACCESS_DURABLE, ACCESS_STREAM, ACCESS_SUBJECTS, access_stream_config, access_subject
from contracts.subjects import AUDIT_DURABLE, EVENT_STREAM, event_subject
from deploy.local.servers import Server, nats_passwords, nats_server, nats_user_url
from services.shared.background_nats import BackgroundNats
from services.shared.revocations import Revocations, revoke
from services.shared.streams import ensure_event_stream, ensure_stream
from tests.support.waiting import until


@pytest.fixture(scope="module")
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    state = tmp_path_factory.mktemp("nats-auth")
    server = nats_server(state, auth=True).start()
    yield server, nats_passwords(state)
    server.stop()


async def connect_as(server: Server, passwords: dict[str, str], user: str) -> tuple[NatsClient, list[str]]:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(nats_user_url(server.port, user, passwords), error_cb=on_error, allow_reconnect=False)
    return nc, errors


async def wait_for(errors: list[str], needle: str) -> bool:
    for _ in range(50):
        if any(needle in e.lower() for e in errors):
            return True
        await asyncio.sleep(0.05)
    return False


SUBJECT = event_subject("cq-2022-79", "yuzhong", "ProgressReported")


async def test_worker_publishes_readers_read(secured_nats: tuple[Server, dict[str, str]]) -> None:
    server, passwords = secured_nats
    worker, _ = await connect_as(server, passwords, "worker")
    js = worker.jetstream()
    await ensure_event_stream(js)
    ack = await js.publish(SUBJECT, b"{}", headers={"Nats-Msg-Id": "perm-1"})
    assert ack.stream == EVENT_STREAM and ack.seq == 1

    audit, audit_errors = await connect_as(server, passwords, "audit")
    sub = await audit.jetstream().pull_subscribe(SUBJECT, durable=AUDIT_DURABLE, stream=EVENT_STREAM)
    msgs = await sub.fetch(1, timeout=5)
    assert msgs[0].data == b"{}"
    await msgs[0].ack()
    assert not audit_errors
    await worker.close()
    await audit.close()


@pytest.mark.parametrize("user", ["audit", "progress"])
async def test_readers_cannot_publish_events(secured_nats: tuple[Server, dict[str, str]], user: str) -> None:
    server, passwords = secured_nats
    nc, errors = await connect_as(server, passwords, user)
    with pytest.raises((NatsTimeout, NoRespondersError)):
        await nc.jetstream().publish(SUBJECT, b"forged", headers={"Nats-Msg-Id": f"forged-{user}"}, timeout=1)
    assert await wait_for(errors, "permissions violation for publish")
    await nc.close()


async def test_readers_cannot_subscribe_outside_their_grant(secured_nats: tuple[Server, dict[str, str]]) -> None:
    server, passwords = secured_nats
    nc, errors = await connect_as(server, passwords, "audit")
    await nc.subscribe("pf.events.>")
    await nc.flush()
    assert await wait_for(errors, "permissions violation for subscription")
    await nc.close()


async def test_readers_cannot_delete_or_purge(secured_nats: tuple[Server, dict[str, str]]) -> None:
    server, passwords = secured_nats
    nc, errors = await connect_as(server, passwords, "audit")
    with pytest.raises((NatsTimeout, NoRespondersError)):
        await nc.jetstream(timeout=1).purge_stream(EVENT_STREAM)
    assert await wait_for(errors, "permissions violation for publish")
    await nc.close()


async def test_wrong_password_is_refused(secured_nats: tuple[Server, dict[str, str]]) -> None:
    server, _ = secured_nats
    with pytest.raises(Exception, match="(?i)authorization"):
        await nats.connect(
            f"nats://worker:wrong@127.0.0.1:{server.port}",
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )


def test_passwords_are_owner_only(tmp_path: Path) -> None:
    nats_passwords(tmp_path)
    assert (tmp_path / "passwords.env").stat().st_mode & 0o077 == 0


async def test_services_log_access_and_watch_revocations_under_their_own_users(
    secured_nats: tuple[Server, dict[str, str]],
) -> None:
    """Each service publishes its access decisions on its own subject and watches the disabled
    accounts; the audit user keeps the access stream; nobody but admin records a revocation."""
    server, passwords = secured_nats
    for user in ("assignment", "progress", "audit", "notify"):
        nc, errors = await connect_as(server, passwords, user)
        js = nc.jetstream()
        await ensure_stream(js, access_stream_config())
        ack = await js.publish(access_subject(user), b"{}", headers={"Nats-Msg-Id": f"perm-access-{user}"})
        assert ack.stream == ACCESS_STREAM
        background = BackgroundNats(nats_user_url(server.port, user, passwords), f"{user}-background")
        watch = Revocations(background)
        watch.start()
        try:
            await revoke(nats_user_url(server.port, "admin", passwords), f"someone-{user}")
            await until(functools.partial(watch.refused, f"someone-{user}", 0), f"{user} sees the revocation")
        finally:
            await watch.stop()
            await background.close()
        if user == "progress":  # not another service's subject
            with pytest.raises((NatsTimeout, NoRespondersError)):
                await js.publish(access_subject("audit"), b"{}", timeout=0.5)
        assert not [e for e in errors if "subscription" in e.lower()]
        await nc.close()
    with pytest.raises(nats.errors.Error):  # a service cannot write the revocations
        await revoke(nats_user_url(server.port, "progress", passwords), "anyone", timeout=0.5)
    audit, errors = await connect_as(server, passwords, "audit")
    sub = await audit.jetstream().pull_subscribe(ACCESS_SUBJECTS, durable=ACCESS_DURABLE, stream=ACCESS_STREAM)
    assert len(await sub.fetch(4, timeout=5)) == 4 and not errors
    await audit.close()
