"""The projection folds events exactly once, in stream order, with its position in the same transaction."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.base import Stage
from contracts.events import Event
from contracts.fold import AssignmentState, fold
from contracts.subjects import READ_MODEL_DURABLE
from services.progress import readmodel
from services.progress.store import READ_MODEL, create_tables, metadata
from services.shared import projection
from services.shared.consumer import Fetched, Message, Runner
from services.shared.db import make_engine, sqlite_url
from services.shared.projection import Projection
from tests.e2e.support import EventFactory, lifecycle_events


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(sqlite_url(tmp_path / "rm.sqlite"))
    await create_tables(eng)
    yield eng
    await eng.dispose()


def numbered(events: list[Event], start: int = 1) -> list[tuple[int, bytes]]:
    return [(start + i, e.model_dump_json().encode()) for i, e in enumerate(events)]


async def test_rows_are_the_fold_of_each_assignment(engine: AsyncEngine) -> None:
    events = lifecycle_events("p1", n_units=6)
    out = await readmodel.apply_messages(engine, numbered(events))
    assert len(out.applied) == len(events) and out.position == len(events)
    rows = {r["assignment_id"]: r for r in await readmodel.snapshot(engine)}
    for aid in {e.assignment_id for e in events}:
        expected = fold([e for e in events if e.assignment_id == aid])
        assert expected is not None
        assert AssignmentState.model_validate_json(rows[aid]["state"]) == expected
        assert rows[aid]["stage"] == expected.stage.value == Stage.PLANNING
        assert rows[aid]["overdue_level"] == expected.overdue_level.value


async def test_redelivery_and_replay_change_nothing(engine: AsyncEngine) -> None:
    msgs = numbered(lifecycle_events("p1", n_units=4))
    await readmodel.apply_messages(engine, msgs)
    before = await readmodel.snapshot(engine)
    again = await readmodel.apply_messages(engine, msgs[2:5])
    assert again.applied == [] and again.duplicates == [3, 4, 5]
    assert await readmodel.snapshot(engine) == before
    assert await readmodel.position(engine) == len(msgs)


async def test_a_message_ahead_of_a_gap_waits_for_it(engine: AsyncEngine) -> None:
    msgs = numbered(lifecycle_events("p1", n_units=2))
    await readmodel.apply_messages(engine, msgs[:1])
    out = await readmodel.apply_messages(engine, msgs[2:])
    assert out.applied == [] and out.deferred == [m[0] for m in msgs[2:]]
    assert await readmodel.position(engine) == 1
    out = await readmodel.apply_messages(engine, msgs[1:])
    assert len(out.applied) == len(msgs) - 1 and out.position == len(msgs)


async def test_a_gap_below_the_streams_first_message_is_retention_not_loss(engine: AsyncEngine) -> None:
    msgs = numbered(lifecycle_events("p1", n_units=2), start=50)
    out = await projection.apply_batch(engine, READ_MODEL, "c", msgs, first_available=50)
    assert len(out.applied) == len(msgs) and out.position == 50 + len(msgs) - 1


async def test_incremental_in_small_batches_equals_one_big_batch(engine: AsyncEngine, tmp_path: Path) -> None:
    msgs = numbered(lifecycle_events("p1", n_units=9))
    for i in range(0, len(msgs), 4):
        await readmodel.apply_messages(engine, list(reversed(msgs[i : i + 4])))  # order within a batch is fixed up
    other = make_engine(sqlite_url(tmp_path / "other.sqlite"))
    await create_tables(other)
    await readmodel.apply_messages(other, msgs)
    assert await readmodel.snapshot(engine) == await readmodel.snapshot(other)
    await other.dispose()


def rich_stream() -> list[tuple[int, bytes]]:
    """Whole yearly lifecycles (plans, reports, verifications, a new year) and escalations, interleaved."""
    from bench.events import events as lifecycles

    return numbered([*lifecycles("p2", 240), *lifecycle_events("p1", n_units=9)])


async def test_states_kept_between_batches_give_the_rows_read_back_would(engine: AsyncEngine, tmp_path: Path) -> None:
    msgs = rich_stream()
    kept = projection.KeptStates(most=5)  # fewer than the 21 assignments: some are read back
    for i in range(0, len(msgs), 7):
        await readmodel.apply_messages(engine, msgs[i : i + 7], kept=kept)
    assert len(kept) == 5 and kept.position == len(msgs)
    other = make_engine(sqlite_url(tmp_path / "other.sqlite"))
    await create_tables(other)
    for i in range(0, len(msgs), 7):
        await readmodel.apply_messages(other, msgs[i : i + 7])  # every state read back from its row
    assert await readmodel.snapshot(engine) == await readmodel.snapshot(other)
    await other.dispose()


async def test_a_kept_state_is_used_instead_of_its_row(engine: AsyncEngine) -> None:
    f = EventFactory("p1", 1, "yuzhong")
    kept = projection.KeptStates()
    await readmodel.apply_messages(engine, numbered([f.created()]), kept=kept)
    a = READ_MODEL.assignments
    async with engine.begin() as conn:  # the row's state changed behind the fold's back
        await conn.execute(a.update().values(state=AssignmentState(**{**_ids(f), "task_title": "x"}).model_dump_json()))
    await readmodel.apply_messages(engine, numbered([f.accepted()], start=2), kept=kept)
    [row] = await readmodel.snapshot(engine)
    assert AssignmentState.model_validate_json(row["state"]).task_title != "x"


async def test_kept_states_are_dropped_when_another_writer_moved_the_position(engine: AsyncEngine) -> None:
    f = EventFactory("p1", 1, "yuzhong")
    created, accepted, reported = f.created(), f.accepted(), f.reported(40.0)
    kept = projection.KeptStates()
    await readmodel.apply_messages(engine, numbered([created]), kept=kept)
    await readmodel.apply_messages(engine, numbered([accepted], start=2))  # e.g. a rebuild, or another process
    await readmodel.apply_messages(engine, numbered([reported], start=3), kept=kept)
    [row] = await readmodel.snapshot(engine)
    assert AssignmentState.model_validate_json(row["state"]) == fold([created, accepted, reported])
    assert kept.position == 3


async def test_a_rolled_back_batch_forgets_the_kept_states(engine: AsyncEngine) -> None:
    f = EventFactory("p1", 1, "yuzhong")
    created, accepted, reported = f.created(), f.accepted(), f.reported(40.0)
    kept = projection.KeptStates()
    await readmodel.apply_messages(engine, numbered([created]), kept=kept)
    fail = "CREATE TRIGGER no_move BEFORE UPDATE ON rm_tracking BEGIN SELECT RAISE(ABORT, 'refused'); END"
    async with engine.begin() as conn:  # the position's move fails after the states were advanced
        await conn.execute(text(fail))
    with pytest.raises(IntegrityError):
        await readmodel.apply_messages(engine, numbered([accepted, reported], start=2), kept=kept)
    assert len(kept) == 0 and kept.position is None
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER no_move"))
    await readmodel.apply_messages(engine, numbered([accepted], start=2), kept=kept)  # redelivered in part
    [row] = await readmodel.snapshot(engine)
    assert AssignmentState.model_validate_json(row["state"]) == fold([created, accepted])


def _ids(f: EventFactory) -> dict[str, object]:
    e = f.created()
    return {
        "assignment_id": e.assignment_id,
        "programme_id": e.programme_id,
        "task_no": e.task_no,
        "unit_id": e.unit_id,
    }


async def test_unreadable_message_is_skipped_not_blocking(engine: AsyncEngine) -> None:
    f = EventFactory("p1", 1, "yuzhong")
    created, accepted = f.created().model_dump_json().encode(), f.accepted().model_dump_json().encode()
    msgs = [(1, created), (2, b"{not json"), (3, accepted)]
    out = await readmodel.apply_messages(engine, msgs)
    assert out.skipped == [2] and out.applied == [1, 3]
    [row] = await readmodel.snapshot(engine)
    assert row["stage"] == "planning"


async def test_status_filters_and_orders_most_urgent_first(engine: AsyncEngine) -> None:
    a, b, c = EventFactory("p1", 1, "yuzhong"), EventFactory("p1", 2, "yuzhong"), EventFactory("p1", 3, "wanzhou")
    events = [a.created(), b.created(), c.created(), a.accepted(), b.accepted()]
    events += [b.escalated("red"), c.escalated("blue")]
    await readmodel.apply_messages(engine, numbered(events))
    items, total = await readmodel.status_rows(engine, readmodel.StatusFilter(), 50, 0)
    assert total == 3 and [i.overdue_level for i in items] == ["red", "blue", "none"]
    items, total = await readmodel.status_rows(engine, readmodel.StatusFilter(unit_id="yuzhong"), 50, 0)
    assert total == 2
    items, total = await readmodel.status_rows(engine, readmodel.StatusFilter(overdue="any"), 50, 0)
    assert total == 2
    items, total = await readmodel.status_rows(engine, readmodel.StatusFilter(stage=Stage.ASSIGNED), 50, 0)
    assert [i.assignment_id for i in items] == [c.assignment_id]
    items, total = await readmodel.status_rows(engine, readmodel.StatusFilter(tasks_by_programme={"p1": [1, 3]}), 50, 0)
    assert total == 2
    items, total = await readmodel.status_rows(engine, readmodel.StatusFilter(), 1, 1)
    assert total == 3 and len(items) == 1 and items[0].overdue_level == "blue"


async def test_a_batch_read_ahead_folds_as_one_read_then(engine: AsyncEngine, tmp_path: Path) -> None:
    """The runner reads the next batch while one is applied; the rows are those of reading it in `apply`."""
    messages = [Message(seq, "pf.events.x", data) for seq, data in numbered(lifecycle_events("p1", n_units=3))]
    messages.append(Message(len(messages) + 1, "pf.events.x", b"not json"))  # unreadable: skipped both ways
    batches = [messages[:3] + messages[4:6], messages[3:9], messages[9:]]  # a gap, then it filled, then the rest
    ahead = Projection(engine, READ_MODEL, READ_MODEL_DURABLE)
    for batch in batches:
        await ahead.apply(batch, read=ahead.read(batch))
    other_engine = make_engine(sqlite_url(tmp_path / "other.sqlite"))
    await create_tables(other_engine)
    other = Projection(other_engine, READ_MODEL, READ_MODEL_DURABLE)
    for batch in batches:
        await other.apply(batch)
    assert await readmodel.snapshot(engine) == await readmodel.snapshot(other_engine)
    assert await readmodel.position(engine) == await readmodel.position(other_engine) == len(messages)
    await other_engine.dispose()


async def test_reset_drops_only_the_projection(engine: AsyncEngine) -> None:
    await readmodel.apply_messages(engine, numbered(lifecycle_events("p1", 2)))
    await projection.reset(engine, metadata, READ_MODEL)
    assert await readmodel.snapshot(engine) == [] and await readmodel.position(engine) == 0


class FakeNatsMsg:
    """A JetStream message as the runner reads it: its stream seq in the ack subject."""

    def __init__(self, name: str, seq: int) -> None:
        self.reply = f"$JS.ACK.S.d.1.{seq}.{seq}.0.0"
        self.subject, self.data = "pf.events.x", name.encode()


class FakeSub:
    """A pull subscription whose fetches return the given batches, then time out."""

    def __init__(self, batches: list[list[str]]) -> None:
        seqs = itertools.count(1)
        self.batches = [[FakeNatsMsg(name, next(seqs)) for name in names] for names in batches]
        self.fetches: list[int] = []

    async def fetch(self, batch: int, **_: float) -> list[FakeNatsMsg]:
        self.fetches.append(batch)
        if not self.batches:
            raise TimeoutError
        return self.batches.pop(0)


class NamesView:
    """A view whose reading of a batch is its messages' names (the runner's `handle` is replaced)."""

    durable = "d"

    async def load(self) -> int:
        raise AssertionError("not bound in these tests")

    def read(self, batch: list[Message]) -> list[str]:
        return [m.data.decode() for m in batch]

    async def apply(self, *_: Any) -> Any:
        raise AssertionError("handle is replaced in these tests")


async def _batches_handled(linger: float, arrivals: list[list[str]]) -> tuple[list[list[str]], FakeSub]:
    runner = Runner(None, NamesView(), batch_size=8, max_wait=0.01, linger=linger)
    runner._sub = sub = FakeSub(arrivals)
    handled: list[list[str]] = []
    expected = sum(map(len, arrivals))

    async def handle(fetched: Fetched) -> None:
        handled.append(fetched.read)  # the batch as the view read it, ahead of `apply`
        if sum(map(len, handled)) >= expected:
            runner._stopping.set()

    runner.handle = handle  # type: ignore[method-assign]
    await asyncio.wait_for(runner._run(), 5.0)
    return handled, sub


async def test_a_short_batch_waits_for_the_rest_of_its_burst() -> None:
    handled, sub = await _batches_handled(0.02, [["m1"], ["m2", "m3"]])
    assert handled == [["m1", "m2", "m3"]]
    assert sub.fetches[:2] == [8, 7]  # the second fetch asks only for the room left


async def test_without_linger_each_fetch_is_its_own_batch() -> None:
    handled, _ = await _batches_handled(0.0, [["m1"], ["m2", "m3"]])
    assert handled == [["m1"], ["m2", "m3"]]


async def test_a_full_batch_does_not_wait() -> None:
    full = [f"m{i}" for i in range(8)]
    handled, sub = await _batches_handled(30.0, [full])
    assert handled == [full] and set(sub.fetches) == {8}  # a 30 s linger would have timed the run out
