"""Running workflows follow an applied revision: added assignments start, removed ones close, changed
ones (role, horizon, lead) are updated. Each step is idempotent (a start by workflow id, an update
by a command id naming the revision), so a revision interrupted by a restart is finished by
applying it again (`resume`) or by the next dispatch for the starts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.api import ReportsHeld, RevisionAnswer
from contracts.base import Actor
from contracts.commands import UPDATE_REMOVE, UPDATE_REVISE, RemoveAssignment, ReviseAssignment
from contracts.division_facts import ProgrammeRevised
from services.assignment import change_store, store
from services.assignment import dispatch as dispatching
from services.assignment.revision import Plan
from services.shared.auth import Principal
from services.shared.temporal import run_update
from workflows.calendar import shanghai_date

log = structlog.get_logger()


async def unfinished(engine: AsyncEngine, programme_id: str, n: int) -> dict[str, Any] | None:
    """Revision `n` if it was applied and its workflows have not all followed (interrupted, or failed)."""
    row = await change_store.revision(engine, programme_id, n)
    return row if row is not None and row["completed_at"] is None else None


async def current_revision(engine: AsyncEngine, programme_id: str) -> int:
    async with engine.connect() as conn:
        q = select(store.programmes.c.revision).where(store.programmes.c.programme_id == programme_id)
        return int((await conn.execute(q)).scalar_one_or_none() or 0)


async def with_reports(engine: AsyncEngine, diff: Plan) -> list[ReportsHeld]:
    held = await change_store.reports_of(engine, [line.assignment_id for line in diff.removed])
    return [
        ReportsHeld(assignment_id=line.assignment_id, unit_id=line.unit_id, reports=held[line.assignment_id])
        for line in diff.removed
        if line.assignment_id in held
    ]


def past_horizons(diff: Plan, this_year: int) -> list[str]:
    """Added or changed lines whose horizon year has already passed: most likely a typing slip."""
    lines = [*diff.added, *(c.after for c in diff.changed)]
    return [
        f"{line.assignment_id}: horizon {line.horizon_year} is before this year {this_year}, so it has no year "
        "left to work in; check the year before applying"
        for line in lines
        if line.horizon_year < this_year
    ]


def answer(programme_id: str, n: int, version: str, diff: Plan, held: list[ReportsHeld]) -> RevisionAnswer:
    warnings = past_horizons(diff, shanghai_date(dt.datetime.now(dt.UTC)).year)
    words = f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed"
    force = f"; {len(held)} removed assignment(s) hold reports: apply with force" if held else ""
    return RevisionAnswer(
        programme_id=programme_id,
        revision=n,
        version=version,
        state="dry_run",
        added=diff.added,
        removed=diff.removed,
        changed=diff.changed,
        removed_with_reports=held,
        warnings=warnings,
        message=f"revision {n} would make {words}{force}; apply it with this version",
    )


def actions(fact: ProgrammeRevised, leads: dict[str, str | None]) -> int:
    return len(fact.added) + len(fact.removed) + len({c.after.assignment_id for c in fact.changed} | set(leads))


def _revisions(
    fact: ProgrammeRevised, leads: dict[str, str | None], reason: str, actor: Actor, command_id: str
) -> dict[str, ReviseAssignment]:
    """One update per changed assignment: its new role and horizon, and its new lead."""
    fields: dict[str, dict[str, Any]] = {}
    for c in fact.changed:
        f = fields.setdefault(c.after.assignment_id, {"changed": []})
        if c.after.role != c.before.role:
            f["changed"].append("role")
            f["role"] = c.after.role
        if c.after.horizon_year != c.before.horizon_year:
            f["changed"].append("horizon_year")
            f["horizon_year"] = c.after.horizon_year
    for aid, lead in leads.items():
        f = fields.setdefault(aid, {"changed": []})
        f["changed"].append("lead_assignment_id")
        f["lead_assignment_id"] = lead
    return {
        aid: ReviseAssignment(actor=actor, command_id=command_id, reason=reason, revision=fact.revision, **f)
        for aid, f in fields.items()
    }


async def _update(app: FastAPI, aid: str, name: str, command: Any, out: dispatching.DispatchOutcome) -> None:
    """One update; an assignment that is closed or was never started has nothing to follow."""
    try:
        await run_update(app.state.temporal, aid, name, command, timeout=app.state.settings.update_timeout)
        out.started += 1
    except HTTPException as exc:
        if exc.status_code in (404, 409):
            log.info("revision.skipped", assignment_id=aid, update=name, reason=exc.detail)
            out.skipped += 1
        else:
            out.failed.append((aid, str(exc.detail)))


async def tell_leads(
    app: FastAPI, leads: dict[str, str | None], caller: Principal, command_id: str, reason: str
) -> list[str]:
    """Cooperating assignments learn their new lead by an update (in their history, so a replay agrees)."""
    out = dispatching.DispatchOutcome()
    for aid, lead in sorted(leads.items()):
        cmd = ReviseAssignment(actor=caller.actor(), command_id=command_id, reason=reason,
                               changed=["lead_assignment_id"], lead_assignment_id=lead)  # fmt: skip
        await _update(app, aid, UPDATE_REVISE, cmd, out)
    return sorted(set(leads) - {aid for aid, _ in out.failed})


async def _follow(app: FastAPI, programme_id: str, n: int, caller: Principal, out: dispatching.DispatchOutcome) -> None:
    engine = app.state.engine
    row = await change_store.revision(engine, programme_id, n)
    stored = await store.get_programme(engine, programme_id)
    assert row is not None and stored is not None
    diff = json.loads(row["diff"])
    fact = ProgrammeRevised.model_validate(diff["fact"])
    if stored.dispatched_at is not None:
        actor, cid, gate = caller.actor(), f"revision:{n}", asyncio.Semaphore(app.state.settings.dispatch_concurrency)
        added = {line.assignment_id for line in fact.added}
        rows = [r for r in await store.programme_responsibilities(engine, programme_id) if r["assignment_id"] in added]
        specs = dispatching.specs(rows, stored.body.schedule)
        await dispatching.dispatch(app.state.temporal, app.state.settings.task_queue, specs, actor,
                                   app.state.settings.dispatch_concurrency, app.state.settings.search_attributes,
                                   out)  # fmt: skip
        reason = f"removed in revision {n}"

        async def one(aid: str, name: str, cmd: Any) -> None:
            async with gate:
                await _update(app, aid, name, cmd, out)

        steps = [one(line.assignment_id, UPDATE_REMOVE,
                     RemoveAssignment(actor=actor, command_id=cid, revision=n, reason=reason))
                 for line in fact.removed]  # fmt: skip
        for aid, cmd in _revisions(fact, diff["leads"], f"revision {n}: {fact.reason}", actor, cid).items():
            steps.append(one(aid, UPDATE_REVISE, cmd))
        await asyncio.gather(*steps)
    if not out.failed:
        await change_store.complete_revision(engine, programme_id, n)
    log.info("revision.followed", programme_id=programme_id, revision=n, done=out.started, skipped=out.skipped,
             failed=len(out.failed))  # fmt: skip


def follow(app: FastAPI, programme_id: str, n: int, caller: Principal) -> dispatching.DispatchJob:
    """Start the workflows' following of revision `n` in the background (or join the one running)."""
    jobs: dispatching.DispatchJobs = app.state.dispatch_jobs

    async def run(out: dispatching.DispatchOutcome) -> dispatching.DispatchOutcome:
        await _follow(app, programme_id, n, caller, out)
        return out

    return jobs.start(f"{programme_id}#r{n}", 0, run)


async def status(app: FastAPI, programme_id: str, n: int) -> RevisionAnswer:
    row = await change_store.revision(app.state.engine, programme_id, n)
    if row is None:
        raise HTTPException(404, f"no revision {n} of programme {programme_id}")
    fact = ProgrammeRevised.model_validate(json.loads(row["diff"])["fact"])
    job = app.state.dispatch_jobs.get(f"{programme_id}#r{n}")
    base = {"programme_id": programme_id, "revision": n, "version": row["version"], "added": fact.added,
            "removed": fact.removed, "changed": fact.changed}  # fmt: skip
    if job is not None:
        out = job.outcome
        done = out.started + out.skipped
        if job.running:
            state, message = "running", f"{done} workflows followed so far"
        elif out.failed or job.task.cancelled() or job.task.exception() is not None:
            first = f" (first: {out.failed[0][0]}: {out.failed[0][1]})" if out.failed else ""
            state, message = "failed", f"{len(out.failed)} workflows did not follow{first}; apply the revision again"
        else:
            state, message = "done", f"revision {n} applied; {done} workflows followed"
        return RevisionAnswer(**base, state=state, followed=done, failed=len(out.failed), message=message)
    if row["completed_at"] is None:
        return RevisionAnswer(**base, state="failed", message="interrupted (a restart): apply the revision again")
    return RevisionAnswer(**base, state="done", message=f"revision {n} applied at {row['completed_at']:%Y-%m-%d %H:%M}")
