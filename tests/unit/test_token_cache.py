"""The memo of verified tokens (services.shared.auth.VerifiedTokens) trusts nothing that a full
verification would refuse: other bytes, another key, an expired token."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from contracts.base import UserRole
from services.shared import auth
from services.shared.auth import AuthError, VerifiedTokens, issue_token, load_public_key


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full verification the memo asks for."""
    seen: list[str] = []
    real = auth.verify_token

    def counted(token: str, public_key: bytes) -> auth.Principal:
        seen.append(token)
        return real(token, public_key)

    monkeypatch.setattr(auth, "verify_token", counted)
    return seen


def test_a_verified_token_is_remembered_until_it_expires(
    tmp_path: Path, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    memo, key = VerifiedTokens(), load_public_key(tmp_path)
    token = issue_token(tmp_path, UserRole.DEPARTMENT, "yuzhong", ttl=dt.timedelta(hours=1))
    first = memo.verify(token, key)
    assert memo.verify(token, key) == first and first.unit_id == "yuzhong"
    assert len(calls) == 1
    # At its expiry time (exp <= now fails in PyJWT) the memo no longer answers: full check again.
    exp = int((dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).timestamp()) + 5
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: float(exp)))
    memo.verify(token, key)
    assert len(calls) == 2


def test_an_expired_token_is_refused_and_not_remembered(tmp_path: Path, calls: list[str]) -> None:
    memo, key = VerifiedTokens(), load_public_key(tmp_path)
    old = issue_token(tmp_path, UserRole.SUPERVISOR, ttl=dt.timedelta(seconds=1),
                      now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))  # fmt: skip
    for _ in range(2):
        with pytest.raises(AuthError, match="expired"):
            memo.verify(old, key)
    assert len(calls) == 2


def test_other_bytes_or_another_key_are_verified_in_full(tmp_path: Path, calls: list[str]) -> None:
    memo, key = VerifiedTokens(), load_public_key(tmp_path)
    token = issue_token(tmp_path, UserRole.SUPERVISOR)
    memo.verify(token, key)
    head, payload, sig = token.split(".")
    tampered = ".".join((head, payload, ("A" if sig[0] != "A" else "B") + sig[1:]))
    with pytest.raises(AuthError):
        memo.verify(tampered, key)
    other_key = load_public_key(tmp_path / "other")
    with pytest.raises(AuthError):
        memo.verify(token, other_key)
    assert len(calls) == 3


def test_the_memo_is_bounded(tmp_path: Path) -> None:
    memo, key = VerifiedTokens(size=3), load_public_key(tmp_path)
    tokens = [issue_token(tmp_path, UserRole.DEPARTMENT, f"unit{i}") for i in range(5)]
    for t in tokens:
        memo.verify(t, key)
    assert len(memo._seen) == 3
    assert [p.unit_id for p, _ in memo._seen.values()] == ["unit2", "unit3", "unit4"]
