"""The division-of-work notes of a plan's clauses: who leads, who cooperates, who delivers.

The genre writes them as a parenthesis at the end of a clause or in the middle of a paragraph
(`（市发展改革委牵头，市财政局、市税务局配合）`, `（牵头单位：X；配合单位：Y、Z）`,
`（责任单位：X、Y）`, `（X、Y等负责）`, `（X、Y牵头负责）`), or as lines under the clause
(`牵头单位:区发改局` / `责任单位:各街道` / `部门分工:省商务厅牵头,各地、各部门配合。`).
A document may say once that the first-named unit leads
(`排在第一位的部门为牵头部门，下同`); an explicit 牵头 in a note always wins over that.
Pure: strings in, responsibilities out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contracts.base import Role
from contracts.catalog import NamedResponsibility

ROLE_WORDS_RE = re.compile("牵头|配合|参与|负责|协办|责任单位|责任部门|指导")
FIRST_LEADS_RE = re.compile(r"(排在?第一位|排名第一|列第一位|排在首位|排序第一)[的者]?(的?责任)?(部门|单位)?为牵头")
_LABEL_RE = re.compile(r"^(牵头|责任|配合|协办|主办|参与)(单位|部门)\s*[:：]\s*")
# 部门分工:X牵头,Y、Z配合。 - the label names no role: the verbs after it do.
_DIVISION_LABEL_RE = re.compile(r"(^|[；;。])\s*(部门|责任|任务)分工\s*[:：]\s*")
_VERB_RE = re.compile(r"(?:按职责分工|按职责|依职责|分别|共同)?(牵头负责|牵头|配合|参与|协助|负责|指导)(?:落实|实施)?$")
# Units that guide (工业和信息化部指导): guidance is no role of a division, so they are reported.
GUIDE = "指导"
# 以下均需试点城市政府落实，不再列出: a unit responsible for every measure from here on.
_STANDING_RE = re.compile(r"^以下(?:均|都|各项)?(?:需|由)?(.+?)(?:负责)?落实$")
_NOT_LISTED = ("不再列出", "不再单独列出", "不再一一列出")
_OPEN_TAIL_RE = re.compile(r"等(?:省|市|区|县|州)?级?(?:有关|相关|其他)?(?:部门|单位)?(?:和单位|和部门)?$")
_LABEL_ROLE = {"牵头": Role.LEAD, "配合": Role.COOPERATING, "协办": Role.COOPERATING, "参与": Role.COOPERATING}
_VERB_ROLE = {"牵头负责": Role.LEAD, "牵头": Role.LEAD, "配合": Role.COOPERATING, "参与": Role.COOPERATING}
_VERB_ROLE["协助"] = Role.COOPERATING
# Pieces that are the second half of one name split at 、 (各区、县级市 is one set of units):
# after a bare 各 + an administrative level (各区, 各州), a piece that names another level
# (县级市, 市人民政府 in 各州、市人民政府) completes the same name.
_NAME_TAILS = ("县级市", "县(市)", "县（市）", "自治县", "县")
_BARE_LEVEL_RE = re.compile(r"^各[省市州盟区县旗乡镇]{1,2}$")
_LEVEL_TAIL_RE = re.compile(r"^[省市州盟区县旗乡镇]{1,2}(级市)?(人民政府|政府)?$")

FIRST_LEADS_STATED = "first-named leads (stated in the text)"
EXPLICIT = "explicit"
AS_WRITTEN = "as written"


@dataclass
class NoteReading:
    """What one note says, with the rule used and anything it could not read."""

    named: list[NamedResponsibility] = field(default_factory=list)
    open_ended: list[str] = field(default_factory=list)  # names followed by 等
    rule: str = AS_WRITTEN
    states_rule: bool = False  # this note states the first-named-leads rule
    carry: bool = False  # … and says it holds for the notes that follow (下同)
    not_understood: list[str] = field(default_factory=list)
    guiding: list[str] = field(default_factory=list)  # units that guide (指导): not in the division
    standing: list[str] = field(default_factory=list)  # responsible from here on (以下均需X落实)


_OPEN, _CLOSE = "（(〔", "）)〕"


def top_level_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every outermost parenthesis (（）, (), 〔〕), nested ones inside."""
    spans, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            if depth == 0:
                start = i
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
    return spans


def is_note(inner: str) -> bool:
    return bool(ROLE_WORDS_RE.search(inner)) and len(inner) <= 400


def split_note(body: str) -> tuple[str, str | None]:
    """The clause body without a trailing division-of-work note, and the note."""
    stripped = body.rstrip()
    stop = stripped[-1:] if stripped[-1:] in "。." else ""
    core = stripped[: len(stripped) - len(stop)].rstrip()
    spans = top_level_spans(core)
    if not spans or spans[-1][1] != len(core):
        return body, None
    start, end = spans[-1]
    inner = core[start + 1 : end - 1]
    if not is_note(inner):
        return body, None
    return (core[:start].rstrip() + stop).strip(), inner


def notes_in(body: str) -> tuple[str, list[str]]:
    """Every division-of-work note in a paragraph (a paragraph may carry several), and the
    paragraph without them."""
    found: list[str] = []
    kept, last = [], 0
    for start, end in top_level_spans(body):
        inner = body[start + 1 : end - 1]
        if is_note(inner) and _reads_as_note(inner):
            found.append(inner)
            kept.append(body[last:start])
            last = end
    kept.append(body[last:])
    return "".join(kept).strip(), found


def _reads_as_note(inner: str) -> bool:
    segments = _segments(inner)
    return any(_LABEL_RE.match(s) or _VERB_RE.search(s) or FIRST_LEADS_RE.search(s) for s in segments)


def _segments(note: str) -> list[str]:
    """The note cut at ，；,; outside parentheses; a sentence end (。) is kept as a segment of its
    own, since a label (责任单位：) does not reach past it."""
    out: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in note:
        depth += ch in _OPEN
        depth -= ch in _CLOSE and depth > 0
        if depth == 0 and ch in "，；,;。":
            out.append("".join(current).strip())
            if ch == "。":
                out.append("。")
            current = []
        else:
            current.append(ch)
    out.append("".join(current).strip())
    return [s for s in out if s]


def _names(text: str) -> list[str]:
    """Names listed with 、, never cut inside a parenthesis (各县(市、区)政府)."""
    pieces: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        depth += ch in _OPEN
        depth -= ch in _CLOSE and depth > 0
        if depth == 0 and ch == "、":
            pieces.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    pieces.append("".join(current).strip())
    # 商务部等和各有关省级人民政府: an open-ended list, then a set of units of its own
    pieces = [part for piece in pieces for part in re.split(r"(?<=等)(?:和|及|以及)(?=各)", piece)]
    names: list[str] = []
    for piece in pieces:
        after_level = bool(names and _BARE_LEVEL_RE.match(names[-1]) and _LEVEL_TAIL_RE.match(piece))
        if names and (piece in _NAME_TAILS or after_level) and names[-1].startswith("各"):
            names[-1] = f"{names[-1]}、{piece}"
        elif piece:
            names.append(piece)
    return names


def is_district_set(name: str) -> bool:
    """各区县政府, 各区、县级市, 各县(市、区)政府(管委会), 各地: every district-level unit."""
    return name == "各地" or (name.startswith("各") and any(w in name for w in ("区", "县", "乡镇", "街道")))


def read_note(note: str, first_leads: bool) -> NoteReading:
    """Units and roles from a note; `first_leads` is whether the text's first-named-leads rule
    holds here (stated in an earlier note with 下同, or in the cover notice)."""
    reading = NoteReading()
    # The rule may sit in a parenthesis of its own inside the note (… 市卫生健康委(除标注“分别牵头”
    # 外,列第一位为牵头或汇总单位,下同)).
    for start, end in reversed(top_level_spans(note)):
        if FIRST_LEADS_RE.search(note[start:end]):
            reading.states_rule, reading.carry = True, reading.carry or "下同" in note[start:end]
            note = note[:start] + note[end:]
    note = _DIVISION_LABEL_RE.sub(r"\1", note)
    plain: list[tuple[str, Role | None]] = []  # names in order; None: 负责 / 责任单位, role by rule
    label_role: Role | None = None
    labelled = False
    # A list cut by a comma before its verb (X、Y，各省级人民政府按职责分工负责): the names wait
    # for the verb of their sentence; left without one, they are not understood.
    pending: list[str] = []
    for segment in [*_segments(note), "。"]:
        if FIRST_LEADS_RE.search(segment):
            reading.states_rule = True
            reading.carry = reading.carry or "下同" in note
            continue
        if segment == "。":  # a new sentence: the label before it no longer holds
            label_role, labelled = None, False
            reading.not_understood += pending
            pending = []
            continue
        if segment == "下同" or segment in _NOT_LISTED:
            continue
        if m := _STANDING_RE.match(segment):
            reading.standing += _names(m.group(1))
            continue
        if m := _LABEL_RE.match(segment):
            label_role, labelled = _LABEL_ROLE.get(m.group(1)), True
            segment = segment[m.end() :]
        role: Role | None = label_role
        if (v := _VERB_RE.search(segment)) and v.group(1) == GUIDE:
            reading.guiding += _names("、".join([*pending, segment[: v.start()]]))
            pending = []
            continue
        if v:
            role = _VERB_ROLE.get(v.group(1))
            segment = "、".join([*pending, segment[: v.start()]])
            pending = []
        elif not labelled:
            pending.append(segment)
            continue
        for name in _names(segment):
            clean = _OPEN_TAIL_RE.sub("", name).strip()
            if clean != name:
                reading.open_ended.append(clean)
            if clean:
                plain.append((clean, role))
    rule_on = first_leads or reading.states_rule
    explicit_lead = any(role == Role.LEAD for _, role in plain)
    reading.rule = EXPLICIT if explicit_lead else (FIRST_LEADS_STATED if rule_on else AS_WRITTEN)
    led = explicit_lead
    for name, role in plain:
        if role is None:
            if rule_on and not explicit_lead and not is_district_set(name):
                role = Role.COOPERATING if led else Role.LEAD
                led = True
            else:
                role = Role.RESPONSIBLE
        if all(r.unit != name for r in reading.named):
            reading.named.append(NamedResponsibility(unit=name, role=role))
    return reading


def responsibilities(note: str, first_leads: bool) -> tuple[list[NamedResponsibility], bool]:
    """Units and roles from a note, and whether the first-named-leads rule holds from here on."""
    reading = read_note(note, first_leads)
    return reading.named, first_leads or reading.carry
