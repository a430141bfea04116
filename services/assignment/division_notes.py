"""The division-of-work note at the end of a plan's clause (pass 3 of programme_text).

`（市发展改革委牵头，各区县政府负责）` or `（税务总局、财政部负责，排在第一位的部门为牵头部门，下同）`:
which units the clause names, and in which role. Pure: strings in, responsibilities out.
"""

from __future__ import annotations

import re

from contracts.base import Role
from contracts.catalog import NamedResponsibility

_NOTE_RE = re.compile(r"[（(]([^（）()]*)[)）]\s*([。.]?)\s*$")
_ROLE_VERB_RE = re.compile(r"(?:按职责分工|按职责|依职责|分别|共同)?(牵头|配合|参与|负责)(?:落实|实施)?$")
_FIRST_LEADS_RE = re.compile(r"(排在?第一位|排名第一|列第一位|排在首位)的?(部门|单位)?为牵头")
_NAME_TAIL_RE = re.compile(r"等(有关|相关)?(部门|单位)$")
_VERB_ROLE = {"牵头": Role.LEAD, "配合": Role.COOPERATING, "参与": Role.COOPERATING}


def split_note(body: str) -> tuple[str, str | None]:
    """The clause body without a trailing division-of-work note, and the note."""
    m = _NOTE_RE.search(body)
    if not m or not re.search("牵头|配合|参与|负责", m.group(1)):
        return body, None
    return (body[: m.start()].rstrip() + m.group(2)).strip(), m.group(1)


def responsibilities(note: str, first_leads: bool) -> tuple[list[NamedResponsibility], bool]:
    """Units and roles from a note, and whether the first-named-leads rule holds from here on.

    `A、B、C负责` names who is responsible; when the document says the first named unit leads
    (排在第一位的部门为牵头部门) A is lead and B, C cooperate. `下同` keeps that rule for the
    following notes. An explicit 牵头 in a note always wins over the rule."""
    segments = [s.strip() for s in re.split(r"[，,；;]", note) if s.strip()]
    rule_here = any(_FIRST_LEADS_RE.search(s) for s in segments)
    first_leads_now = first_leads or rule_here
    carry = first_leads or (rule_here and "下同" in note)
    explicit_lead = any(s.endswith("牵头") for s in segments)
    found: list[NamedResponsibility] = []
    for segment in segments:
        m = _ROLE_VERB_RE.search(segment)
        if _FIRST_LEADS_RE.search(segment) or segment == "下同" or not m:
            continue
        names = [_NAME_TAIL_RE.sub("", n).strip() for n in segment[: m.start()].split("、")]
        names = [n for n in names if n]
        for i, name in enumerate(names):
            verb = m.group(1)
            if verb in _VERB_ROLE:
                role = _VERB_ROLE[verb]
            elif first_leads_now and not explicit_lead:
                role = Role.LEAD if i == 0 else Role.COOPERATING
            else:
                role = Role.RESPONSIBLE
            if all(r.unit != name for r in found):
                found.append(NamedResponsibility(unit=name, role=role))
    return found, carry
