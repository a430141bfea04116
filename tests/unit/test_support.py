"""The shared test helpers: waiting, and skipping (or failing under CI) for want of something."""

from __future__ import annotations

import httpx
import pytest

from tests.support.requirements import require
from tests.support.waiting import until


async def test_until_returns_the_first_truthy_value_of_a_plain_or_async_probe() -> None:
    calls: list[int] = []

    def plain() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    async def coroutine() -> str:
        return "ready"

    assert await until(plain, "three calls", timeout=5, interval=0) == 3
    assert await until(coroutine, "ready", timeout=5) == "ready"


async def test_until_asks_again_after_a_transient_error_and_names_what_it_waited_for() -> None:
    answers: list[object] = [httpx.ConnectError("refused"), TimeoutError(), "up"]

    def probe() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await until(probe, "the server", timeout=5, interval=0) == "up"
    with pytest.raises(AssertionError, match=r"the ledger: not reached within 0s; last: 0"):
        await until(lambda: 0, "the ledger", timeout=0.05, interval=0.01)


async def test_until_lets_any_other_error_through() -> None:
    def broken() -> bool:
        raise KeyError("read_model_position")

    with pytest.raises(KeyError):
        await until(broken, "a position", timeout=5)


def test_require_passes_skips_or_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    require(None)
    with pytest.raises(pytest.fail.Exception, match="no Chromium"):
        require("no Chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no Chromium"):
        require("no Chromium")
