"""Accounts of the embedded default and the pages' sessions (tables in services/progress/store.py).

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
setting). A sign-in answers the same for a wrong name and a wrong password, and costs one hash
either way. Failed sign-ins in a row are counted per name (existing or not): after
`max_failures` the name is locked for `lock_minutes`, during which even the right password is
refused with the same words, so a lock-out tells nothing about which names are accounts.

A session is a random id in the cookie; the table keeps its SHA-256, the person's role, unit and
supervised area (as they were at sign-in), a CSRF token for the forms and the expiry. Disabling an
account or resetting its password ends its sessions.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.base import UserRole
from services.progress.store import sessions, sign_in_failures, users
from services.shared.auth import HUMAN_ROLES, AuthError, Principal, check_area

HASHER = PasswordHasher()  # argon2id


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is no account, so that both answers take as long."""
    return HASHER.hash(secrets.token_urlsafe(16))


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
WRONG = "用户名或密码不正确 (wrong user name or password)"


class AccountError(Exception):
    """A request about accounts that cannot be done; the message says why in plain words."""


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    unit_id: str | None
    supervises: tuple[str, ...]
    programmes: tuple[str, ...]
    disabled: bool
    created_at: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes for what was stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def new_password() -> str:
    """A first password to hand over once: 16 characters from a URL-safe alphabet (96 bits)."""
    return secrets.token_urlsafe(12)


def check_account(
    name: str, role: str, unit_id: str | None, supervises: tuple[str, ...], programmes: tuple[str, ...]
) -> UserRole:
    if not NAME_RE.fullmatch(name):
        raise AccountError(
            f"用户名 {name!r} 不可用：只能用字母、数字和 . _ @ -，最长 100 个字符 "
            "(a user name is letters, digits and . _ @ -, up to 100 characters)"
        )
    roles = {r.value: r for r in HUMAN_ROLES}
    if role not in roles:
        raise AccountError(f"没有角色 {role!r}；可选 {', '.join(roles)} (unknown role)")
    if roles[role] == UserRole.DEPARTMENT and not unit_id:
        raise AccountError("单位账号需要 --unit 单位代码 (a department account needs --unit UNIT)")
    try:
        check_area(roles[role], supervises, programmes)  # the same rules as a token's
    except AuthError as exc:
        raise AccountError(str(exc)) from exc
    return roles[role]


async def add_user(
    engine: AsyncEngine,
    name: str,
    role: str,
    unit_id: str | None = None,
    supervises: tuple[str, ...] = (),
    programmes: tuple[str, ...] = (),
) -> str:
    """Create the account; returns its first password (shown once, never stored in clear)."""
    supervises, programmes = tuple(dict.fromkeys(supervises)), tuple(dict.fromkeys(programmes))
    check_account(name, role, unit_id, supervises, programmes)
    password, now = new_password(), _now()
    async with engine.begin() as conn:
        if (await conn.execute(select(users.c.name).where(users.c.name == name))).first():
            raise AccountError(f"用户 {name} 已存在；要换密码请用 users reset-password (user {name} exists)")
        await conn.execute(
            users.insert().values(
                name=name, role=role, unit_id=unit_id, supervises=json.dumps(list(supervises)),
                programmes=json.dumps(list(programmes)),
                password_hash=HASHER.hash(password), disabled=False, created_at=now, password_set_at=now,
            )
        )  # fmt: skip
    return password


async def list_users(engine: AsyncEngine) -> list[Account]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(users).order_by(users.c.name))).all()
    return [
        Account(
            r.name,
            r.role,
            r.unit_id,
            tuple(json.loads(r.supervises)),
            tuple(json.loads(r.programmes)),
            bool(r.disabled),
            _aware(r.created_at),
        )
        for r in rows
    ]


async def _existing(conn: object, name: str) -> None:
    found = await conn.execute(select(users.c.name).where(users.c.name == name))  # type: ignore[attr-defined]
    if not found.first():
        raise AccountError(f"没有用户 {name} (no user {name})")


async def disable_user(engine: AsyncEngine, name: str) -> int:
    """Disable the account and end its sessions; returns how many sessions ended."""
    async with engine.begin() as conn:
        await _existing(conn, name)
        await conn.execute(update(users).where(users.c.name == name).values(disabled=True))
        ended = await conn.execute(delete(sessions).where(sessions.c.user_name == name))
    return int(ended.rowcount or 0)


async def reset_password(engine: AsyncEngine, name: str) -> str:
    """A new password (shown once); the account is enabled again, unlocked, and its sessions end."""
    password = new_password()
    async with engine.begin() as conn:
        await _existing(conn, name)
        await conn.execute(
            update(users)
            .where(users.c.name == name)
            .values(password_hash=HASHER.hash(password), password_set_at=_now(), disabled=False)
        )
        await conn.execute(delete(sessions).where(sessions.c.user_name == name))
        await conn.execute(delete(sign_in_failures).where(sign_in_failures.c.name == name))
    return password


@dataclass(frozen=True)
class SignInPolicy:
    max_failures: int = 5
    lock_minutes: float = 15.0


def _verify(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def check_password(engine: AsyncEngine, name: str, password: str, policy: SignInPolicy) -> Principal:
    """The account's person, or AccountError with the same words for every kind of failure
    (locked names say so: the lock covers names that are no account alike)."""
    now = _now()
    if not NAME_RE.fullmatch(name):  # no account has it; never sent to the database (NUL, odd bytes)
        _verify(_dummy_hash(), password)
        raise AccountError(WRONG)
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.name == name))).first()
        failed = (await conn.execute(select(sign_in_failures).where(sign_in_failures.c.name == name))).first()
    if failed is not None and failed.locked_until is not None and _aware(failed.locked_until) > now:
        _verify(_dummy_hash(), password)
        minutes = max(1, round((_aware(failed.locked_until) - now).total_seconds() / 60))
        raise AccountError(
            f"连续输错次数过多，该用户名已暂时锁定，请 {minutes} 分钟后再试，或请管理员重置密码 "
            f"(too many failed sign-ins: locked for {minutes} more minutes)"
        )
    ok = _verify(row.password_hash if row is not None else _dummy_hash(), password)
    if row is None or not ok or row.disabled:
        await _count_failure(engine, name, failed.failures if failed else 0, policy)
        raise AccountError(WRONG)
    if failed is not None:
        async with engine.begin() as conn:
            await conn.execute(delete(sign_in_failures).where(sign_in_failures.c.name == name))
    if HASHER.check_needs_rehash(row.password_hash):
        async with engine.begin() as conn:
            await conn.execute(update(users).where(users.c.name == name).values(password_hash=HASHER.hash(password)))
    return _person(row.name, row)


def _person(sub: str, row: Any) -> Principal:
    return Principal(
        sub=sub, role=UserRole(row.role), unit_id=row.unit_id,
        supervises=tuple(json.loads(row.supervises)), programmes=tuple(json.loads(row.programmes)),
    )  # fmt: skip


async def _count_failure(engine: AsyncEngine, name: str, before: int, policy: SignInPolicy) -> None:
    failures = before + 1
    locked = _now() + dt.timedelta(minutes=policy.lock_minutes) if failures >= policy.max_failures else None
    values = {"failures": 0 if locked else failures, "locked_until": locked}
    async with engine.begin() as conn:
        done = await conn.execute(update(sign_in_failures).where(sign_in_failures.c.name == name).values(**values))
        if not done.rowcount:
            await conn.execute(sign_in_failures.insert().values(name=name, **values))


# ---- sessions ----------------------------------------------------------------------------------


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    who: Principal
    csrf: str
    expires_at: dt.datetime
    access_token: str | None


async def open_session(
    engine: AsyncEngine,
    who: Principal,
    hours: float,
    access_token: str | None = None,
) -> tuple[str, Session]:
    """A new session for `who`: the cookie's value and the session."""
    session_id, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), _now()
    expires = now + dt.timedelta(hours=hours)
    async with engine.begin() as conn:
        await conn.execute(sessions.delete().where(sessions.c.expires_at < now))  # the expired ones, on the way
        await conn.execute(
            sessions.insert().values(
                id_hash=_hash(session_id), user_name=who.sub, role=who.role.value, unit_id=who.unit_id,
                supervises=json.dumps(list(who.supervises)), programmes=json.dumps(list(who.programmes)),
                csrf=csrf, created_at=now, expires_at=expires,
                access_token=access_token,
            )
        )  # fmt: skip
    return session_id, Session(who, csrf, expires, access_token)


async def find_session(engine: AsyncEngine, session_id: str) -> Session | None:
    async with engine.connect() as conn:
        r = (await conn.execute(select(sessions).where(sessions.c.id_hash == _hash(session_id)))).first()
    if r is None or _aware(r.expires_at) <= _now():
        return None
    who = _person(r.user_name, r)
    return Session(who, r.csrf, _aware(r.expires_at), r.access_token)


async def end_session(engine: AsyncEngine, session_id: str) -> bool:
    async with engine.begin() as conn:
        done = await conn.execute(delete(sessions).where(sessions.c.id_hash == _hash(session_id)))
    return bool(done.rowcount)
