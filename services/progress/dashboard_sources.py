"""Where the dashboard's data comes from besides its own read model, and how it degrades.

* Group and task titles: the progress service's task-group cache (also used by the status API's
  group filter), filled once per programme from the assignment service's
  `GET /v1/programmes/{id}` with the caller's token.
* Unit names: the assignment service's `GET /v1/units`, cached in memory for ten minutes; units are
  shown in `unit_order` (by kind and name) on the pages and in the bulletin.
* An assignment's timeline: the audit service's hash-chained history
  (`GET /v1/audit/assignments/{id}/history`, caller's token); when that is unreachable or has not
  ingested the assignment yet, the event stream itself (an ordered consumer over the unit's
  subjects, filtered by assignment), its lines worded as the audit service words them (contracts.timeline).

Nothing here imports another service: they are reached over HTTP (or NATS) only. A service that
does not answer is not asked again for RETRY_AFTER seconds, and the pages show ids instead of names.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import structlog
from fastapi import Request
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DeliverPolicy
from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import labels
from contracts.api import ProgrammeOut
from contracts.events import Event
from contracts.fold import AssignmentState
from contracts.subjects import event_subject
from contracts.timeline import summary
from services.progress import store
from services.progress.session_cookie import forward_token

log = structlog.get_logger()
UNITS_TTL, RETRY_AFTER, MAX_TIMELINE = 600.0, 30.0, 5000

EVENT_LABELS = {key: words[0] for key, words in labels.FACTS.items()}


class DashboardSettings(BaseSettings):
    """Read from the environment on first use (never at import)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    audit_url: str = Field(default="http://127.0.0.1:8103", validation_alias=AliasChoices("POLICYFLOW_AUDIT_URL"))
    temporal_ui_url: str = Field(default="http://127.0.0.1:8233", validation_alias=AliasChoices("TEMPORAL_UI_URL"))
    remote_timeout: float = Field(default=3.0, gt=0, validation_alias=AliasChoices("DASHBOARD_REMOTE_TIMEOUT"))


def dashboard_settings(request: Request) -> DashboardSettings:
    state = request.app.state
    if getattr(state, "dashboard_settings", None) is None:
        state.dashboard_settings = DashboardSettings()
    return state.dashboard_settings  # type: ignore[no-any-return]


async def _get(request: Request, url: str, params: dict[str, Any] | None = None) -> httpx.Response | None:
    """GET with the caller's token; None (logged) when the service cannot be reached."""
    token = forward_token(request)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response: httpx.Response = await request.app.state.http.get(
            url, params=params, headers=headers, timeout=dashboard_settings(request).remote_timeout
        )
    except httpx.HTTPError as exc:
        log.warning("dashboard.remote_failed", url=url, error=repr(exc))
        return None
    return response


def _recently_failed(request: Request, key: str) -> bool:
    failures: dict[str, float] = getattr(request.app.state, "dashboard_failures", None) or {}
    return time.monotonic() - failures.get(key, -RETRY_AFTER * 2) < RETRY_AFTER


def _failed(request: Request, key: str) -> None:
    if getattr(request.app.state, "dashboard_failures", None) is None:
        request.app.state.dashboard_failures = {}
    request.app.state.dashboard_failures[key] = time.monotonic()


KIND_ORDER = {"department": 0, "district": 1}


def unit_order(names: dict[str, dict[str, str]]) -> Any:
    """A unit id's place: departments, then districts, each by name (its characters' order), never
    by the romanised id; a unit the registry does not know last, by id."""

    def key(unit_id: str) -> tuple[int, str, str]:
        known = names.get(unit_id)
        if known is None:
            return (len(KIND_ORDER), unit_id, unit_id)
        return (KIND_ORDER.get(known.get("kind", ""), len(KIND_ORDER)), known.get("name", unit_id), unit_id)

    return key


async def ensure_task_groups(request: Request, programme_id: str) -> None:
    """Fill the task-group cache for a programme once (shared with the status API's group filter)."""
    engine = request.app.state.engine
    if programme_id in await store.known_group_programmes(engine):
        return
    key = f"programme:{programme_id}"
    if _recently_failed(request, key):
        return
    base = request.app.state.settings.assignment_url.rstrip("/")
    resp = await _get(request, f"{base}/v1/programmes/{programme_id}")
    if resp is None or resp.status_code != 200:
        _failed(request, key)
        return
    try:
        prog = ProgrammeOut.model_validate(resp.json()).programme
    except (ValidationError, ValueError) as exc:
        log.warning("dashboard.programme_unreadable", programme_id=programme_id, error=str(exc)[:300])
        _failed(request, key)
        return
    rows: list[dict[str, object]] = [
        {"task_no": t.no, "group_no": g.no, "group_title": g.title, "task_title": t.title}
        for g in prog.groups
        for t in g.tasks
    ]
    await store.store_task_groups(engine, programme_id, rows)


async def unit_names(request: Request, wanted: set[str] | None = None) -> dict[str, dict[str, str]]:
    """unit id -> {"name", "kind"}, from the assignment service, cached; {} when unavailable.

    Fetched again after ten minutes, or at once when a unit the page shows is not in the cache
    (units arrive with each imported programme); if the registry lacks it even then, the next
    try waits RETRY_AFTER seconds.
    """
    state = request.app.state
    cached: tuple[float, dict[str, dict[str, str]]] | None = getattr(state, "dashboard_units", None)
    wanted = wanted or set()
    fresh = cached is not None and time.monotonic() - cached[0] < UNITS_TTL
    if cached and fresh and (wanted <= cached[1].keys() or _recently_failed(request, "units-incomplete")):
        return cached[1]
    if _recently_failed(request, "units"):
        return cached[1] if cached else {}
    base = state.settings.assignment_url.rstrip("/")
    out: dict[str, dict[str, str]] = {}
    offset = 0
    while True:
        resp = await _get(request, f"{base}/v1/units", {"limit": 500, "offset": offset})
        if resp is None or resp.status_code != 200:
            _failed(request, "units")
            return cached[1] if cached else {}
        page = resp.json()
        for u in page.get("items", []):
            out[str(u["unit_id"])] = {"name": str(u.get("name", u["unit_id"])), "kind": str(u.get("kind", ""))}
        offset += len(page.get("items", []))
        if not page.get("items") or offset >= int(page.get("total", 0)):
            break
    state.dashboard_units = (time.monotonic(), out)
    if not wanted <= out.keys():
        _failed(request, "units-incomplete")
    return out


async def stream_history(request: Request, state: AssignmentState) -> list[dict[str, Any]]:
    """The assignment's events straight from JetStream: the unit's subjects, filtered by assignment."""
    app = request.app
    js = app.state.nats.jetstream()
    subject = event_subject(state.programme_id, state.unit_id, "*")
    sub = await js.subscribe(
        subject, stream=app.state.settings.event_stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    events: dict[int, Event] = {}
    try:
        for _ in range(MAX_TIMELINE * 10):
            try:
                msg = await sub.next_msg(timeout=2.0)
            except NatsTimeout:
                break
            try:
                e = Event.model_validate_json(msg.data)
            except ValidationError:
                e = None
            if e is not None and e.assignment_id == state.assignment_id:
                events.setdefault(e.seq, e)  # a re-published fact appears twice in the stream
            if msg.metadata.num_pending == 0 or len(events) >= MAX_TIMELINE:
                break
    finally:
        await sub.unsubscribe()
    return [
        {
            "seq": e.seq,
            "event_id": e.event_id,
            "type": e.type,
            "occurred_at": e.occurred_at,
            "actor": e.actor.model_dump(mode="json"),
            "summary": summary(e.type, e.payload),
            "payload": e.payload,
            "hash": None,
        }
        for e in sorted(events.values(), key=lambda x: x.seq)
    ]


async def timeline(request: Request, state: AssignmentState) -> tuple[list[dict[str, Any]], str]:
    """(items, source): the audit ledger when it answers, else the event stream."""
    base = dashboard_settings(request).audit_url.rstrip("/")
    resp = await _get(request, f"{base}/v1/audit/assignments/{state.assignment_id}/history")
    if resp is not None and resp.status_code == 200:
        try:
            return list(resp.json()["items"]), "audit"
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dashboard.history_unreadable", error=str(exc)[:300])
    elif resp is not None:
        log.info("dashboard.history_unavailable", status=resp.status_code, assignment_id=state.assignment_id)
    try:
        return await stream_history(request, state), "stream"
    except Exception as exc:  # noqa: BLE001 - the page still shows the read model's state
        log.warning("dashboard.stream_history_failed", error=repr(exc))
        return [], "none"
