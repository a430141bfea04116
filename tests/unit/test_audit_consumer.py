"""The audit consumer's decisions, with fakes: where to resume, and the faststream fetch fix."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, DeliverPolicy
from nats.js.errors import NotFoundError

from contracts.subjects import EVENT_SUBJECTS
from services.audit.subscribers import _normalize_fetch_timeouts, position_consumer


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


async def test_a_bare_fetch_timeout_becomes_the_one_faststream_expects() -> None:
    outcomes: list[Any] = [TimeoutError(), NatsTimeoutError(), ["m"]]

    class Subscription:
        async def fetch(self, **_: Any) -> Any:
            outcome = outcomes.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

    class Subscriber:
        subscription: Any = None

        async def _create_subscription(self) -> None:
            self.subscription = Subscription()

    subscriber = Subscriber()
    _normalize_fetch_timeouts(subscriber)
    await subscriber._create_subscription()
    for _ in range(2):
        with pytest.raises(NatsTimeoutError):
            await subscriber.subscription.fetch(batch=5, timeout=0.1)
    assert await subscriber.subscription.fetch(batch=5, timeout=0.1) == ["m"]
