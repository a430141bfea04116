"""The `policyflow` everyday commands against a stand-in HTTP transport: requests, output, errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from contracts.base import UserRole
from services.cli import client
from services.cli.main import app
from services.shared.auth import issue_token

runner = CliRunner()
SUMMARY = {
    "assignment_id": "p.t03.yuzhong",
    "programme_id": "p",
    "task_no": 3,
    "task_title": "建设高品质绿色建筑",
    "unit_id": "yuzhong",
    "role": "responsible",
    "stage": "planning",
    "year": 2026,
    "overdue_level": "red",
    "next_deadline": {"key": "annual_plan:2026", "kind": "annual_plan", "due": "2026-12-01", "year": 2026},
    "percent": 0.0,
}
ACCEPTED = {"assignment_id": "p.t03.yuzhong", "stage": "planning", "year": 2026, "event_ids": ["x"], "replayed": False}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[httpx.Request]]:
    seen: list[httpx.Request] = []
    monkeypatch.setenv("POLICYFLOW_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("POLICYFLOW_TOKEN", issue_token(tmp_path / "keys", UserRole.DEPARTMENT, "yuzhong"))
    for name in ("ASSIGNMENT", "PROGRESS", "AUDIT"):
        monkeypatch.delenv(f"POLICYFLOW_{name}_URL", raising=False)
    yield seen


def serve(monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request], answer: Callable[[httpx.Request], Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        result = answer(request)
        return result if isinstance(result, httpx.Response) else httpx.Response(200, json=result)

    monkeypatch.setattr(client, "TRANSPORT", httpx.MockTransport(handler))


def test_inbox_defaults_to_the_tokens_unit_and_shows_lights(
    monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request]
) -> None:
    serve(monkeypatch, calls, lambda _: {"items": [SUMMARY], "total": 1})
    result = runner.invoke(app, ["inbox"])
    assert result.exit_code == 0, result.output
    assert calls[0].url.path == "/v1/units/yuzhong/assignments"
    assert str(calls[0].url).startswith("http://127.0.0.1:8101/")
    assert calls[0].headers["authorization"].startswith("Bearer ")
    assert "p.t03.yuzhong" in result.output and "红色督办" in result.output
    assert "2026-12-01 2026年度计划" in result.output and "annual_plan:2026" not in result.output
    english = runner.invoke(app, ["--lang", "en", "inbox"])
    assert "red escalation" in english.output and "2026-12-01 annual plan 2026" in english.output


def test_accept_goes_to_the_progress_service(monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request]) -> None:
    serve(monkeypatch, calls, lambda _: ACCEPTED)
    result = runner.invoke(app, ["accept", "p.t03.yuzhong"])
    assert result.exit_code == 0, result.output
    assert str(calls[0].url) == "http://127.0.0.1:8102/v1/assignments/p.t03.yuzhong/accept"
    assert calls[0].method == "POST" and calls[0].headers["idempotency-key"]
    assert "p.t03.yuzhong: 2026年度 现为 编制年度计划" in result.output


def test_json_output_is_the_services_answer(monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request]) -> None:
    serve(monkeypatch, calls, lambda _: {"items": [SUMMARY], "total": 1})
    result = runner.invoke(app, ["status", "--overdue", "red", "--group", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["items"][0]["assignment_id"] == "p.t03.yuzhong"
    assert calls[0].url.params["overdue"] == "red" and calls[0].url.params["group"] == "2"
    assert "unit_id" not in calls[0].url.params


def test_refusal_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"  # no milestone, so no warning of one already past
    plan.write_text('{"year": 2026, "milestones": []}')
    detail = "annual plan for 2026 is not open: stage is assigned for 2026"
    serve(monkeypatch, calls, lambda _: httpx.Response(409, json={"detail": detail}))
    result = runner.invoke(app, ["plan", "submit", "p.t03.yuzhong", "--year", "2026", "--file", str(plan)])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: 409 {detail}"


def test_unreachable_service_is_one_line(monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request]) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    serve(monkeypatch, calls, down)
    result = runner.invoke(app, ["show", "p.t03.yuzhong"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot reach the progress service at http://127.0.0.1:8102")
    assert len(result.output.strip().splitlines()) == 1


def test_report_uploads_evidence_first_and_retries_with_the_same_key(
    monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request], tmp_path: Path
) -> None:
    evidence = tmp_path / "统计表.csv"
    evidence.write_bytes(b"a,b\n1,2\n")
    digest = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    attempts = {"n": 0}

    def flaky(request: httpx.Request) -> Any:
        if request.url.path.endswith("/evidence"):
            assert b"a,b\n1,2\n" in request.read()
            record = {"name": "统计表.csv", "sha256": digest, "size": 8, "media_type": "application/zip"}
            return httpx.Response(201, json=record)
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return ACCEPTED

    monkeypatch.setattr("services.cli.client.time.sleep", lambda _: None)
    serve(monkeypatch, calls, flaky)
    result = runner.invoke(
        app,
        [
            "report",
            "p.t03.yuzhong",
            "--period",
            "2026-Q4",
            "--percent",
            "60",
            "--narrative",
            "done",
            "--value",
            "绿色建筑占比=68",
            "--evidence",
            str(evidence),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [c.url.path for c in calls] == ["/v1/assignments/p.t03.yuzhong/evidence"] + 2 * [
        "/v1/assignments/p.t03.yuzhong/reports"
    ]
    assert calls[1].headers["idempotency-key"] == calls[2].headers["idempotency-key"]
    body = json.loads(calls[2].content)
    assert body["evidence"] == [{"name": "统计表.csv", "sha256": digest, "size": 8}]
    assert body["indicator_values"] == [{"name": "绿色建筑占比", "value": 68.0}]
    assert "编制年度计划" in result.output


def test_review_without_year_asks_the_assignment(monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request]) -> None:
    serve(
        monkeypatch,
        calls,
        lambda r: {**SUMMARY, "horizon_year": 2030, "workflow_id": "w"} if r.method == "GET" else ACCEPTED,
    )
    result = runner.invoke(app, ["review", "p.t03.yuzhong", "return", "--comment", "量化指标"])
    assert result.exit_code == 0, result.output
    assert calls[1].url.path == "/v1/assignments/p.t03.yuzhong/plans/2026/review"
    assert json.loads(calls[1].content) == {"decision": "return", "comment": "量化指标"}


def test_config_file_gives_urls_and_token(
    monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request], tmp_path: Path
) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text('token = "from-file"\nprogress_url = "http://progress.example:9000/"\n')
    monkeypatch.setenv("POLICYFLOW_CONFIG", str(conf))
    monkeypatch.delenv("POLICYFLOW_TOKEN")
    serve(monkeypatch, calls, lambda _: ACCEPTED)
    result = runner.invoke(app, ["cancel", "p.t03.yuzhong", "--reason", "merged"])
    assert result.exit_code == 0, result.output
    assert str(calls[0].url) == "http://progress.example:9000/v1/assignments/p.t03.yuzhong/cancel"
    assert calls[0].headers["authorization"] == "Bearer from-file"
    result = runner.invoke(app, ["cancel", "p.t03.yuzhong", "--reason", "merged", "--token", "explicit"])
    assert calls[1].headers["authorization"] == "Bearer explicit"


def test_bad_option_values_are_refused_before_any_request(
    monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request]
) -> None:
    serve(monkeypatch, calls, lambda _: ACCEPTED)
    result = runner.invoke(app, ["plan", "submit", "p.t03.yuzhong", "--year", "2026", "--milestone", "no-colon"])
    assert result.exit_code == 1 and "YYYY-MM-DD:title" in result.output
    result = runner.invoke(
        app,
        ["report", "p.t03.yuzhong", "--period", "2026-Q1", "--percent", "5", "--narrative", "n", "--value", "x=abc"],
    )
    assert result.exit_code == 1 and "name=number" in result.output
    assert calls == []


def test_programme_import_posts_a_json_file(
    monkeypatch: pytest.MonkeyPatch, calls: list[httpx.Request], tmp_path: Path
) -> None:
    from tests.e2e.support import small_programme

    body = small_programme("cli-prog")
    path = tmp_path / "programme.json"
    path.write_text(body.model_dump_json())
    out = {
        "programme_id": "cli-prog",
        "document_no": "d",
        "title": "t",
        "task_count": 3,
        "responsibility_count": 7,
        "example_division": True,
        "imported": False,
    }
    # Asked first whether it is known (a known programme is a revision: shown, applied with --apply).
    unknown = httpx.Response(404, json={"detail": "no programme cli-prog"})
    serve(monkeypatch, calls, lambda r: unknown if r.method == "GET" else out)
    result = runner.invoke(app, ["programme", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "already imported" in result.output and "EXAMPLE" in result.output
    assert [(c.method, c.url.path) for c in calls] == [("GET", "/v1/programmes/cli-prog"), ("POST", "/v1/programmes")]
    assert json.loads(calls[1].content)["programme_id"] == "cli-prog"
