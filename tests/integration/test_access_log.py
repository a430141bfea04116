"""The access log end to end: the audit service's own decisions go out on the real access stream and
come back as its table; auditors read them (and only auditors); no token, body or query is kept.
And a disabled account's tokens, refused by a service watching the revocation bucket."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats

from contracts.base import UserRole
from services.shared.auth import issue_token
from services.shared.revocations import revoke
from services.shared.streams import ensure_event_stream
from tests.integration.audit_support import Service, running, settings_for
from tests.support.waiting import until


def bearer(svc: Service, role: UserRole, sub: str, unit_id: str | None = None, **more: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(svc.settings.keys, role, unit_id, sub=sub, **more)}"}


async def test_decisions_are_logged_for_auditors_without_secrets(tmp_path: Path, nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    await ensure_event_stream(nc.jetstream())  # the ledger's stream, made by the worker in a deployment
    await nc.close()
    run = uuid.uuid4().hex[:8]
    auditor, district, narrowed = f"auditor-{run}", f"yuzhong-{run}", f"auditor-p-{run}"
    async with running(settings_for(tmp_path, nats_url)) as svc:
        reading = bearer(svc, UserRole.AUDITOR, auditor)
        secret = reading["Authorization"].removeprefix("Bearer ")
        r = await svc.client.get("/v1/audit/events", params={"limit": 1, "token": secret}, headers=reading)
        assert r.status_code == 200, r.text
        r = await svc.client.get("/v1/audit/gaps", headers=bearer(svc, UserRole.DEPARTMENT, district, "yuzhong"))
        assert r.status_code == 403
        forged = f"/v1/audit/assignments/forged-{run}/history"
        r = await svc.client.get(forged, headers={"Authorization": "Bearer not.a.token"})
        assert r.status_code == 401
        watcher = bearer(svc, UserRole.AUDITOR, f"watcher-{run}")

        async def logged(**params: Any) -> list[dict[str, Any]] | None:
            page = await svc.client.get("/v1/audit/access", params=params, headers=watcher)
            assert page.status_code == 200, page.text
            items: list[dict[str, Any]] = page.json()["items"]
            return items or None

        [read] = await until(lambda: logged(sub=auditor, service="audit", since="2000-01-01T00:00:00Z"))
        assert (read["allowed"], read["status"], read["role"]) == (True, 200, "auditor")
        assert (read["method"], read["route"], read["path"]) == ("GET", "/v1/audit/events", "/v1/audit/events")

        [refused] = await until(lambda: logged(sub=district, refused="true"))
        assert (refused["allowed"], refused["status"], refused["unit_id"]) == (False, 403, "yuzhong")
        assert "needs auditor" in refused["why"] and refused["route"] == "/v1/audit/gaps"

        async def forged_seen() -> dict[str, Any] | None:
            return next((i for i in await logged(refused="true", service="audit") or [] if i["path"] == forged), None)

        rejected = await until(forged_seen)
        assert rejected["status"] == 401 and "token rejected" in rejected["why"] and rejected["sub"] is None

        everything = (await svc.client.get("/v1/audit/access", params={"limit": 1000}, headers=watcher)).text
        assert secret not in everything and "not.a.token" not in everything

        # The access log is the auditors': a city-wide supervisor, and an auditor limited to a programme, are refused.
        sup = await svc.client.get("/v1/audit/access", headers=bearer(svc, UserRole.SUPERVISOR, f"sup-{run}"))
        assert sup.status_code == 403
        limited = bearer(svc, UserRole.AUDITOR, narrowed, programmes=("cq-2022-79",))
        assert (await svc.client.get("/v1/audit/access", headers=limited)).status_code == 403
        [own] = await until(lambda: logged(sub=narrowed))
        assert own["allowed"] is False and own["route"] == "/v1/audit/access"

        # Refusals of named callers are also in the ledger, chained with the events; the anonymous 401 is not.
        async def ledgered() -> list[dict[str, Any]] | None:
            r = await svc.client.get("/v1/audit/events", params={"type": "AccessRefused"}, headers=watcher)
            assert r.status_code == 200, r.text
            items: list[dict[str, Any]] = r.json()["items"]
            return items if {i["event"]["actor"]["sub"] for i in items} >= {district, f"sup-{run}", narrowed} else None

        entries = await until(ledgered, "the refusals in the ledger")
        by_sub = {i["event"]["actor"]["sub"]: i for i in entries}
        gaps = by_sub[district]
        assert gaps["event_id"] == f"access:{refused['request_id']}" and gaps["assignment_id"] is None
        assert gaps["event"]["payload"]["route"] == "/v1/audit/gaps" and gaps["unit_id"] == "yuzhong"
        assert not any(i["event"]["payload"]["path"] == forged for i in entries)
        verified = await svc.client.get("/v1/audit/verify", headers=watcher)
        assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
        assert verified.json()["count"] >= len(entries)


async def test_a_disabled_accounts_tokens_are_refused_before_they_expire(tmp_path: Path, nats_url: str) -> None:
    """`users disable` (and reset-password) put the account in the revocation bucket; every service
    watching it refuses that account's earlier tokens with 401 and the reason; a later token works."""
    nc = await nats.connect(nats_url)
    await ensure_event_stream(nc.jetstream())
    await nc.close()
    name = f"王科长-{uuid.uuid4().hex[:6]}"
    async with running(settings_for(tmp_path, nats_url)) as svc:
        now = dt.datetime.now(dt.UTC)
        earlier = bearer(svc, UserRole.AUDITOR, name, now=now - dt.timedelta(seconds=10))
        assert (await svc.client.get("/v1/audit/gaps", headers=earlier)).status_code == 200
        await revoke(nats_url, name, now - dt.timedelta(seconds=5))

        async def refused() -> httpx.Response | None:
            r = await svc.client.get("/v1/audit/gaps", headers=earlier)
            return r if r.status_code == 401 else None

        answer = await until(refused, "the earlier token refused")
        assert "sign in again" in answer.json()["detail"]
        later = bearer(svc, UserRole.AUDITOR, name)  # issued after the revocation: a reset password's
        assert (await svc.client.get("/v1/audit/gaps", headers=later)).status_code == 200
        other = bearer(svc, UserRole.AUDITOR, f"other-{name}")
        assert (await svc.client.get("/v1/audit/gaps", headers=other)).status_code == 200
