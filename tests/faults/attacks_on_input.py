"""Hostile requests on input (OWASP API mass assignment, unrestricted resource consumption, bad input):
absurd numbers (percent 250, year 1900, NaN, Infinity, 1e309), smuggled fields, control characters and
bidi overrides in names, JSON nested too deep, bodies over 1 MiB and commands too big for one event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.faults.attacks import PLAN, QUARTER, REPORT, SHA, YEAR, Attack, World


def input_attacks(w: World) -> Iterator[Attack]:
    """Requests from a rightful caller whose input must be refused: 422 for malformed commands and
    smuggled fields, 400 for JSON too deep to parse, 413 for bodies and events too big."""
    s, own, other = w.stack, w.own, w.other
    unit, stranger = own.rsplit(".", 1)[1], other.rsplit(".", 1)[1]
    report = f"/v1/assignments/{own}/reports"

    # ---- mass assignment and malformed commands: 422 and request.invalid ---------------------------------
    dept = s.headers("department", unit)
    sup = s.headers("supervisor")
    invalid: list[tuple[str, str, Any, dict[str, str], str]] = [
        ("percent 250", report, {**REPORT, "percent": 250}, dept, "percent"),
        ("percent -1", report, {**REPORT, "percent": -1}, dept, "percent"),
        ("plan for 1900", f"/v1/assignments/{own}/plans", {**PLAN, "year": 1900}, dept, "year"),
        ("period 1900-Q1", report, {**REPORT, "period": "1900-Q1"}, dept, "period"),
        (
            "an evidence file named with an RTL override",
            report,
            {**REPORT, "evidence": [{"name": "报告\u202e0fdp.exe", "sha256": SHA, "size": 1}]},
            dept,
            "evidence.0.name 含有不可见的控制字符 U+202E",
        ),
        (
            "a milestone titled with a control character",
            f"/v1/assignments/{own}/plans",
            {**PLAN, "milestones": [{"title": "完成\u0007验收", "due": f"{YEAR}-12-01"}]},
            dept,
            "U+0007",
        ),
        (
            "an indicator named with a bidi isolate",
            report,
            {**REPORT, "indicator_values": [{"name": "\u2067产值\u2069", "value": 1}]},
            dept,
            "U+2067",
        ),
        ("period 2026-Q5", report, {**REPORT, "period": f"{YEAR}-Q5"}, dept, "period"),
        (
            "101 evidence files",
            report,
            {**REPORT, "evidence": [{"name": f"f{i}", "sha256": SHA, "size": 1} for i in range(101)]},
            dept,
            "evidence",
        ),
        (
            "evidence of -1 bytes",
            report,
            {**REPORT, "evidence": [{"name": "f", "sha256": SHA, "size": -1}]},
            dept,
            "size",
        ),
        (
            "evidence of 1e20 bytes",
            report,
            {**REPORT, "evidence": [{"name": "f", "sha256": SHA, "size": 10**20}]},
            dept,
            "size",
        ),
        (
            "evidence hash not sha256",
            report,
            {**REPORT, "evidence": [{"name": "f", "sha256": "AB" * 32, "size": 1}]},
            dept,
            "sha256",
        ),
        (
            "201 indicator values",
            report,
            {**REPORT, "indicator_values": [{"name": f"i{i}", "value": 1} for i in range(201)]},
            dept,
            "indicator_values",
        ),
        ("narrative of 100,000 characters", report, {**REPORT, "narrative": "长" * 100_000}, dept, "narrative"),
        ("empty narrative", report, {**REPORT, "narrative": ""}, dept, "narrative"),
        ("actor smuggled in the body", report, {**REPORT, "actor": {"sub": "x", "role": "supervisor"}}, dept, "actor"),
        ("command_id smuggled in the body", report, {**REPORT, "command_id": "x"}, dept, "command_id"),
        ("review for year 1900", f"/v1/assignments/{other}/plans/1900/review", {"decision": "approve"}, sup, "year"),
        (
            "decision 'approve; drop table'",
            f"/v1/assignments/{other}/plans/{YEAR}/review",
            {"decision": "approve'; drop table ledger; --"},
            sup,
            "decision",
        ),
    ]
    for name, path, body, headers, needle in invalid:
        yield Attack(f"422 {name}", "progress", "POST", path, headers, {422}, "request.invalid", body, needle=needle)
    raw_json: list[tuple[str, bytes, str]] = [
        ("percent NaN", f'{{"period":"{QUARTER}","percent":NaN,"narrative":"n"}}'.encode(), "percent"),
        ("percent Infinity", f'{{"period":"{QUARTER}","percent":Infinity,"narrative":"n"}}'.encode(), "percent"),
        ("percent 1e309", f'{{"period":"{QUARTER}","percent":1e309,"narrative":"n"}}'.encode(), "percent"),
        (
            "indicator value NaN",
            f'{{"period":"{QUARTER}","percent":1,"narrative":"n","indicator_values":'
            f'[{{"name":"x","value":NaN}}]}}'.encode(),
            "value",
        ),
        (
            "indicator value -Infinity",
            f'{{"period":"{QUARTER}","percent":1,"narrative":"n","indicator_values":'
            f'[{{"name":"x","value":-Infinity}}]}}'.encode(),
            "value",
        ),
        (
            "narrative with a lone surrogate",
            f'{{"period":"{QUARTER}","percent":1,"narrative":"a\\ud800b"}}'.encode(),
            "narrative",
        ),
        ("not JSON", b"{percent: 1", ""),
    ]
    for name, content, needle in raw_json:
        yield Attack(
            f"422 {name}",
            "progress",
            "POST",
            report,
            {**dept, "content-type": "application/json"},
            {422},
            "request.invalid",
            content=content,
            needle=needle,
        )
    # FastAPI answers this itself (its JSON parser's recursion limit), before the service sees it: not logged.
    yield Attack(
        "400 JSON nested 100,000 deep",
        "progress",
        "POST",
        report,
        {**dept, "content-type": "application/json"},
        {400},
        None,
        content=b"[" * 100_000 + b"]" * 100_000,
    )
    target_nan = (
        f'{{"year":{YEAR},"milestones":[{{"title":"m","due":"{YEAR}-12-01"}}],'
        f'"indicators":[{{"name":"x","target":1e309}}]}}'
    ).encode()
    other_dept = s.headers("department", stranger)
    yield Attack(
        "422 plan indicator target 1e309",
        "progress",
        "POST",
        f"/v1/assignments/{other}/plans",
        {**other_dept, "content-type": "application/json"},
        {422},
        "request.invalid",
        content=target_nan,
        needle="target",
    )

    # ---- unrestricted resource consumption: 413 -----------------------------------------------------------
    big = json.dumps({**REPORT, "narrative": "x" * (1024 * 1024 + 10)}).encode()
    yield Attack(
        "413 body over 1 MiB",
        "progress",
        "POST",
        report,
        {**dept, "content-type": "application/json"},
        {413},
        "request.too_large",
        content=big,
    )
    yield Attack(
        "413 body over 1 MiB, chunked (no Content-Length)",
        "progress",
        "POST",
        report,
        {**dept, "content-type": "application/json"},
        {413},
        "request.too_large",
        content=big,
        chunked=True,
    )
    huge = json.dumps({**REPORT, "narrative": "x" * (64 * 1024 * 1024)}).encode()
    yield Attack(
        "413 body of 64 MiB, chunked",
        "progress",
        "POST",
        report,
        {**dept, "content-type": "application/json"},
        {413},
        "request.too_large",
        content=huge,
        chunked=True,
    )
    # Each field within its limit, the whole too big for one event (the stream's max_msg_size): refused
    # up front, or the workflow would fold a fact it can never publish and the assignment would wedge.
    nul_report = {
        **REPORT,
        "narrative": "\u0000" * 20_000,
        "evidence": [{"name": "\u0000" * 300, "sha256": SHA, "size": 1} for _ in range(100)],
    }
    yield Attack(
        "413 report too big for one event (NULs, 100 evidence files)",
        "progress",
        "POST",
        report,
        dept,
        {413},
        "command.too_large",
        nul_report,
        needle="event",
    )
    cjk_plan = {
        "year": YEAR,
        "milestones": [{"title": "绿" * 500, "due": f"{YEAR}-12-01"} for _ in range(200)],
        "indicators": [{"name": "建" * 200, "unit": "%", "target": i} for i in range(200)],
    }
    yield Attack(
        "413 plan too big for one event (200 milestones of 500 CJK characters)",
        "progress",
        "POST",
        f"/v1/assignments/{other}/plans",
        other_dept,
        {413},
        "command.too_large",
        cjk_plan,
        needle="event",
    )
    yield Attack(
        "413 body over 1 MiB, programme import",
        "assignment",
        "POST",
        "/v1/programmes",
        {**sup, "content-type": "application/json"},
        {413},
        "request.too_large",
        content=big,
    )
