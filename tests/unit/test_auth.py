"""Tokens: what is trusted and what is refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from contracts.base import UserRole
from services.cli.main import app
from services.shared.auth import AuthError, ensure_keys, issue_token, load_public_key, verify_token


def test_round_trip(tmp_path: Path) -> None:
    token = issue_token(tmp_path, UserRole.DEPARTMENT, "yuzhong")
    p = verify_token(token, load_public_key(tmp_path))
    assert (p.role, p.unit_id, p.sub) == (UserRole.DEPARTMENT, "yuzhong", "department:yuzhong")
    assert p.actor().unit_id == "yuzhong"
    assert (tmp_path / "jwt-signing-key.pem").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "forge, reason",
    [
        (
            lambda _key_dir: jwt.encode(
                {"sub": "x", "role": "supervisor", "aud": "policyflow", "exp": 4e9}, "", "none"
            ),
            "not allowed",
        ),
        (
            lambda _key_dir: jwt.encode(
                {"sub": "x", "role": "supervisor", "aud": "policyflow", "exp": 4e9}, "s" * 32, "HS256"
            ),
            "not allowed",
        ),
        (
            lambda k: issue_token(
                k, UserRole.SUPERVISOR, ttl=dt.timedelta(seconds=1), now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
            ),
            "expired",
        ),
    ],
)
def test_refuses_untrusted_tokens(tmp_path: Path, forge: Callable[[Path], str], reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        verify_token(forge(tmp_path), load_public_key(tmp_path))


def test_refuses_other_key_and_audience(tmp_path: Path) -> None:
    other = issue_token(tmp_path / "other", UserRole.SUPERVISOR)
    with pytest.raises(AuthError, match="invalid token"):
        verify_token(other, load_public_key(tmp_path))
    key = tmp_path / "jwt-signing-key.pem"
    load_public_key(tmp_path)
    wrong_aud = jwt.encode(
        {"sub": "x", "role": "supervisor", "aud": "elsewhere", "exp": 4e9}, key.read_bytes(), "EdDSA"
    )
    with pytest.raises(AuthError, match="audience"):
        verify_token(wrong_aud, load_public_key(tmp_path))


def test_department_needs_a_unit(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="needs a unit"):
        issue_token(tmp_path, UserRole.DEPARTMENT)


def test_cli_prints_token_alone(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["token", "issue", "--role", "verifier", "--key-dir", str(tmp_path)])
    assert ok.exit_code == 0
    assert verify_token(ok.stdout.strip(), load_public_key(tmp_path)).role == UserRole.VERIFIER
    bad = runner.invoke(app, ["token", "issue", "--role", "department", "--key-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "needs a unit" in bad.output
    worse = runner.invoke(app, ["token", "issue", "--role", "root", "--key-dir", str(tmp_path)])
    assert worse.exit_code == 2 and "unknown role" in worse.output


def test_supervised_area_and_programmes_travel_in_the_token(tmp_path: Path) -> None:
    area = ("unit:yuzhong", "task:cq-2022-79/14")
    token = issue_token(tmp_path, UserRole.SUPERVISOR, supervises=area, programmes=("cq-2022-79",))
    p = verify_token(token, load_public_key(tmp_path))
    assert (p.supervises, p.programmes, p.city_wide) == (area, ("cq-2022-79",), False)
    assert (p.supervised_units, p.supervised_tasks) == (frozenset({"yuzhong"}), frozenset({("cq-2022-79", 14)}))
    assert p.in_programme("cq-2022-79") and not p.in_programme("cq-2030-1")
    city = verify_token(issue_token(tmp_path, UserRole.VERIFIER), load_public_key(tmp_path))
    assert city.city_wide and city.in_programme("anything")
    admin = verify_token(issue_token(tmp_path, UserRole.ADMIN), load_public_key(tmp_path))
    assert (admin.role, admin.city_wide) == (UserRole.ADMIN, False)


@pytest.mark.parametrize(
    "role, supervises, programmes, reason",
    [
        (UserRole.SUPERVISOR, ("district:yuzhong",), (), "is not unit:UNIT_ID or task:PROGRAMME_ID/TASK_NO"),
        (UserRole.SUPERVISOR, ("task:cq-2022-79/0",), (), "is not unit:UNIT_ID"),
        (UserRole.DEPARTMENT, ("task:cq-2022-79/14",), (), "only supervisors and verifiers"),
        (UserRole.AUDITOR, ("unit:yuzhong",), (), "only supervisors and verifiers"),
        (UserRole.SUPERVISOR, (), ("Not A Programme",), "is not a programme id"),
    ],
)
def test_an_area_is_refused_when_issued_and_when_read(
    tmp_path: Path, role: UserRole, supervises: tuple[str, ...], programmes: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(AuthError, match=reason):
        issue_token(tmp_path, role, "yuzhong", supervises=supervises, programmes=programmes)
    private, _ = ensure_keys(tmp_path)
    claims = {"sub": "x", "role": role.value, "unit_id": "yuzhong", "aud": "policyflow", "exp": 4e9,
              "supervises": list(supervises), "programmes": list(programmes)}  # fmt: skip
    forged = jwt.encode(claims, private.read_bytes(), "EdDSA")
    with pytest.raises(AuthError, match=reason):
        verify_token(forged, load_public_key(tmp_path))


def test_cli_issues_a_scoped_token(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["token", "issue", "--role", "supervisor", "--key-dir", str(tmp_path), "--supervises", "unit:yuzhong",
            "--supervises", "task:cq-2022-79/14", "--programme", "cq-2022-79"]  # fmt: skip
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    p = verify_token(ok.stdout.strip(), load_public_key(tmp_path))
    assert (p.supervises, p.programmes) == (("unit:yuzhong", "task:cq-2022-79/14"), ("cq-2022-79",))
    bad = runner.invoke(app, ["token", "issue", "--role", "supervisor", "--key-dir", str(tmp_path),
                              "--supervises", "yuzhong"])  # fmt: skip
    assert bad.exit_code == 2 and "unit:UNIT_ID" in bad.output
    admin = runner.invoke(app, ["token", "issue", "--role", "admin", "--key-dir", str(tmp_path)])
    assert verify_token(admin.stdout.strip(), load_public_key(tmp_path)).role == UserRole.ADMIN
