"""The auditors' indicators and scores: the same pure computations as the progress service's
(contracts.figures, contracts.scores), fed from the ledger: the programme's ProgrammeImported and
every assignment's state replayed as of the date. Equal answers show the read model is right."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from sqlalchemy import select

from contracts.events import Event, ProgrammeImported
from contracts.figures import AS_OF_WORDS, IndicatorsAnswer, as_of_moment, indicators_answer, resolved
from contracts.ids import PROGRAMME_ID_PATTERN
from contracts.indicators import ProgrammeOutcomes
from contracts.records import Recorded
from contracts.scores import ScoresAnswer, scores_answer
from services.audit import queries
from services.audit.api import Audit, audit, reader
from services.audit.ledger import utc_text
from services.audit.store import ledger
from services.shared.auth import Principal
from services.shared.web import require_programme

router = APIRouter()
ProgrammeId = Annotated[str, Path(max_length=64, pattern=PROGRAMME_ID_PATTERN)]
AsOf = Annotated[str | None, Query(max_length=40, description="a date (end of day, Asia/Shanghai) or ISO time")]


def _moment(text: str | None) -> dt.datetime | None:
    if text is None or not text.strip():
        return None
    try:
        return as_of_moment(text)
    except ValueError:
        raise HTTPException(422, f"as_of {text.strip()!r}: {AS_OF_WORDS}") from None


async def _replayed(
    a: Audit, programme_id: str, as_of: dt.datetime | None
) -> tuple[ProgrammeOutcomes, list[Recorded], dt.datetime]:
    query = select(ledger.c.canonical).where(
        ledger.c.programme_id == programme_id, ledger.c.type == ProgrammeImported.TYPE
    )
    if as_of is not None:
        query = query.where(ledger.c.occurred_at <= utc_text(as_of))
    async with a.engine.connect() as conn:
        canonical = (await conn.execute(query.order_by(ledger.c.ledger_seq.desc()).limit(1))).scalar()
    if canonical is None:
        raise HTTPException(
            404, f"台账中没有方案 {programme_id} 的导入记录 (no ProgrammeImported for {programme_id} in the ledger)"
        )
    fact = Event.model_validate_json(canonical).fact()
    assert isinstance(fact, ProgrammeImported)
    far = as_of or dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
    states = [
        Recorded.model_validate(s.model_dump()) async for s in queries.replay(a.engine, far, None, None, programme_id)
    ]
    return fact.outcomes or ProgrammeOutcomes(), states, resolved(as_of, states)


@router.get("/v1/audit/programmes/{programme_id}/indicators", response_model=IndicatorsAnswer, tags=["outcomes"])
async def indicators(
    programme_id: ProgrammeId, as_of: AsOf = None, caller: Principal = Depends(reader), a: Audit = Depends(audit)
) -> Response:
    """The programme's indicator figures as of `as_of`, from the ledger's replay."""
    require_programme(caller, programme_id)
    outcomes, states, moment = await _replayed(a, programme_id, _moment(as_of))
    answer = indicators_answer(programme_id, outcomes, states, moment)
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/v1/audit/programmes/{programme_id}/scores", response_model=ScoresAnswer, tags=["outcomes"])
async def scores(
    programme_id: ProgrammeId,
    year: Annotated[int, Query(ge=2000, le=2100)],
    as_of: AsOf = None,
    caller: Principal = Depends(reader),
    a: Audit = Depends(audit),
) -> Response:
    """Each unit's 考核 score for the year as of `as_of`, from the ledger's replay."""
    require_programme(caller, programme_id)
    outcomes, states, moment = await _replayed(a, programme_id, _moment(as_of))
    answer = scores_answer(programme_id, outcomes.scoring, outcomes.indicators, states, year, moment)
    return Response(answer.model_dump_json(), media_type="application/json")
