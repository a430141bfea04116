"""Accounts of the embedded default over real HTTP: `policyflow users` on the progress database,
password sign-in with a session cookie, the same words for a wrong name and a wrong password, the
lock-out, CSRF refusal of a form without its token, sign-out ending the session on the server, a
bearer token for the command line (`policyflow login`, mode 0600), disabling an account."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client
from typer.testing import CliRunner, Result

from services.cli.main import app as cli
from services.progress.store import sessions
from services.shared.db import make_engine
from tests.e2e.support import Stack, running_stack
from tests.support.cli_output import json_answer
from tests.support.waiting import until

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-accounts-{uuid.uuid4().hex[:8]}"
    async with running_stack(
        tmp_path_factory.mktemp("accounts"), nats_url, temporal_client, temporal_address, tq, worker=False
    ) as s:
        yield s


@pytest.fixture
def cli_env(stack: Stack, tmp_path: Path, nats_url: str) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NATS_URL", nats_url)  # `users disable` revokes the account's tokens there
        mp.setenv("PROGRESS_DATABASE_URL", stack.db_urls["progress"])
        mp.setenv("POLICYFLOW_PROGRESS_URL", stack.progress_url)
        mp.setenv("POLICYFLOW_CONFIG", str(tmp_path / "cli" / "config.toml"))
        mp.delenv("POLICYFLOW_TOKEN", raising=False)
        yield tmp_path / "cli" / "config.toml"


async def invoke(args: list[str], input: str | None = None) -> Result:
    """The command in a thread: it runs its own event loop, and talks to the services on this one."""
    return await asyncio.to_thread(lambda: CliRunner().invoke(cli, args, input=input))


async def session_count(stack: Stack) -> int:
    engine = make_engine(stack.db_urls["progress"])
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(sessions))).scalar_one())
    finally:
        await engine.dispose()


async def sign_in(http: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    await http.get("/workbench/login")
    form = {"username": name, "password": password, "csrf": http.cookies["pf_signin"], "next": "/workbench"}
    return await http.post("/workbench/login", data=form)


@pytest.mark.usefixtures("cli_env")
async def test_users_add_list_and_a_password_sign_in(stack: Stack) -> None:
    out = await invoke(["users", "add", "li.ming", "--role", "department", "--unit", "yuzhong", "--json"])
    assert out.exit_code == 0, out.output
    password = json_answer(out.output)["password"]
    again = await invoke(["users", "add", "li.ming", "--role", "department", "--unit", "yuzhong"])
    assert again.exit_code == 2 and "已存在" in again.output
    bad = await invoke(["users", "add", "wang", "--role", "supervisor", "--supervises", "district:x"])
    assert bad.exit_code == 2 and "unit:UNIT_ID or task:PROGRAMME_ID/TASK_NO" in bad.output
    listed = json_answer((await invoke(["users", "list", "--json"])).output)["items"]
    assert [(u["name"], u["unit_id"], u["disabled"]) for u in listed] == [("li.ming", "yuzhong", False)]
    assert password not in (await invoke(["users", "list", "--json"])).output

    async with httpx.AsyncClient(base_url=stack.progress_url, timeout=30) as http:
        r = await sign_in(http, "li.ming", password)
        assert r.status_code == 303 and r.headers["location"] == "/workbench"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("pf_session="))
        for part in ("HttpOnly", "SameSite=lax", "Path=/", "Max-Age="):
            assert part.lower() in cookie.lower(), cookie
        r = await http.get("/workbench", headers=HTML)
        assert r.status_code == 200 and 'id="logout"' in r.text
        r = await http.get("/dashboard", headers=HTML)  # one session for both areas; a unit is no supervisor
        assert r.status_code == 403


async def test_wrong_name_and_wrong_password_read_alike_then_the_name_is_locked(stack: Stack) -> None:
    name, password = await stack.account("supervisor")
    async with httpx.AsyncClient(base_url=stack.progress_url, timeout=30) as http:
        wrong_password = await sign_in(http, name, "not-it")
        wrong_name = await sign_in(http, "nobody-" + name, "not-it")
        odd_name = await sign_in(http, "x\x00' or 1=1", "not-it")
        assert wrong_password.status_code == wrong_name.status_code == odd_name.status_code == 401
        answers = (wrong_password, wrong_name, odd_name)
        said = {r.text.split('id="login-error">')[1].split("<")[0] for r in answers}
        assert said == {"用户名或密码不正确 (wrong user name or password)"}
        for _ in range(4):  # five failures in a row
            assert (await sign_in(http, name, "not-it")).status_code == 401
        locked = await sign_in(http, name, password)  # even the right password, while locked
        assert locked.status_code == 401 and "锁定" in locked.text and "pf_session" not in http.cookies
        api = await http.post("/v1/auth/token", json={"name": name, "password": password})
        assert api.status_code == 401 and "locked" in api.json()["detail"]


async def test_a_form_without_its_csrf_token_is_refused_and_sign_out_ends_the_session(stack: Stack) -> None:
    name, password = await stack.account("department", "yuzhong")
    async with httpx.AsyncClient(base_url=stack.progress_url, timeout=30) as http:
        r = await http.post("/workbench/login", data={"username": name, "password": password})
        assert r.status_code == 403 and "表单已过期" in r.text  # the sign-in form has its token too
        assert (await sign_in(http, name, password)).status_code == 303
        session_id = http.cookies["pf_session"]
        page = await http.get("/workbench", headers=HTML)
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]

        aid = "t-none.t01.yuzhong"
        r = await http.post(f"/workbench/assignments/{aid}/accept", data={"key": "k1"})
        assert r.status_code == 403 and "表单已过期或不是从本系统页面提交的" in r.text
        r = await http.post(f"/workbench/assignments/{aid}/accept", data={"key": "k1", "csrf": "forged"})
        assert r.status_code == 403
        r = await http.post(f"/workbench/assignments/{aid}/accept", data={"key": "k1", "csrf": csrf})
        assert r.status_code == 404  # past the CSRF check: the assignment does not exist

        before = await session_count(stack)
        r = await http.post("/signout", data={"csrf": "forged", "area": "/workbench"})
        assert r.status_code == 403 and await session_count(stack) == before
        r = await http.post("/signout", data={"csrf": csrf, "area": "/workbench"})
        assert r.status_code == 303 and r.headers["location"] == "/workbench/login"
        assert await session_count(stack) == before - 1
    async with httpx.AsyncClient(base_url=stack.progress_url, timeout=30) as replay:
        replay.cookies.set("pf_session", session_id, path="/")  # the old cookie, kept by someone
        r = await replay.get("/workbench", headers=HTML)
        assert r.status_code == 303 and "/workbench/login" in r.headers["location"]


async def test_login_keeps_a_token_for_the_cli_and_disable_ends_sessions(stack: Stack, cli_env: Path) -> None:
    name, password = await stack.account("supervisor", supervises=("unit:yuzhong",))
    out = await invoke(["login", "--user", name, "--password-stdin", "--json"], input=password + "\n")
    assert out.exit_code == 0, out.output
    assert json_answer(out.output)["supervises"] == ["unit:yuzhong"]
    assert stat.S_IMODE(os.stat(cli_env).st_mode) == 0o600
    token = cli_env.read_text().split('token = "')[1].split('"')[0]
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{stack.progress_url}/v1/status", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        wrong = await invoke(["login", "--user", name, "--password-stdin"], input="nope\n")
        assert wrong.exit_code == 1 and "wrong user name or password" in wrong.output

        http.base_url = httpx.URL(stack.progress_url)
        assert (await sign_in(http, name, password)).status_code == 303
        assert (await http.get("/dashboard", headers=HTML)).status_code == 200
        out = await invoke(["users", "disable", name, "--json"])
        said = json_answer(out.output)
        assert out.exit_code == 0 and said["sessions_ended"] == 1 and said["tokens_revoked"] is True
        assert (await http.get("/dashboard", headers=HTML)).status_code == 303

        async def cli_token_refused() -> bool:
            r = await http.get("/v1/status", headers={"Authorization": f"Bearer {token}"})
            return r.status_code == 401 and "sign in again" in r.text

        await until(cli_token_refused, "the CLI's token refused once the account is disabled")
        assert (await sign_in(http, name, password)).status_code == 401
        out = await invoke(["users", "reset-password", name, "--json"])
        assert (await sign_in(http, name, json_answer(out.output)["password"])).status_code == 303
