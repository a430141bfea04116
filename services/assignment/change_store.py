"""The assignment service's records of changes to a division: reassignments and revisions.

Closed responsibilities keep their rows (closed_at, the reason, the successor), so an assignment
id is never used twice and the division in force is the rows not closed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.api import ProgrammeImport
from contracts.division_facts import Handover, ProgrammeRevised
from services.assignment.revision import Plan
from services.assignment.store import INBOX, programmes, responsibilities, revisions

R = responsibilities


async def used_ids(engine: AsyncEngine, programme_id: str) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(R.c.assignment_id).where(R.c.programme_id == programme_id))
        return {r[0] for r in rows}


async def responsibility(engine: AsyncEngine, assignment_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(R).where(R.c.assignment_id == assignment_id))).first()
    return dict(row._mapping) if row else None


async def in_force_on_task(engine: AsyncEngine, programme_id: str, task_no: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        q = select(R).where(R.c.programme_id == programme_id, R.c.task_no == task_no, R.c.closed_at.is_(None))
        return [dict(r._mapping) for r in await conn.execute(q.order_by(R.c.assignment_id))]


async def reports_of(engine: AsyncEngine, ids: list[str]) -> dict[str, int]:
    """Progress reports per assignment, from the inbox projection (those with none left out)."""
    if not ids:
        return {}
    a = INBOX.assignments
    async with engine.connect() as conn:
        rows = await conn.execute(select(a.c.assignment_id, a.c.reports).where(a.c.assignment_id.in_(ids)))
        return {r[0]: int(r[1]) for r in rows if r[1]}


def _new_row(
    programme_id: str, task_title: str, start_year: int, line: dict[str, Any], lead: str | None, **more: Any
) -> dict[str, Any]:
    return {
        "assignment_id": line["assignment_id"],
        "programme_id": programme_id,
        "task_no": line["task_no"],
        "task_title": task_title,
        "unit_id": line["unit_id"],
        "role": line["role"],
        "start_year": start_year,
        "horizon_year": line["horizon_year"],
        "lead_assignment_id": lead,
        **more,
    }


async def record_reassignment(
    engine: AsyncEngine, old: dict[str, Any], handover: Handover, role: str, lead: str | None
) -> list[str]:
    """Close the old row, add the new one and point the task's cooperating units at the new lead
    (when the old one led); returns those cooperating assignments. Repeating it changes nothing."""
    now = dt.datetime.now(dt.UTC)
    new_id = handover.to_assignment_id
    async with engine.begin() as conn:
        exists = (await conn.execute(select(R.c.assignment_id).where(R.c.assignment_id == new_id))).first()
        if exists is None:
            line = {**old, "assignment_id": new_id, "unit_id": handover.to_unit_id, "role": role}
            row = _new_row(old["programme_id"], old["task_title"], old["start_year"], line, lead,
                           handover=handover.model_dump_json())  # fmt: skip
            await conn.execute(R.insert().values(**row))
        reason = f"转办至 {handover.to_unit_id}：{handover.reason}"
        await conn.execute(
            update(R)
            .where(R.c.assignment_id == old["assignment_id"], R.c.closed_at.is_(None))
            .values(closed_at=now, closed_reason=reason, successor_id=new_id)
        )
        repointed: list[str] = []
        if old["role"] == "lead":
            q = select(R.c.assignment_id).where(
                R.c.programme_id == old["programme_id"],
                R.c.task_no == old["task_no"],
                R.c.closed_at.is_(None),
                R.c.lead_assignment_id == old["assignment_id"],
            )
            repointed = [r[0] for r in await conn.execute(q)]
            if repointed:
                await conn.execute(update(R).where(R.c.assignment_id.in_(repointed)).values(lead_assignment_id=new_id))
    return repointed


async def apply_revision(
    engine: AsyncEngine,
    body: ProgrammeImport,
    sha: str,
    fact: ProgrammeRevised,
    plan: Plan,
    version: str,
    actor_sub: str,
) -> bool:
    """Store the revised programme and its division in one transaction; False when another
    revision got there first (the programme's revision is no longer the one before `fact`'s)."""
    now = dt.datetime.now(dt.UTC)
    pid, n = body.programme_id, fact.revision
    titles = {t.no: t.title for t in body.programme.tasks()}
    async with engine.begin() as conn:
        moved = await conn.execute(
            update(programmes)
            .where(programmes.c.programme_id == pid, programmes.c.revision == n - 1)
            .values(revision=n, body=body.model_dump_json(), content_sha256=sha)
        )
        if moved.rowcount != 1:
            return False
        for line in plan.added:
            data = line.model_dump(mode="json")
            lead = plan.new_leads.get(line.assignment_id)
            row = _new_row(pid, titles[line.task_no], body.schedule.start_year, data, lead, revision=n)
            await conn.execute(R.insert().values(**row))
        for line in fact.removed:
            await conn.execute(
                update(R)
                .where(R.c.assignment_id == line.assignment_id)
                .values(closed_at=now, closed_reason=f"removed in revision {n}")
            )
        for change in fact.changed:
            after = change.after
            await conn.execute(
                update(R)
                .where(R.c.assignment_id == after.assignment_id)
                .values(role=after.role.value, horizon_year=after.horizon_year)
            )
        for aid, lead in plan.leads.items():
            await conn.execute(update(R).where(R.c.assignment_id == aid).values(lead_assignment_id=lead))
        await _insert_revision(conn, pid, n, version, {"fact": fact.model_dump(mode="json"), "leads": plan.leads},
                               actor_sub, now)  # fmt: skip
    return True


async def _insert_revision(
    conn: AsyncConnection, pid: str, n: int, version: str, diff: dict[str, Any], sub: str, now: dt.datetime
) -> None:
    text = json.dumps(diff, ensure_ascii=False)
    await conn.execute(
        revisions.insert().values(
            programme_id=pid, revision=n, version=version, diff=text, applied_at=now, applied_by=sub
        )
    )


async def revision(engine: AsyncEngine, programme_id: str, n: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        q = select(revisions).where(revisions.c.programme_id == programme_id, revisions.c.revision == n)
        row = (await conn.execute(q)).first()
    return dict(row._mapping) if row else None


async def complete_revision(engine: AsyncEngine, programme_id: str, n: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(revisions)
            .where(revisions.c.programme_id == programme_id, revisions.c.revision == n)
            .values(completed_at=dt.datetime.now(dt.UTC))
        )
