"""What a hostile request is, what it is aimed at, how it is sent, and how its refusal is found in a log.

The requests themselves are listed in tests/faults/attacks_on_access.py (forged tokens, crossed
authority) and tests/faults/attacks_on_input.py (malformed, out-of-range and oversized input).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.faults.harness import FaultStack
from tests.support.clock import china_today
from tests.support.waiting import until

YEAR = china_today().year
QUARTER = f"{YEAR}-Q1"  # begun whenever in the year the test runs
SHA = "ab" * 32
REPORT = {"period": QUARTER, "percent": 40, "narrative": "进展正常"}
PLAN = {"year": YEAR, "milestones": [{"title": "m", "due": f"{YEAR}-12-01"}], "indicators": []}


@dataclass
class Attack:
    name: str
    service: str
    method: str
    path: str
    headers: dict[str, str]
    expect: set[int]
    log_event: str | None  # what the refusing service must log
    body: Any = None
    content: bytes | None = None
    needle: str = ""  # in the answer's detail
    sub: str | None = None  # the token's subject, to find the 403 log line
    chunked: bool = False  # send `content` with Transfer-Encoding: chunked, no Content-Length


@dataclass
class World:
    stack: FaultStack
    pid: str
    own: str  # d00's assignment, implementing (plan approved)
    other: str  # d01's assignment, plan submitted
    attacks: list[Attack] = field(default_factory=list)


async def send(http: httpx.AsyncClient, w: World, a: Attack) -> httpx.Response:
    url = f"{w.stack.url(a.service)}{a.path}"
    if a.content is not None and a.chunked:
        content = a.content

        async def chunks() -> AsyncIterator[bytes]:
            for lo in range(0, len(content), 64 * 1024):
                yield content[lo : lo + 64 * 1024]

        return await http.request(a.method, url, content=chunks(), headers=a.headers)
    if a.content is not None:
        return await http.request(a.method, url, content=a.content, headers=a.headers)
    return await http.request(a.method, url, json=a.body, headers=a.headers)


async def logged(stack: FaultStack, a: Attack, mark: int) -> bool:
    def match(line: dict[str, Any]) -> bool:
        if line.get("event") != a.log_event:
            return False
        if a.sub is not None:
            return line.get("sub") == a.sub
        return "path" not in line or line["path"] == a.path.split("?")[0]

    async def probe() -> bool:
        return any(match(line) for line in stack.log_since(a.service, mark))

    try:
        await until(probe, f"{a.log_event} logged", timeout=10.0, interval=0.1)
    except AssertionError:
        return False
    return True
