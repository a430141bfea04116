"""The example programme (examples/cq-2022-79, ~1,300 responsibilities) at any size.

`scale` simulates a bigger (nationwide) programme by generating district-level units: every
district of the example gets copies, each carrying the same local-delivery responsibilities.
`limit` takes a subset for quick runs: leads first, then cooperating units, then districts,
so that every cooperating unit's lead is present. `min_horizon` keeps only responsibilities that
run at least to that year.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from contracts.api import ProgrammeImport
from contracts.base import Role
from contracts.catalog import UnitKind

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples" / "cq-2022-79"
ROLE_ORDER = {Role.LEAD: 0, Role.COOPERATING: 1, Role.RESPONSIBLE: 2}


@lru_cache(maxsize=1)
def _example() -> ProgrammeImport:
    from services.assignment.programme_dir import load_programme_dir

    return load_programme_dir(EXAMPLE_DIR)


def example_size() -> int:
    return len(_example().division.responsibilities)


def copies_for(scale: float) -> int:
    """District copies needed so the programme has about `scale` times the example's assignments."""
    base = _example().division.responsibilities
    local = sum(1 for r in base if r.role == Role.RESPONSIBLE)
    other = len(base) - local
    return max(1, round((scale * len(base) - other) / local)) if local else 1


def programme(
    programme_id: str, scale: float = 1.0, limit: int | None = None, min_horizon: int | None = None
) -> ProgrammeImport:
    base = _example()
    units = list(base.units)
    rows = list(base.division.responsibilities)
    copies = copies_for(scale) if scale != 1.0 else 1
    if copies > 1:
        districts = {u.unit_id: u for u in base.units if u.kind == UnitKind.DISTRICT}
        for n in range(2, copies + 1):
            suffix = f"-g{n:03d}"
            for unit in districts.values():
                units.append(
                    unit.model_copy(update={"unit_id": unit.unit_id + suffix, "name": f"{unit.name}{n}", "aliases": []})
                )
            rows += [
                r.model_copy(update={"unit_id": r.unit_id + suffix})
                for r in base.division.responsibilities
                if r.role == Role.RESPONSIBLE and r.unit_id in districts
            ]
    if min_horizon is not None:
        rows = [r for r in rows if r.horizon_year >= min_horizon]
    if limit is not None:
        rows = sorted(rows, key=lambda r: (ROLE_ORDER[r.role], r.task_no, r.unit_id))[:limit]
    division = base.division.model_copy(update={"responsibilities": rows})
    return base.model_copy(update={"programme_id": programme_id, "units": units, "division": division})
