"""The consumer runner's decisions, with fakes: where a durable resumes, what is acked or sent back;
and the ledger as its view (a real SQLite file): stream order, and a fresh state after a failure."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, DeliverPolicy
from nats.js.errors import NotFoundError

from contracts.access_log import AccessBatch, AccessDecided
from contracts.subjects import EVENT_SUBJECTS
from services.audit import queries
from services.audit.access_view import AccessView
from services.audit.ingest import Ingestor
from services.audit.store import create_tables
from services.shared.consumer import Message, Runner, consumer_config, in_order, place_consumer
from services.shared.db import make_engine, sqlite_url
from tests.integration.audit_support import lifecycle


class FakeJs:
    def __init__(self, info: Any = None, deny_delete: bool = False, first_seq: int = 1) -> None:
        self.info = info
        self.deny_delete = deny_delete
        self.first_seq = first_seq
        self.calls: list[tuple[str, Any]] = []

    async def consumer_info(self, _stream: str, _durable: str) -> Any:
        if self.info is None:
            raise NotFoundError()
        return self.info

    async def delete_consumer(self, _stream: str, durable: str) -> None:
        if self.deny_delete:
            raise NatsTimeoutError()
        self.calls.append(("delete", durable))

    async def add_consumer(self, _stream: str, config: Any) -> None:
        self.calls.append(("add", config))

    async def stream_info(self, _stream: str) -> Any:
        return SimpleNamespace(state=SimpleNamespace(first_seq=self.first_seq))


def info(delivered: int, pending: int, ack_policy: AckPolicy = AckPolicy.EXPLICIT) -> Any:
    config = SimpleNamespace(filter_subject=EVENT_SUBJECTS, ack_policy=ack_policy)
    return SimpleNamespace(delivered=SimpleNamespace(stream_seq=delivered), num_ack_pending=pending, config=config)


def config_at(position: int) -> Any:
    return consumer_config("audit-ledger", EVENT_SUBJECTS, position, 500, 60.0)


async def test_a_new_consumer_starts_at_the_beginning_or_after_the_position() -> None:
    js = FakeJs()
    assert await place_consumer(js, "S", config_at(0), 0) == "created"
    [(_, config)] = js.calls
    assert config.deliver_policy == DeliverPolicy.ALL and config.durable_name == "audit-ledger"
    assert config.ack_policy == AckPolicy.EXPLICIT
    js = FakeJs()
    await place_consumer(js, "S", config_at(41), 41)
    [(_, config)] = js.calls
    assert config.deliver_policy == DeliverPolicy.BY_START_SEQUENCE and config.opt_start_seq == 42


async def test_a_clean_consumer_is_kept_and_a_dirty_one_repositioned() -> None:
    js = FakeJs(info(delivered=40, pending=0))
    assert await place_consumer(js, "S", config_at(40), 40) == "bound" and js.calls == []
    # Delivered to a process that died before committing: start again right after our position.
    js = FakeJs(info(delivered=60, pending=20))
    assert await place_consumer(js, "S", config_at(40), 40) == "repositioned"
    assert js.calls[0] == ("delete", "audit-ledger") and js.calls[1][1].opt_start_seq == 41
    js = FakeJs(info(delivered=60, pending=20), deny_delete=True)
    assert await place_consumer(js, "S", config_at(40), 40) == "bound (not repositioned)"
    # Made with another ack policy: made again.
    js = FakeJs(info(delivered=40, pending=0, ack_policy=AckPolicy.ALL))
    assert await place_consumer(js, "S", config_at(40), 40) == "repositioned"


def test_a_batch_is_split_at_the_first_gap() -> None:
    assert in_order([7, 5, 3, 4, 9], position=3) == ([4, 5], [3], [7, 9])
    # Below the stream's first message a gap is retention, not loss.
    assert in_order([50, 51, 53], position=0, first_available=50) == ([50, 51], [], [53])


class FakeMsg:
    def __init__(self, seq: int) -> None:
        self.reply = f"$JS.ACK.S.d.1.{seq}.{seq}.0.0"
        self.subject, self.data = "pf.events.x", b"{}"
        self.acked = False
        self.nak_delay: float | None = None

    async def ack(self) -> None:
        self.acked = True

    async def nak(self, delay: float) -> None:
        self.nak_delay = delay


class FakeView:
    """A view at `position` that applies what is in order, and can be made to fail."""

    durable = "d"

    def __init__(self, position: int, fail: bool = False) -> None:
        self.position, self.fail = position, fail
        self.calls: list[int] = []

    async def load(self) -> int:
        return self.position

    def read(self, batch: list[Message]) -> list[int]:
        return [m.stream_seq for m in batch]

    async def apply(self, batch: list[Message], first_available: int = 1, read: Any = None) -> Any:
        assert read == [m.stream_seq for m in batch]  # read ahead by the runner, handed over as it was
        self.calls.append(first_available)
        if self.fail:
            raise RuntimeError("database is locked")
        ready, _, deferred = in_order([m.stream_seq for m in batch], self.position, first_available)
        self.position = ready[-1] if ready else self.position
        return SimpleNamespace(deferred=deferred, position=self.position)


async def test_committed_messages_are_acked_and_those_ahead_of_a_gap_sent_back() -> None:
    msgs = [FakeMsg(s) for s in (11, 12, 14)]
    runner = Runner(FakeJs(), FakeView(10))
    out = await runner.handle(runner.fetched(msgs))
    assert out is not None and out.position == 12
    assert [(m.acked, m.nak_delay) for m in msgs] == [(True, None), (True, None), (False, 0.5)]


async def test_a_gap_below_the_streams_first_message_is_applied_through() -> None:
    view = FakeView(10)
    msgs = [FakeMsg(s) for s in (30, 31)]
    runner = Runner(FakeJs(first_seq=30), view)
    await runner.handle(runner.fetched(msgs))
    assert view.calls == [1, 30] and view.position == 31 and all(m.acked for m in msgs)


async def test_a_failed_batch_is_sent_back_whole() -> None:
    msgs = [FakeMsg(s) for s in (1, 2)]
    runner = Runner(FakeJs(), FakeView(0, fail=True))
    assert await runner.handle(runner.fetched(msgs)) is None
    assert [(m.acked, m.nak_delay) for m in msgs] == [(False, 1.0), (False, 1.0)]


class BindingJs(FakeJs):
    """Also binds a pull subscription, as a runner does after repositioning."""

    async def pull_subscribe_bind(self, durable: str, _stream: str) -> Any:
        self.calls.append(("bind", durable))
        return SimpleNamespace()


async def test_an_idle_runner_repositions_past_acks_the_server_lost() -> None:
    """A server restarted before storing some acks holds applied deliveries as unacknowledged (it would
    send them again only after ack_wait): an idle runner puts the consumer right after its position."""
    js = BindingJs(info(delivered=40, pending=1))
    runner = Runner(js, FakeView(40))
    runner._position = 40
    await runner._clear_lost_acks()
    assert [c[0] for c in js.calls] == ["delete", "add", "bind"] and js.calls[1][1].opt_start_seq == 41
    # Delivered beyond what the view applied (a gap being waited for): left alone.
    js = BindingJs(info(delivered=45, pending=3))
    runner = Runner(js, FakeView(40))
    runner._position = 40
    await runner._clear_lost_acks()
    assert js.calls == []


@pytest.fixture
async def ingestor(tmp_path: Path) -> AsyncIterator[Ingestor]:
    engine = make_engine(sqlite_url(tmp_path / "audit.sqlite"))
    await create_tables(engine)
    yield Ingestor(engine, "audit-ledger")
    await engine.dispose()


def messages(start: int = 1) -> list[Message]:
    return [
        Message(n, f"pf.events.{e.type}", e.model_dump_json().encode())
        for n, e in enumerate(lifecycle(14, "yuzhong"), start)
    ]


async def test_the_ledger_appends_in_stream_order_and_waits_for_a_gap(ingestor: Ingestor) -> None:
    msgs = messages()
    out = await ingestor.apply(msgs[:3] + msgs[4:6])
    assert (out.appended, out.position, out.deferred) == (3, 3, [5, 6])
    again = await ingestor.apply(msgs[:6])  # the first three again: already in, not even looked at
    assert (again.appended, again.duplicates, again.position, again.deferred) == (3, 0, 6, [])
    assert ingestor.size == 6


async def test_a_batch_read_ahead_appends_what_reading_it_then_would(ingestor: Ingestor, tmp_path: Path) -> None:
    """The runner reads a batch while the one before is applied: the ledger then takes from that
    reading only the messages it has not got and that are not ahead of a gap, as if it had read them itself."""
    msgs = messages()
    broken = Message(7, "pf.events.x", b'{"not": "an event"}')
    batches = [msgs[:3], msgs[1:4] + msgs[5:6], [*msgs[3:6], broken]]
    for batch in batches:
        await ingestor.apply(batch, read=ingestor.read(batch))
    other = Ingestor(make_engine(sqlite_url(tmp_path / "other.sqlite")), "audit-ledger")
    await create_tables(other.engine)
    for batch in batches:
        await other.apply(batch)
    assert (ingestor.size, ingestor.position, ingestor.head) == (other.size, other.position, other.head)
    assert (ingestor.size, ingestor.position) == (6, 7)  # the broken one set aside, past it
    await other.engine.dispose()


async def test_after_a_failed_batch_the_ledger_reads_its_state_again(ingestor: Ingestor) -> None:
    msgs = messages()
    await ingestor.apply(msgs[:2])

    async def refuse(_conn: Any) -> None:
        raise RuntimeError("not the writer")

    ingestor.fence = refuse
    with pytest.raises(RuntimeError):
        await ingestor.apply(msgs[2:4])
    assert ingestor.stale
    ingestor.fence = None
    ingestor.size = 99  # what it held in memory no longer counts
    out = await ingestor.apply(msgs[2:4])
    assert (out.appended, ingestor.size, ingestor.position) == (2, 4, 4)


async def test_refusals_from_the_access_log_join_the_chain_once(ingestor: Ingestor) -> None:
    """The ledger's second input (access_view.py): refusals of named callers are chained between the
    events, once each however often their batch comes, and the chain verifies; replay skips them."""
    msgs = messages()
    await ingestor.apply(msgs[:2])
    view = AccessView(ingestor.engine, ingestor)
    await view.load()
    at = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    records = [
        AccessDecided(
            request_id=f"r{n}",
            at=at,
            service="progress",
            method="POST",
            route="/v1/assignments/{assignment_id}/review",
            path="/v1/assignments/cq-2022-79.t14.yuzhong/review",
            status=status,
            allowed=False,
            why="not your area",
            sub=sub,
            role="supervisor" if sub else None,
            unit_id=None,
            target="cq-2022-79.t14.yuzhong",
        )
        for n, (sub, status) in enumerate([("li.na", 403), (None, 401), ("wang", 403)])
    ]
    batch = [Message(1, "pf.access.progress", AccessBatch(records=records).model_dump_json().encode())]
    assert (await view.apply(batch)).ledgered == 2  # the anonymous 401 stays in the access log only
    await ingestor.apply(msgs[2:4])
    view.position = 0  # the same batch again, as after a crash before the ack: one entry each still
    assert (await view.apply(batch)).ledgered == 0
    assert ingestor.size == 6
    verdict = await queries.verify(ingestor.engine, "", strict=True)
    assert verdict["ok"] is True and verdict["count"] == 6, verdict
    page = await queries.page(ingestor.engine, queries.EventFilter(type="AccessRefused"), 0, 10)
    assert [i["ledger_seq"] for i in page["items"]] == [3, 4]
    first = page["items"][0]
    assert (first["event_id"], first["programme_id"], first["event"]["actor"]["sub"]) == (
        "access:r0",
        "cq-2022-79",
        "li.na",
    )
    states = [s async for s in queries.replay(ingestor.engine, at + dt.timedelta(days=3650), None, None)]
    assert [s.assignment_id for s in states] == ["cq-2022-79.t14.yuzhong"]
