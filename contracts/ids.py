"""Stable identifiers derived from the domain, so repeating an action finds what exists."""

from __future__ import annotations

import re

# A unit that takes a task again (a reassignment back, or removed and added again) gets a new
# generation: `….t05.yuzhong.g2`. Access never reads the unit from an id (it reads the record).
_ASSIGNMENT_RE = re.compile(
    r"^(?P<programme>[a-z0-9][a-z0-9-]*)\.t(?P<task>\d{2,3})\.(?P<unit>[a-z0-9][a-z0-9_-]*)(?:\.g[1-9]\d*)?$"
)
PROGRAMME_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
UNIT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,63}$"
QUARTER_PATTERN = r"^(20\d\d)-Q([1-4])$"  # a quarter, as reports and 通报 name it
SHA256_PATTERN = r"^[0-9a-f]{64}$"  # a file's content digest, which names it


def assignment_id(programme_id: str, task_no: int, unit_id: str) -> str:
    """`cq-2022-79.t14.yuzhong`: programme, task and unit; also the workflow id."""
    return f"{programme_id}.t{task_no:02d}.{unit_id}"


def parse_assignment_id(value: str) -> tuple[str, int, str] | None:
    m = _ASSIGNMENT_RE.match(value)
    if not m:
        return None
    return m["programme"], int(m["task"]), m["unit"]


def workflow_id(assignment: str) -> str:
    return f"assignment-{assignment}"


def programme_workflow_id(programme_id: str) -> str:
    return f"programme-{programme_id}"
