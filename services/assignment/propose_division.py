"""A division file proposed from the text, for a person to review (`programme propose-division`).

Each task's entry says where in the text it came from (the clause's line, the note's or the
annex row's line) and, per unit, the name as written and how it was matched. Names that match
no unit are listed with their lines and left out of the rows; open-ended lists (等) are flagged;
a lead proposed by the first-named-leads convention when the text does not state it is marked
as such. The file is in the form `load_division` reads, so `programme check --division` checks
it. Pure: the parsed document and the registry in, the file's text and a summary out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from contracts.base import Role
from contracts.catalog import NamedResponsibility, Unit
from services.assignment.division_notes import is_district_set
from services.assignment.programme_text import ParsedDocument
from services.assignment.unit_names import ALL_DISTRICTS, NameMatch, UnitNames

CONVENTION = "first-named leads (applied by convention: the text does not say who leads)"
_KEYS = {Role.LEAD: "lead", Role.COOPERATING: "cooperating", Role.RESPONSIBLE: "responsible"}


@dataclass
class Proposal:
    text: str  # the division file
    tasks: int = 0
    rows: int = 0  # unit references written (all-districts counts once)
    unmatched: list[dict[str, object]] = field(default_factory=list)  # name, role, task, line, suggestion
    open_ended: list[dict[str, object]] = field(default_factory=list)  # name, task, line
    convention: list[int] = field(default_factory=list)  # tasks whose lead the convention proposed
    no_units: list[int] = field(default_factory=list)  # tasks whose text names no unit
    skipped: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # how the text was read (traditional characters)

    def summary(self) -> dict[str, object]:
        return {
            "tasks": self.tasks,
            "unit_references": self.rows,
            "unmatched": self.unmatched,
            "open_ended": self.open_ended,
            "lead_by_convention": self.convention,
            "tasks_without_units": self.no_units,
            "skipped": self.skipped,
            "notices": self.notices,
        }


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a YAML string


def _with_convention(named: list[NamedResponsibility]) -> tuple[list[NamedResponsibility], bool]:
    """No lead named: the first-named unit whose role the text left open (not a set of districts)
    is proposed as lead."""
    if any(r.role == Role.LEAD for r in named):
        return named, False
    # only a unit whose role the text left open (负责, 责任单位): one it calls 配合 never leads
    first = next((i for i, r in enumerate(named) if r.role == Role.RESPONSIBLE and not is_district_set(r.unit)), None)
    if first is None:
        return named, False
    out = list(named)
    out[first] = NamedResponsibility(unit=named[first].unit, role=Role.LEAD)
    return out, True


def propose(doc: ParsedDocument, units: list[Unit], source: str, horizon_year: int) -> Proposal:
    p = doc.programme
    registry = UnitNames(units)
    proposal = Proposal(text="", tasks=len(p.tasks()), skipped=list(doc.skipped), notices=list(doc.notices))
    out = [
        f"# Division of work PROPOSED from {source} by `policyflow programme propose-division`.",
        "# Review every entry against the text before use: each says where it came from, and how",
        "# each name was matched to the unit registry. Names that match no unit are listed at the",
        "# end and are not in the rows. `programme check --division THIS_FILE` checks the file.",
    ]
    out += [f"# Note: {notice}." for notice in doc.notices]
    if doc.first_leads_line:
        out.append(f"# The text states that the first-named unit leads ({source}:{doc.first_leads_line}).")
    out += [
        f"note: {_q(f'proposed from the text of {source}; to be reviewed')}",
        f"document_no: {_q(p.document_no)}" if p.document_no else "# document_no: (none in the text)",
        f"horizon_year: {horizon_year}",
        "tasks:",
    ]
    for group in p.groups:
        out.append(f"  # {group.no}. {group.title}")
        for task in group.tasks:
            out += _entry(doc, task.no, task.title, task.responsibilities, registry, source, proposal)
    if proposal.unmatched:
        out += ["", "# Names in the text that match no unit of the registry (not in the rows above):"]
        for u in proposal.unmatched:
            hint = f"; closest registry name: {u['suggestion']}" if u["suggestion"] else ""
            out.append(f"#   {source}:{u['line']}  task {u['task']} [{u['label']}]  {u['role']}  {u['name']}{hint}")
    proposal.text = "\n".join(out) + "\n"
    return proposal


def _entry(
    doc: ParsedDocument,
    task_no: int,
    title: str,
    named: list[NamedResponsibility],
    registry: UnitNames,
    source: str,
    proposal: Proposal,
) -> list[str]:
    src = doc.source(task_no)
    where = f"{source}:{src.line}" + (
        f", units at line {', '.join(map(str, src.note_lines))}" if src.note_lines else ""
    )
    lines = [f"  - task: {task_no}  # [{src.label}] {title[:40]} ({where})"]
    lines += [
        f"    # in charge: {text} ({source}:{line}) - a person, not a unit: not in the rows"
        for line, text in src.in_charge
    ]
    if src.standing:
        said_once = "responsible by a statement made once in the text (以下均需…落实)"
        lines.append(f"    # {said_once}: {'、'.join(src.standing)} ({source}:{src.standing_line})")
    if src.guiding:
        lines.append(f"    # guide (指导), no role of a division, not in the rows: {'、'.join(src.guiding)}")
    if not named:
        proposal.no_units.append(task_no)
        lines.append("    # the text names no unit for this task")
        return lines
    named, by_convention = _with_convention(named)
    if by_convention:
        proposal.convention.append(task_no)
        lines.append(f"    # lead: {CONVENTION}")
    elif src.rule:
        lines.append(f"    # roles: {src.rule}")
    for name in src.open_ended:
        line = doc.line_of(f"{name}等", task_no)
        proposal.open_ended.append({"name": name, "task": task_no, "label": src.label, "line": line})
        lines.append(f"    # open-ended list: {name}等 - the text may mean more units than it names")
    seen: set[str] = set()
    districts = set(registry.districts)
    excepted: list[str] = []
    for role in (Role.LEAD, Role.COOPERATING, Role.RESPONSIBLE):
        refs: list[str] = []
        for r in (r for r in named if r.role == role):
            m: NameMatch = registry.match(r.unit)
            if not m.unit_ids:
                proposal.unmatched.append(
                    {
                        "name": r.unit,
                        "role": _KEYS[role],
                        "task": task_no,
                        "label": src.label,
                        "line": doc.line_of(r.unit, task_no),
                        "suggestion": m.suggestion,
                    }
                )
            elif m.how == ALL_DISTRICTS:
                if "all-districts" not in seen:
                    refs.append(f"all-districts  # {r.unit}")
                    # a district named on its own above keeps its own role
                    excepted += sorted(seen & districts)
                    seen |= {"all-districts", *districts}
            else:
                for unit_id in m.unit_ids:
                    if unit_id not in seen:
                        seen.add(unit_id)
                        refs.append(f"{unit_id}  # {r.unit} ({m.how})")
        if refs:
            proposal.rows += len(refs)
            lines.append(f"    {_KEYS[role]}:")
            lines += [f"      - {ref}" for ref in refs]
    if excepted:
        lines.append(f"    except: [{', '.join(excepted)}]")
    return lines
