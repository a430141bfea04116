"""Single sign-on against a real OpenID provider (oidc-provider under Node.js, tests/oidc) on loopback.

The services run with OIDC_ISSUER set (and so without this installation's own tokens): a district
signs in to the workbench in Chromium through the authorisation code flow with PKCE; the command
line signs in through the browser with a loopback redirect and keeps a refresh token; the API takes
the provider's access tokens and refuses an expired one, one from another issuer, one for another
audience, `alg=none`, and one naming a unit or a role policyflow does not know (403 with the
reason); the provider rotates its signing key and the services follow without a restart.
"""

from __future__ import annotations

import asyncio
import os
import stat
import tomllib
import uuid
import webbrowser
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from contracts.base import Role
from deploy.local.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, why_not
from services.cli.main import app as cli
from services.cli.oidc_login import refreshed
from tests.e2e.support import EventFactory, Stack, running_stack, small_programme
from tests.support.cli_output import json_answer
from tests.support.oidc_provider import OidcProvider
from tests.support.publishing import publish
from tests.support.requirements import require
from tests.support.waiting import caught_up

pytestmark = pytest.mark.browser
HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
async def stack(
    oidc_provider: OidcProvider,
    tmp_path_factory: pytest.TempPathFactory,
    nats_url: str,
    temporal_client: Client,
    temporal_address: str,
) -> AsyncIterator[Stack]:
    require(why_not())
    env = {
        "OIDC_ISSUER": oidc_provider.issuer,
        "OIDC_CLIENT_SECRET": "pages-secret",
        "OIDC_SCOPES": "openid profile offline_access api",
        "OIDC_JWKS_MIN_REFRESH": "0",  # the rate limit has its unit test; here a rotation is followed at once
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        tq = f"tq-oidc-{uuid.uuid4().hex[:8]}"
        tmp = tmp_path_factory.mktemp("oidc-stack")
        async with running_stack(tmp, nats_url, temporal_client, temporal_address, tq, worker=False) as s:
            body = small_programme()
            admin = {"Authorization": f"Bearer {oidc_provider.token('admin')}"}
            async with httpx.AsyncClient(timeout=30) as c:
                r = await c.post(f"{s.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=admin)
                assert r.status_code == 200, r.text
            f = EventFactory(body.programme_id, 1, "yuzhong")
            await caught_up(s, await publish(s.js, [f.created(role=Role.RESPONSIBLE), f.accepted()]))
            yield s


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def loopback_only(context: Any) -> None:
    """The provider's dev pages name a web font: nothing leaves this machine."""
    await context.route(
        lambda url: urlsplit(url).hostname not in ("127.0.0.1", "localhost"), lambda route: route.abort()
    )


async def sign_in_at_provider(page: Any, account: str) -> None:
    """oidc-provider's development sign-in form: any login name (our account id) and password; then
    its consent page, since the scope asks for offline_access (a refresh token)."""
    from playwright.async_api import expect

    await expect(page.locator("input[name=login]")).to_be_visible()
    await page.fill("input[name=login]", account)
    await page.fill("input[name=password]", "any")
    await page.click("button[type=submit]")
    consent = page.get_by_role("button", name="Continue")
    await expect(consent).to_be_visible()
    await consent.click()


async def test_the_workbench_signs_in_through_the_provider_with_pkce(stack: Stack) -> None:
    from playwright.async_api import async_playwright, expect

    base = stack.progress_url
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
            await loopback_only(context)
            page = await context.new_page()
            page.set_default_timeout(15_000)
            asked: list[str] = []
            page.on("request", lambda req: asked.append(req.url) if urlsplit(req.url).path == "/auth" else None)
            await page.goto(f"{base}/workbench")
            await page.click("#login-provider")
            await sign_in_at_provider(page, "department:yuzhong")
            await expect(page.locator("#nav-inbox")).to_be_visible()
            await expect(page.locator("#section-todo li.card")).to_have_count(1)
            query = parse_qs(urlsplit(asked[0]).query)
            assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
            assert query["client_id"] == ["policyflow"] and query["state"] and query["nonce"]
            cookie = next(c for c in await context.cookies() if c["name"] == "pf_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            # Signing out ends the provider's session too: the next sign-in asks for the password again.
            await page.click("#logout")
            await page.get_by_role("button", name="Yes, sign me out").click()
            await expect(page.locator("#login-provider")).to_be_visible()
            assert urlsplit(page.url).path == "/workbench/login"
            await page.click("#login-provider")
            await expect(page.locator("input[name=login]")).to_be_visible()

            # A genuine account of the provider naming a unit that is in no programme: refused, with why.
            other = await browser.new_context(locale="zh-CN")
            await loopback_only(other)
            page = await other.new_page()
            await page.goto(f"{base}/workbench/login")
            await page.click("#login-provider")
            await sign_in_at_provider(page, "department:nowhere")
            await expect(page.locator("body")).to_contain_text("不在任何方案的单位名录中")
            assert not [c for c in await other.cookies() if c["name"] == "pf_session"]
        finally:
            await browser.close()


@pytest.fixture
def cli_config(stack: Stack, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "cli" / "config.toml"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLICYFLOW_PROGRESS_URL", stack.progress_url)
        mp.setenv("POLICYFLOW_CONFIG", str(path))
        mp.delenv("POLICYFLOW_TOKEN", raising=False)
        yield path


async def test_policyflow_login_uses_the_browser_and_keeps_a_refresh_token(stack: Stack, cli_config: Path) -> None:
    from playwright.async_api import async_playwright, expect

    loop = asyncio.get_running_loop()
    opened: asyncio.Queue[str] = asyncio.Queue()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(webbrowser, "open", lambda url: loop.call_soon_threadsafe(opened.put_nowait, url))
        login = asyncio.create_task(asyncio.to_thread(lambda: CliRunner().invoke(cli, ["login", "--json"])))
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(locale="zh-CN")
                await loopback_only(context)
                page = await context.new_page()
                page.set_default_timeout(15_000)
                url = await asyncio.wait_for(opened.get(), 30)
                query = parse_qs(urlsplit(url).query)
                assert query["redirect_uri"][0].startswith("http://127.0.0.1:") and query["code_challenge"]
                await page.goto(url)
                await sign_in_at_provider(page, "supervisor::unit:yuzhong")
                await expect(page.locator("body")).to_contain_text("Signed in")
            finally:
                await browser.close()
        out = await asyncio.wait_for(login, 30)
    assert out.exit_code == 0, out.output
    assert json_answer(out.stdout)["supervises"] == ["unit:yuzhong"]
    assert stat.S_IMODE(os.stat(cli_config).st_mode) == 0o600
    saved = tomllib.loads(cli_config.read_text())
    assert saved["refresh_token"] and saved["client_id"] == "policyflow-cli"
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{stack.progress_url}/v1/status", headers=bearer(saved["token"]))
        assert r.status_code == 200, r.text
        with httpx.Client(timeout=30) as sync_http:
            renewed = await asyncio.to_thread(refreshed, sync_http, saved)
        assert renewed["token"] != saved["token"]
        r = await http.get(f"{stack.progress_url}/v1/status", headers=bearer(renewed["token"]))
        assert r.status_code == 200, r.text


async def test_the_api_checks_the_providers_tokens(stack: Stack, oidc_provider: OidcProvider) -> None:
    p = oidc_provider
    status = f"{stack.progress_url}/v1/status"
    async with httpx.AsyncClient(timeout=30) as http:

        async def answer(token: str, url: str = status) -> tuple[int, str]:
            r = await http.get(url, headers=bearer(token))
            return r.status_code, str(r.json().get("detail", ""))

        assert (await answer(p.token("supervisor")))[0] == 200
        assert (await answer(p.token("auditor"), f"{stack.assignment_url}/v1/units/yuzhong/assignments"))[0] == 200

        p.rotate("k2")  # a new signing key; the services have only seen k1
        rotated = p.token("supervisor")
        assert jwt.get_unverified_header(rotated)["kid"] == "k2"
        assert (await answer(rotated))[0] == 200

        past = p.claims("supervisor", iat=1_700_000_000, exp=1_700_000_600)
        for token, said in (
            (p.sign(past), "expired"),
            (p.sign(p.claims("supervisor", iss="http://127.0.0.1:9/other")), "another issuer"),
            (p.sign(p.claims("supervisor", aud="another-api")), "another audience"),
            (jwt.encode(p.claims("supervisor"), "", algorithm="none"), "algorithm 'none' is not accepted"),
            (stack.headers("supervisor")["Authorization"][7:], "AUTH_LOCAL_TOKENS=false"),
        ):
            code, detail = await answer(token)
            assert code == 401 and said in detail, (said, detail)

        code, detail = await answer(p.token("department:nowhere"))
        assert code == 403 and "unit nowhere is not a known unit" in detail
        code, detail = await answer(
            p.token("department:nowhere"), f"{stack.assignment_url}/v1/units/nowhere/assignments"
        )
        assert code == 403 and "unit nowhere is not a known unit" in detail
        code, detail = await answer(p.token("mayor"))
        assert code == 403 and "names no policyflow role" in detail
