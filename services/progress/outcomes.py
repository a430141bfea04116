"""Programme indicators (指标) and 考核 scores from the read model, as of any date.

One query per view: the programme's declared outcomes and its assignments' dated records
(contracts.records), read in one statement, then the pure computations of contracts.figures and
contracts.scores, which the auditors' replay of the ledger feeds the same way.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.figures import AS_OF_WORDS, IndicatorsAnswer, as_of_moment, indicators_answer, resolved
from contracts.ids import PROGRAMME_ID_PATTERN, parse_assignment_id
from contracts.indicators import INDICATOR_ID_PATTERN, ProgrammeOutcomes
from contracts.records import Recorded
from contracts.scores import ScoresAnswer, scores_answer
from services.progress import exports
from services.progress.api import COMMAND_CHECKS, CommandCheck
from services.progress.dashboard_queries import recorded
from services.progress.status_routes import answered, readable_unit, wants_fresh
from services.progress.store import READ_MODEL
from services.shared import access
from services.shared.auth import Principal
from services.shared.web import principal, require_programme

router = APIRouter()
A, P = READ_MODEL.assignments, READ_MODEL.programmes
assert READ_MODEL.outcomes is not None
OUT = READ_MODEL.outcomes

ProgrammeId = Annotated[str, Path(max_length=64, pattern=PROGRAMME_ID_PATTERN)]
AsOf = Annotated[
    str | None,
    Query(
        max_length=40,
        description="a date (2027-03-31: the end of that day, Asia/Shanghai) or an ISO 8601 time (without a zone: "
        "UTC); default now",
    ),
]


def as_of_time(text: str | None) -> dt.datetime | None:
    """The moment `as_of` names, or None for now; 422 in plain words for anything else."""
    if text is None or not text.strip():
        return None
    try:
        return as_of_moment(text)
    except ValueError:
        raise HTTPException(422, f"as_of {text.strip()!r}: {AS_OF_WORDS}") from None


async def programme_outcomes(engine: AsyncEngine, programme_id: str) -> tuple[ProgrammeOutcomes, list[Recorded]]:
    """The programme's declared outcomes and its assignments' records; 404 naming the known programmes."""
    async with engine.connect() as conn:
        declared = (await conn.execute(select(OUT.c.outcomes).where(OUT.c.programme_id == programme_id))).scalar()
        if declared is None:
            known = sorted(r[0] for r in await conn.execute(select(P.c.programme_id)))
            raise HTTPException(
                404,
                f"没有方案 {programme_id} 的指标 (no programme {programme_id} in the read model"
                + (f"; known: {', '.join(known)})" if known else ")"),
            )
        rows = await conn.execute(select(A.c.state).where(A.c.programme_id == programme_id).order_by(A.c.assignment_id))
        states = recorded([r[0] for r in rows])
    return ProgrammeOutcomes.model_validate_json(declared), states


async def indicators_of(
    engine: AsyncEngine,
    programme_id: str,
    as_of: dt.datetime | None,
    unit_id: str | None,
    indicator_id: str | None,
    area: access.Area | None = None,
) -> IndicatorsAnswer:
    outcomes, states = await programme_outcomes(engine, programme_id)
    if indicator_id is not None and indicator_id not in {i.id for i in outcomes.indicators}:
        raise HTTPException(404, unknown_indicator(indicator_id, outcomes))
    answer = indicators_answer(programme_id, outcomes, states, resolved(as_of, states), unit_id, indicator_id)
    return shown_indicators(answer, visible_units(area, programme_id, states))


async def scores_of(
    engine: AsyncEngine,
    programme_id: str,
    year: int,
    as_of: dt.datetime | None,
    unit_id: str | None,
    area: access.Area | None = None,
) -> ScoresAnswer:
    outcomes, states = await programme_outcomes(engine, programme_id)
    when = resolved(as_of, states)
    answer = scores_answer(programme_id, outcomes.scoring, outcomes.indicators, states, year, when, unit_id)
    return shown_scores(answer, visible_units(area, programme_id, states))


def visible_units(area: access.Area | None, programme_id: str, states: list[Recorded]) -> set[str] | None:
    """The units whose rows a caller with `area` sees (None: every one): a 督查室's units, and the units
    taking part in a task it supervises. City-wide figures and ranks stay city-wide."""
    if area is None or area.everything:
        return None
    return set(area.units) | {s.unit_id for s in states if (programme_id, s.task_no) in area.tasks}


def shown_indicators(answer: IndicatorsAnswer, shown: set[str] | None) -> IndicatorsAnswer:
    """Only the rows of the units in `shown` (None: all); the city-wide values stay."""
    if shown is None:
        return answer
    kept = [
        i.model_copy(update={"years": [y.model_copy(update={"units": [u for u in y.units if u.unit_id in shown]})
                                       for y in i.years]})
        for i in answer.indicators
    ]  # fmt: skip
    return answer.model_copy(update={"indicators": kept})


def shown_scores(answer: ScoresAnswer, shown: set[str] | None) -> ScoresAnswer:
    """Only the units in `shown` (None: all), with their city-wide ranks."""
    if shown is None:
        return answer
    return answer.model_copy(update={"units": [u for u in answer.units if u.unit_id in shown]})


def unknown_indicator(indicator_id: str, outcomes: ProgrammeOutcomes) -> str:
    known = ", ".join(f"{i.id}（{i.name}）" for i in outcomes.indicators) or "本方案未声明指标 (none declared)"
    return f"未知指标 {indicator_id} (unknown indicator); 本方案的指标 (known): {known}"


@router.get("/v1/programmes/{programme_id}/indicators", response_model=IndicatorsAnswer, tags=["outcomes"])
async def indicators(
    request: Request,
    programme_id: ProgrammeId,
    caller: Principal = Depends(principal),
    as_of: AsOf = None,
    unit_id: str | None = Query(default=None, max_length=64),
    indicator_id: str | None = Query(default=None, max_length=63, pattern=INDICATOR_ID_PATTERN),
    format: exports.Format | None = None,
) -> Response:
    """Per indicator and year: the city-wide value (by the indicator's aggregation), each unit's value
    and its own target, and progress toward the goal, as of `as_of`. A department sees its own unit's
    row (the city-wide value stays city-wide)."""
    unit_id = readable_unit(caller, unit_id)
    require_programme(caller, programme_id)
    moment = as_of_time(as_of)
    kind = exports.wanted(request, format)
    engine = request.app.state.engine
    area = access.area(caller)
    if kind is not None:
        answer = await indicators_of(engine, programme_id, moment, unit_id, indicator_id, area)
        names = await exports.names(request)
        sheet = exports.indicators_sheet(answer, names, city_rows=unit_id is None)
        return exports.respond(kind, f"indicators-{programme_id}", sheet)

    async def compute(_: AsyncConnection | None = None) -> bytes:  # several reads, each on the engine
        answer = await indicators_of(engine, programme_id, moment, unit_id, indicator_id, area)
        return answer.model_dump_json().encode()

    key = ("indicators", programme_id, moment, unit_id, indicator_id, area)
    if moment is None:  # "now" moves with the clock, not only with the read model
        return Response(await compute(), media_type="application/json")
    return answered(await request.app.state.status_reader.answer(key, compute, wants_fresh(request)))


@router.get("/v1/programmes/{programme_id}/scores", response_model=ScoresAnswer, tags=["outcomes"])
async def scores(
    request: Request,
    programme_id: ProgrammeId,
    year: Annotated[int, Query(ge=2000, le=2100)],
    caller: Principal = Depends(principal),
    as_of: AsOf = None,
    unit_id: str | None = Query(default=None, max_length=64),
    format: exports.Format | None = None,
) -> Response:
    """Each unit's 考核 score for the year by the programme's scoring rule, every component shown
    with what it counted; ranked. A department sees its own row, with its rank among all units."""
    unit_id = readable_unit(caller, unit_id)
    require_programme(caller, programme_id)
    moment = as_of_time(as_of)
    answer = await scores_of(request.app.state.engine, programme_id, year, moment, unit_id, access.area(caller))
    kind = exports.wanted(request, format)
    if kind is not None:
        names = await exports.names(request)
        return exports.respond(kind, f"scores-{programme_id}-{year}", exports.scores_sheet(answer, names))
    return Response(answer.model_dump_json(), media_type="application/json")


async def check_indicator_ids(request: Request, assignment_id: str, command: BaseModel) -> None:
    """A plan's targets and a report's values may name only the programme's declared indicators."""
    named = [i.id for i in getattr(command, "indicators", []) or getattr(command, "indicator_values", []) if i.id]
    if not named:
        return
    parsed = parse_assignment_id(assignment_id)
    assert parsed is not None  # Allowed checked it
    outcomes = await declared_outcomes(request.app.state.engine, parsed[0])
    known = {i.id for i in outcomes.indicators}
    unknown = [i for i in named if i not in known]
    if unknown:
        raise HTTPException(422, unknown_indicator(", ".join(unknown), outcomes))


def _then(first: CommandCheck | None, second: CommandCheck) -> CommandCheck:
    async def both(request: Request, assignment_id: str, command: BaseModel) -> None:
        if first is not None:
            await first(request, assignment_id, command)
        await second(request, assignment_id, command)

    return both


def register_checks() -> None:
    """Add the indicator check to the plan's and the report's (after any check already there, e.g.
    the evidence one); called once the app's modules are imported, so the order of imports does not matter."""
    for name in ("submit_plan", "report_progress"):
        current = COMMAND_CHECKS.get(name)
        if getattr(current, "checks_indicators", False):
            continue
        both = _then(current, check_indicator_ids)
        both.checks_indicators = True  # type: ignore[attr-defined]
        COMMAND_CHECKS[name] = both


async def latest_year(engine: AsyncEngine, programme_id: str) -> int | None:
    """The latest programme year any of its assignments is in: the year a ranking shows by default."""
    async with engine.connect() as conn:
        year = (await conn.execute(select(func.max(A.c.year)).where(A.c.programme_id == programme_id))).scalar()
    return None if year is None else int(year)


async def ranking_scores(
    engine: AsyncEngine, programme_id: str, year: int | None, area: access.Area | None = None
) -> ScoresAnswer | None:
    """The scores the dashboard's ranking shows: for `year`, else the latest; None without any."""
    year = year or await latest_year(engine, programme_id)
    if year is None:
        return None
    try:
        return await scores_of(engine, programme_id, year, None, None, area)
    except HTTPException:  # a programme whose import the read model has not seen: no rule to score by
        return None


async def declared_outcomes(engine: AsyncEngine, programme_id: str) -> ProgrammeOutcomes:
    async with engine.connect() as conn:
        declared = (await conn.execute(select(OUT.c.outcomes).where(OUT.c.programme_id == programme_id))).scalar()
    return ProgrammeOutcomes.model_validate_json(declared) if declared else ProgrammeOutcomes()


async def with_indicator_ids(
    engine: AsyncEngine, programme_id: str, plan: dict[str, Any] | None, fields: dict[str, Any]
) -> dict[str, Any]:
    """A workbench form's targets and values, each named by a declared indicator's id or name (or, for
    a value, by a target of the assignment's plan that has an id), with that id added."""
    declared = (await declared_outcomes(engine, programme_id)).indicators
    ids = {i.id: i.id for i in declared} | {i.name: i.id for i in declared}
    ids |= {t["name"]: t["id"] for t in (plan or {}).get("indicators", []) if t.get("id")}
    out = dict(fields)
    for key in ("indicators", "indicator_values"):
        if key in out:
            out[key] = [{**item, "id": ids[item["name"]]} if item["name"] in ids else item for item in out[key]]
    return out
