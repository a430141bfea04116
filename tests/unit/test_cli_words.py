"""The words the `policyflow` command says, and what it takes as people type it (stand-in HTTP transport)."""

from __future__ import annotations

import datetime as dt
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from contracts.base import UserRole
from services.cli import client, typed
from services.cli.main import app
from services.shared.auth import issue_token

runner = CliRunner()
AID = "p.t03.yuzhong"
ACCEPTED = {"assignment_id": AID, "stage": "plan_submitted", "year": 2026, "event_ids": ["x"], "replayed": False}
DETAIL: dict[str, Any] = {
    "assignment_id": AID,
    "programme_id": "p",
    "task_no": 3,
    "task_title": "建设高品质绿色建筑",
    "unit_id": "yuzhong",
    "role": "responsible",
    "stage": "implementing",
    "year": 2026,
    "overdue_level": "yellow",
    "percent": 40.0,
    "horizon_year": 2030,
    "deadlines": [{"key": "report:2026-Q3", "kind": "quarterly_report", "due": "2026-10-15", "year": 2026}],
    "plan": {
        "year": 2026,
        "revision": 2,
        "status": "returned",
        "reasons": "指标需量化",
        "milestones": [{"due": "2026-06-30", "title": "新建建筑绿色建筑占比评估"}],
        "indicators": [{"name": "绿色建筑占比", "target": 70, "unit": "%"}],
    },
    "last_report": {
        "year": 2026,
        "period": "2026-Q2",
        "percent": 40,
        "narrative": "完成评估",
        "reported_at": "2026-07-01T00:00:00Z",
        "indicator_values": [{"name": "绿色建筑占比", "value": 65}],
        "evidence": [{"name": "统计表.pdf", "sha256": "ab" * 32, "size": 2048}],
    },
    "last_verification": {
        "year": 2026,
        "decision": "fail",
        "findings": "佐证材料不全",
        "rework_due": "2026-11-30",
        "at": "2026-11-01T00:00:00Z",
    },
    "summary": {"year": 2026, "revision": 1, "text": "各区县均已完成评估", "at": "2026-11-02T00:00:00Z"},
    "counts": {"reports": 2, "plans_returned": 1},
    "workflow_id": f"assignment-{AID}",
}


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No token anywhere; the config file under a private XDG_CONFIG_HOME; the local key under tmp_path."""
    for name in ("POLICYFLOW_CONFIG", "POLICYFLOW_TOKEN", "POLICYFLOW_LANG", "POLICYFLOW_KEY_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("POLICYFLOW_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path


def serve(monkeypatch: pytest.MonkeyPatch, answer: Any) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        result = answer(request) if callable(answer) else answer
        return result if isinstance(result, httpx.Response) else httpx.Response(200, json=result)

    monkeypatch.setattr(client, "TRANSPORT", httpx.MockTransport(handler))
    return seen


def login(monkeypatch: pytest.MonkeyPatch, tmp: Path, role: str = "department", unit: str | None = "yuzhong") -> str:
    token = issue_token(tmp / "var" / "keys", UserRole(role), unit)
    monkeypatch.setenv("POLICYFLOW_TOKEN", token)
    return token


def test_no_token_says_what_to_do_before_calling(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = serve(monkeypatch, ACCEPTED)
    r = runner.invoke(app, ["accept", AID])
    assert r.exit_code == 1 and seen == []
    assert r.stderr.startswith("error: no token: sign in once with `policyflow login`")
    assert "`policyflow token issue --role ROLE [--unit UNIT] --save`" in r.stderr
    assert "POLICYFLOW_TOKEN" in r.stderr
    r = runner.invoke(app, ["accept", AID, "--json"])
    assert r.exit_code == 1 and r.stdout == ""
    error = json.loads(r.stderr)
    assert error["status"] == 0 and error["error"].startswith("no token: sign in once with `policyflow login`")


def test_a_malformed_token_says_so_before_calling(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = serve(monkeypatch, ACCEPTED)
    monkeypatch.setenv("POLICYFLOW_TOKEN", "garbage")
    r = runner.invoke(app, ["inbox"])
    assert r.exit_code == 1 and seen == []
    assert r.stderr.startswith("error: the token in POLICYFLOW_TOKEN is not a token (")
    assert "`policyflow token issue --role ROLE [--unit UNIT] --save`" in r.stderr


def test_a_refused_token_names_where_it_came_from(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    login(monkeypatch, env)
    serve(monkeypatch, httpx.Response(401, json={"detail": "the token has expired; get one with ..."}))
    r = runner.invoke(app, ["accept", AID])
    assert r.exit_code == 1
    assert (
        r.stderr.strip()
        == "error: 401 the token has expired; get one with ... (refused: the token in POLICYFLOW_TOKEN)"
    )


def test_token_issue_save_keeps_it_private_and_later_commands_use_it(
    monkeypatch: pytest.MonkeyPatch, env: Path
) -> None:
    r = runner.invoke(app, ["token", "issue", "--role", "department", "--unit", "yuzhong", "--save"])
    assert r.exit_code == 0, r.output
    saved = env / "xdg" / "policyflow" / "config.toml"
    assert r.stdout == "" and f"已保存 department yuzhong 的令牌到 {saved}" in r.stderr
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    seen = serve(monkeypatch, {"items": [], "total": 0})
    assert runner.invoke(app, ["inbox"]).exit_code == 0
    token = seen[0].headers["authorization"].removeprefix("Bearer ")
    assert f'token = "{token}"' in saved.read_text()
    assert seen[0].url.path == "/v1/units/yuzhong/assignments"
    # saving again keeps the file's other settings; an exported token still wins, and the CLI says so
    saved.write_text(saved.read_text() + 'progress_url = "http://127.0.0.1:9102"\n')
    monkeypatch.setenv("POLICYFLOW_TOKEN", "x")
    r = runner.invoke(app, ["--lang", "en", "token", "issue", "--role", "supervisor", "--save"])
    assert "saved the token for supervisor" in r.stderr and "`unset POLICYFLOW_TOKEN`" in r.stderr
    assert 'progress_url = "http://127.0.0.1:9102"' in saved.read_text()


def test_a_token_that_cannot_be_issued_fails_loudly() -> None:
    r = runner.invoke(app, ["token", "issue", "--role", "department"])
    assert r.exit_code == 2 and r.stdout == "" and "needs a unit" in r.stderr
    r = runner.invoke(app, ["token", "issue", "--role", "mayor", "--json"])
    assert r.exit_code == 2 and json.loads(r.stderr)["error"].startswith("unknown role 'mayor'")


def test_full_width_input_is_taken_as_meant(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    login(monkeypatch, env)
    seen = serve(monkeypatch, ACCEPTED)
    later = typed.today() + dt.timedelta(days=30)
    day = f"{later.year}年{later.month}月{later.day}日".translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    r = runner.invoke(
        app,
        ["plan", "submit", AID, "--year", "２０２６", "--milestone", f"{day}：评估",
         "--indicator", "惠及居民：3000：户", "--indicator", "绿色建筑占比：７０%"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "提醒" not in r.stderr
    assert json.loads(seen[0].content) == {
        "year": 2026,
        "milestones": [{"due": later.isoformat(), "title": "评估"}],
        "indicators": [
            {"name": "惠及居民", "target": 3000, "unit": "户"},
            {"name": "绿色建筑占比", "target": 70, "unit": "%"},
        ],
    }
    r = runner.invoke(
        app,
        ["report", AID, "--period", "２０２６－Ｑ３", "--percent", "７０", "--narrative", "n", "--value", "占比＝70"],
    )
    assert r.exit_code == 0, r.output
    body = json.loads(seen[1].content)
    assert (body["period"], body["percent"], body["indicator_values"]) == (
        "2026-Q3",
        70,
        [{"name": "占比", "value": 70}],
    )


def test_a_milestone_already_past_is_warned_of_and_still_sent(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    login(monkeypatch, env)
    seen = serve(monkeypatch, ACCEPTED)
    past = typed.today() - dt.timedelta(days=3)
    r = runner.invoke(app, ["plan", "submit", AID, "--year", str(past.year), "--milestone", f"{past}:评估"])
    assert r.exit_code == 0 and len(seen) == 1
    assert f"提醒：节点 {past} 评估 早于今天（{typed.today()}），已经过去" in r.stderr
    r = runner.invoke(
        app, ["--lang", "en", "plan", "submit", AID, "--year", str(past.year), "--milestone", f"{past}:x"]
    )
    assert f"warning: milestone {past} x is already past" in r.stderr


def test_long_texts_come_from_files(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    login(monkeypatch, env, "supervisor", None)
    seen = serve(monkeypatch, lambda r: {**DETAIL} if r.method == "GET" else ACCEPTED)
    narrative, findings, comment = env / "n.txt", env / "f.txt", env / "c.txt"
    narrative.write_bytes("\ufeff一季度完成评估。\n第二段。\n".encode())
    findings.write_bytes("佐证材料不全".encode("gb18030"))  # as Chinese Windows saves a text
    comment.write_text("请量化指标", encoding="utf-8")
    assert (
        runner.invoke(
            app, ["report", AID, "--period", "2026-Q1", "--percent", "5", "--narrative-file", str(narrative)]
        ).exit_code
        == 0
    )
    assert runner.invoke(app, ["verify", AID, "fail", "--findings-file", str(findings)]).exit_code == 0
    assert runner.invoke(app, ["review", AID, "return", "--comment-file", str(comment)]).exit_code == 0
    posts = [json.loads(r.content) for r in seen if r.method == "POST"]
    assert posts[0]["narrative"] == "一季度完成评估。\n第二段。"
    assert posts[1]["findings"] == "佐证材料不全" and posts[2]["comment"] == "请量化指标"
    r = runner.invoke(app, ["report", AID, "--period", "2026-Q1", "--percent", "5"])
    assert r.exit_code == 1 and "give --narrative TEXT, or --narrative-file FILE" in r.stderr


def test_show_prints_the_plan_report_verification_and_summary(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    login(monkeypatch, env)
    serve(monkeypatch, DETAIL)
    r = runner.invoke(app, ["show", AID])
    assert r.exit_code == 0, r.output
    for words in (
        "实施中", "黄色督办", "2026-10-15 2026年第三季度进展填报", "2026年度计划（第2版，已退回）",
        "2026-06-30  新建建筑绿色建筑占比评估", "指标 绿色建筑占比: 70%", "退回原因: 指标需量化",
        "最近一次进展填报：2026年第二季度，完成 40%", "绿色建筑占比 = 65",
        f"佐证材料 统计表.pdf (2.0 KiB, sha256 {'ab' * 6}…)",
        "2026年度核验：核验未通过", "核验意见: 佐证材料不全", "整改期限: 2026-11-30", "牵头单位2026年度汇总（第1版）",
        "各区县均已完成评估", "进展填报 2",
    ):  # fmt: skip
        assert words in r.stdout, words
    assert "report:2026-Q3" not in r.stdout and "implementing" not in r.stdout
    r = runner.invoke(app, ["show", AID], env={"POLICYFLOW_LANG": "en"})
    for words in (
        "implementing",
        "yellow escalation",
        "annual plan 2026 (revision 2, returned)",
        "rework due: 2026-11-30",
    ):
        assert words in r.stdout, words


def test_errors_with_json_are_json(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    login(monkeypatch, env)
    serve(monkeypatch, httpx.Response(409, json={"detail": "assignment is already accepted"}))
    for args in (["accept", AID], ["show", AID], ["status"], ["evidence", "list", AID], ["inbox"]):
        r = runner.invoke(app, [*args, "--json"])
        assert r.exit_code == 1 and r.stdout == "", args
        assert json.loads(r.stderr) == {"error": "assignment is already accepted", "status": 409}, args
    r = runner.invoke(app, ["plan", "submit", AID, "--year", "2026", "--milestone", "soon:评估", "--json"])
    assert json.loads(r.stderr) == {
        "error": "--milestone 'soon:评估': 'soon' is not a date; write it like 2026-06-30",
        "status": 0,
    }


def test_an_indicator_id_names_the_programmes_declared_indicator() -> None:
    assert typed.indicator("green_building_share：92：%") == {
        "id": "green_building_share", "name": "green_building_share", "target": 92, "unit": "%"}  # fmt: skip
    assert typed.value("water_saving_county=1") == {"id": "water_saving_county", "name": "water_saving_county",
                                                    "value": 1}  # fmt: skip
    assert typed.indicator("绿色建筑占比：70%") == {"name": "绿色建筑占比", "target": 70, "unit": "%"}
    assert "id" not in typed.value("Green share=70")
