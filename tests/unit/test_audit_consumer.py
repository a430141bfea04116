"""The audit consumer's decisions, with fakes: where to resume, and how a fetch ends."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, DeliverPolicy
from nats.js.errors import NotFoundError

from contracts.subjects import EVENT_SUBJECTS
from services.audit.subscribers import ConsumerGone, Puller, position_consumer


class FakeJs:
    def __init__(self, info: Any = None, deny_delete: bool = False) -> None:
        self.info = info
        self.deny_delete = deny_delete
        self.calls: list[tuple[str, Any]] = []

    async def consumer_info(self, stream: str, durable: str) -> Any:
        if self.info is None:
            raise NotFoundError()
        return self.info

    async def delete_consumer(self, stream: str, durable: str) -> None:
        if self.deny_delete:
            raise NatsTimeoutError()
        self.calls.append(("delete", durable))

    async def add_consumer(self, stream: str, config: Any) -> None:
        self.calls.append(("add", config))


def info(delivered: int, pending: int) -> Any:
    config = SimpleNamespace(filter_subject=EVENT_SUBJECTS, ack_policy=AckPolicy.ALL)
    return SimpleNamespace(delivered=SimpleNamespace(stream_seq=delivered), num_ack_pending=pending, config=config)


async def test_a_new_consumer_starts_at_the_beginning_or_after_the_position() -> None:
    js = FakeJs()
    assert await position_consumer(js, "S", "audit-ledger", 0, 500) == "created"
    [(_, config)] = js.calls
    assert config.deliver_policy == DeliverPolicy.ALL and config.durable_name == "audit-ledger"
    js = FakeJs()
    await position_consumer(js, "S", "audit-ledger", 41, 500)
    [(_, config)] = js.calls
    assert config.deliver_policy == DeliverPolicy.BY_START_SEQUENCE and config.opt_start_seq == 42


async def test_a_clean_consumer_is_kept_and_a_dirty_one_repositioned() -> None:
    js = FakeJs(info(delivered=40, pending=0))
    assert await position_consumer(js, "S", "audit-ledger", 40, 500) == "bound" and js.calls == []
    # Delivered to a process that died before committing: start again right after our position.
    js = FakeJs(info(delivered=60, pending=20))
    assert await position_consumer(js, "S", "audit-ledger", 40, 500) == "repositioned"
    assert js.calls[0] == ("delete", "audit-ledger") and js.calls[1][1].opt_start_seq == 41
    js = FakeJs(info(delivered=60, pending=20), deny_delete=True)
    assert await position_consumer(js, "S", "audit-ledger", 40, 500) == "bound (not repositioned)"


class FakeNats:
    """Answers each pull request from a list of scripted replies: stream messages and statuses."""

    def __init__(self, available: int, batch_size: int) -> None:
        self.available = list(range(1, available + 1))
        self.batch_size = batch_size
        self.requests: list[dict[str, Any]] = []
        self.cb: Any = None
        self.status = "404"

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Any, **_: Any) -> None:
        self.cb = cb

    async def publish(self, subject: str, data: bytes, reply: str) -> None:
        request = json.loads(data)
        self.requests.append(request)
        take, self.available = self.available[: request["batch"]], self.available[request["batch"] :]
        for seq in take:
            await self.cb(SimpleNamespace(reply=f"$JS.ACK.S.d.1.{seq}.{seq}.0.0", headers=None, data=b"{}"))
        if len(take) < request["batch"]:
            description = {"404": "No Messages", "408": "Request Timeout"}.get(self.status, "Consumer Deleted")
            headers = {"Status": self.status, "Description": description}
            await self.cb(SimpleNamespace(reply="", headers=headers, data=b""))


def seqs(msgs: list[Any]) -> list[int]:
    return [int(m.reply.split(".")[5]) for m in msgs]


async def test_a_fetch_takes_what_is_there_then_waits_only_when_nothing_is() -> None:
    nc = FakeNats(available=7, batch_size=5)
    puller = Puller(nc, "S", "d", 5)
    await puller.subscribe()
    assert seqs(await puller.fetch(0.1)) == [1, 2, 3, 4, 5]  # a full batch, no waiting
    assert nc.requests[-1] == {"batch": 5, "no_wait": True}
    assert seqs(await puller.fetch(0.1)) == [6, 7]  # what is there: the 404 ends the fetch
    nc.status = "408"
    assert await puller.fetch(0.1) == []  # nothing: a waiting request, ended by the server's 408
    assert nc.requests[-2:] == [{"batch": 5, "no_wait": True}, {"batch": 5, "expires": 100_000_000}]


async def test_a_fetch_fails_when_the_consumer_was_deleted() -> None:
    nc = FakeNats(available=0, batch_size=5)
    nc.status = "409"
    puller = Puller(nc, "S", "d", 5)
    await puller.subscribe()
    with pytest.raises(ConsumerGone):
        await puller.fetch(0.1)
