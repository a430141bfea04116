"""`policyflow programme propose-division DIR`: a division file proposed from the policy text.

Reads DIR/policy.txt and DIR/units.yaml, writes DIR/division.proposed.yaml (never the
directory's division file itself) and says what a person must look at: names that match no
unit (with their lines), open-ended lists (等), leads proposed by convention, parts skipped.
Exit codes: 0 written; 2 the text or the files cannot be used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from services.assignment.division import load_units
from services.assignment.programme_dir import POLICY_FILE, UNITS_FILE, ProgrammeFileError, read_policy_text
from services.assignment.programme_text import ProgrammeParseError, parse_document
from services.assignment.propose_division import propose
from services.assignment.source_files import DivisionError
from services.cli.answers import answer, refuse

PROPOSED_FILE = "division.proposed.yaml"


def propose_division(directory: Path, output: Path | None, horizon_year: int | None, as_json: bool) -> None:
    policy, units_file = directory / POLICY_FILE, directory / UNITS_FILE
    try:
        if not directory.is_dir():
            raise ProgrammeFileError(f"{directory}: not a directory")
        doc = parse_document(read_policy_text(policy))
        units = load_units(units_file) if units_file.is_file() else []
    except ProgrammeFileError as exc:
        raise refuse(str(exc), as_json, 2) from None
    except ProgrammeParseError as exc:
        raise refuse(f"{policy}: {exc.message}", as_json, 2) from None
    except DivisionError as exc:
        raise refuse("; ".join(str(p) for p in exc.problems[:5]), as_json, 2) from None
    programme = doc.programme
    year = horizon_year or max(
        (g.year for g in programme.goals), default=(programme.issued_on.year + 5) if programme.issued_on else 2030
    )
    proposal = propose(doc, units, POLICY_FILE, year)
    target = output or directory / PROPOSED_FILE
    try:
        target.write_text(proposal.text, encoding="utf-8")
    except OSError as exc:
        raise refuse(f"{target}: cannot write: {exc.strerror or exc}", as_json, 2) from None
    data: dict[str, Any] = {"written": str(target), "horizon_year": year, **proposal.summary()}
    if not units:
        data["warning"] = f"no {UNITS_FILE} in {directory}: every name is unmatched"
    if as_json:
        answer(data)
        return
    for line in _human(data):
        typer.echo(line)


def _human(d: dict[str, Any]) -> list[str]:
    lines = [
        f"wrote {d['written']}: {d['tasks']} tasks, {d['unit_references']} unit references "
        f"(horizon {d['horizon_year']}); review it, then: policyflow programme check DIR --division {d['written']}"
    ]
    if d.get("warning"):
        lines.append(f"warning: {d['warning']}")
    lines += [f"note: {n}" for n in d["notices"]]
    for u in d["unmatched"]:
        hint = f" (closest registry name: {u['suggestion']})" if u["suggestion"] else ""
        lines.append(f"unmatched: line {u['line']}, task {u['task']} [{u['label']}], {u['role']}: {u['name']}{hint}")
    for u in d["open_ended"]:
        lines.append(f"open-ended (等): line {u['line']}, task {u['task']} [{u['label']}]: {u['name']}等")
    if d["lead_by_convention"]:
        tasks = ", ".join(map(str, d["lead_by_convention"]))
        lines.append(f"lead proposed by the first-named-leads convention (not stated in the text): tasks {tasks}")
    if d["tasks_without_units"]:
        lines.append(f"no unit named in the text: tasks {', '.join(map(str, d['tasks_without_units']))}")
    lines += [f"skipped: {s}" for s in d["skipped"]]
    return lines
