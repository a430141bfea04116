"""Sign-in attempts per client address: `per_minute` in any sliding minute, then refused until the
oldest attempt is a minute old; other addresses are counted apart."""

from __future__ import annotations

import time

import pytest

from services.progress import signin


def test_attempts_are_limited_per_address_per_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    attempts = signin.RecentAttempts()
    assert all(attempts.allow("10.0.0.1", 3) for _ in range(3))
    assert not attempts.allow("10.0.0.1", 3)
    assert attempts.allow("10.0.0.2", 3)  # another address has its own count
    now[0] += 59.9
    assert not attempts.allow("10.0.0.1", 3)  # the first three are not yet a minute old
    now[0] += 0.2
    assert attempts.allow("10.0.0.1", 3)
