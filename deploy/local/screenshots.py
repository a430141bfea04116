"""The README's screenshots, taken of the example programme on a running `make up` stack.

    make up                                      # in one terminal
    .venv/bin/python -m deploy.local.screenshots # in another: docs/dashboard.png, docs/workbench.png

A few of 渝中区's and 市住房城乡建委's assignments are taken a step on first (accepted, a plan
submitted and approved, a report with a PDF), so the pictures show work, not an empty programme;
a step already taken is left as it is. Tokens are issued with the stack's own key (var/keys), and
Debian's Chromium takes the pictures (tests/support/browser.py finds it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import Any

import httpx

from contracts.base import UserRole
from services.shared.auth import issue_token

PROGRAMME = "cq-2022-79"
DISTRICT, LEAD = "yuzhong", "cq-zjw"  # 渝中区; 市住房城乡建委 leads task 14
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _token(key_dir: Path, role: UserRole, unit: str | None = None) -> str:
    return issue_token(key_dir, role, unit)


async def _step(c: httpx.AsyncClient, path: str, token: str, body: Any = None) -> None:
    r = await c.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    if r.status_code not in (200, 409):  # 409: the step was taken on an earlier run
        raise SystemExit(f"{path}: {r.status_code} {r.text}")


async def take_steps(base: str, key_dir: Path) -> None:
    year = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).year
    district = _token(key_dir, UserRole.DEPARTMENT, DISTRICT)
    supervisor = _token(key_dir, UserRole.SUPERVISOR)
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        for task in (14, 15, 16, 21):
            await _step(c, f"/v1/assignments/{PROGRAMME}.t{task:02d}.{DISTRICT}/accept", district)
        await _step(c, f"/v1/assignments/{PROGRAMME}.t14.{LEAD}/accept", _token(key_dir, UserRole.DEPARTMENT, LEAD))
        aid = f"/v1/assignments/{PROGRAMME}.t14.{DISTRICT}"
        plan = {
            "year": year,
            "milestones": [{"title": "新建建筑绿色建筑占比评估", "due": f"{year}-12-20"}],
            "indicators": [{"name": "绿色建筑占比", "target": 70, "unit": "%"}],
        }
        await _step(c, f"{aid}/plans", district, plan)
        await _step(c, f"{aid}/plans/{year}/review", supervisor, {"decision": "approve", "comment": "同意"})
        auth = {"Authorization": f"Bearer {district}"}
        files = {"file": ("绿色建筑占比统计表.pdf", PDF, "application/pdf")}
        r = await c.post(f"{aid}/evidence", files=files, headers=auth)
        if r.status_code not in (200, 201):
            raise SystemExit(f"evidence upload: {r.status_code} {r.text}")
        evidence = [{k: r.json()[k] for k in ("name", "sha256", "size")}]
        report = {
            "period": f"{year}-Q4",
            "percent": 80,
            "narrative": "全区新建建筑 42 栋，其中绿色建筑 30 栋，占比 71%。",
            "indicator_values": [{"name": "绿色建筑占比", "value": 71}],
            "evidence": evidence,
        }
        await _step(c, f"{aid}/reports", district, report)


async def take_pictures(base: str, key_dir: Path, docs: Path) -> None:
    from playwright.async_api import async_playwright

    from deploy.local.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for who, viewport, path, picture in (
                (_token(key_dir, UserRole.SUPERVISOR), DESKTOP, "/dashboard", "dashboard.png"),
                (
                    _token(key_dir, UserRole.DEPARTMENT, DISTRICT),
                    PHONE,
                    f"/workbench/assignments/{PROGRAMME}.t14.{DISTRICT}",
                    "workbench.png",
                ),
            ):
                # The pages take a bearer token as the API does: no account is needed for the pictures.
                headers = {"Authorization": f"Bearer {who}"}
                context = await browser.new_context(viewport=viewport, locale="zh-CN", extra_http_headers=headers)
                page = await context.new_page()
                await page.goto(base + path)
                await page.screenshot(path=str(docs / picture), full_page=True)
                await context.close()
                print(f"wrote {docs / picture}")
        finally:
            await browser.close()


def main() -> None:
    var = Path(os.environ.get("POLICYFLOW_VAR", "var"))
    key_dir = Path(os.environ.get("POLICYFLOW_KEY_DIR") or var / "keys")
    base = os.environ.get("POLICYFLOW_PROGRESS_URL", "http://127.0.0.1:8102").rstrip("/")
    if not (key_dir / "jwt-signing-key.pem").exists():
        raise SystemExit(f"no signing key under {key_dir}: start the stack with `make up` first")
    asyncio.run(take_steps(base, key_dir))
    asyncio.run(take_pictures(base, key_dir, Path("docs")))


if __name__ == "__main__":
    main()
