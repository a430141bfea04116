"""`--json` on the local commands (programme, contracts, docs, audit verify): the answer as one JSON
document on stdout, an error as one JSON line on stderr, the exit codes as without it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from contracts import events as ev
from contracts.base import Actor, UserRole
from services.audit.ledger import GENESIS, canonical_json, chain, checkpoint_note, merkle_root, utc_text
from services.audit.verify import COLUMN_FIELDS, StoredEntry
from services.cli.main import app

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cq-2022-79"


def error_of(result: Result) -> dict[str, Any]:
    """The one JSON line an error leaves on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])
    assert set(error) >= {"error", "status"} and "Traceback" not in result.output
    return dict(error)


def test_every_command_takes_json() -> None:
    def leaves(cmd: Any, path: list[str]) -> list[tuple[str, Any]]:
        subs = getattr(cmd, "commands", None)
        if not subs:
            return [(" ".join(path), cmd)]
        return [leaf for name, sub in subs.items() for leaf in leaves(sub, [*path, name])]

    commands = leaves(typer.main.get_command(app), [])
    assert {"programme parse", "docs check", "audit verify", "admin rebuild-read-models"} <= {n for n, _ in commands}
    assert [n for n, c in commands if not any("--json" in p.opts for p in c.params)] == []


def test_programme_parse_json_is_the_same_programme(tmp_path: Path) -> None:
    plain = runner.invoke(app, ["programme", "parse", str(EXAMPLE / "policy.txt")])
    result = runner.invoke(app, ["programme", "parse", str(EXAMPLE / "policy.txt"), "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout == plain.stdout and len(json.loads(result.stdout)["groups"]) == 6

    prose = tmp_path / "prose.txt"
    prose.write_text("这是一段随便的文字。没有任何任务。\n", encoding="utf-8")
    bad = runner.invoke(app, ["programme", "parse", str(prose), "--json"])
    assert bad.exit_code == 2 and bad.stdout == ""
    error = error_of(bad)
    assert error["status"] == 0 and str(prose) in error["error"]


def test_programme_check_json_is_the_summary_as_data(tmp_path: Path) -> None:
    result = runner.invoke(app, ["programme", "check", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["programme_id"] == "cq-2022-79" and data["issued_on"] == "2022-07-09"
    assert (data["tasks"], data["groups"], data["goal_years"]) == (30, 6, [2025, 2035])
    assert data["units"]["districts"] == 41 and data["responsibilities"]["lead"] == 30
    assert data["example_division"] is True and data["warnings"] == []

    # A bare policy text has no division: the warning is data on stdout and a line on stderr.
    bare = runner.invoke(app, ["programme", "check", str(EXAMPLE / "policy.txt"), "--json"])
    assert bare.exit_code == 0, bare.output
    assert json.loads(bare.stdout)["warnings"] == [
        "no division of work (give a division file, and the unit registry it refers to)"
    ]
    assert bare.stderr.startswith("warning: no division of work")

    division = tmp_path / "division.csv"
    division.write_text("task_no,unit_id,role,horizon_year\n1,yuzhong2,responsible,2035\n2,yuzhong,boss,2035\n")
    bad = runner.invoke(app, ["programme", "check", str(EXAMPLE), "--division", str(division), "--json"])
    assert bad.exit_code == 1 and bad.stdout == ""
    error = error_of(bad)
    assert error["error"] == "2 problem(s); nothing was loaded"
    assert error["problems"][0] == f"{division}:2: unit_id: unknown unit 'yuzhong2' (did you mean 'yuzhong'?)"


def test_contracts_export_json_lists_the_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["contracts", "export", str(tmp_path / "schemas"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["count"] == len(data["written"]) > 10
    assert str(tmp_path / "schemas" / "events" / "Event.schema.json") in data["written"]
    assert all(Path(p).is_file() for p in data["written"])

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    bad = runner.invoke(app, ["contracts", "export", str(blocked), "--json"])
    assert bad.exit_code == 1 and bad.stdout == ""
    assert error_of(bad)["error"].startswith(f"cannot write {blocked}")
    plain = runner.invoke(app, ["contracts", "export", str(blocked)])
    assert plain.exit_code == 1 and plain.stderr.startswith(f"error: cannot write {blocked}")


def test_docs_export_and_check_json(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    result = runner.invoke(app, ["docs", "export", str(docs), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)["written"]
    assert sorted(written) == sorted(
        str(docs / rel) for rel in ("asyncapi.json", *(f"openapi/{s}.json" for s in ("assignment", "progress",
                                                                                     "audit", "notify", "witness")))
    )  # fmt: skip

    fresh = runner.invoke(app, ["docs", "check", str(docs), "--json"])
    assert fresh.exit_code == 0 and json.loads(fresh.stdout) == {"ok": True, "directory": str(docs), "stale": []}

    (docs / "asyncapi.json").write_text("{}\n")
    stale = runner.invoke(app, ["docs", "check", str(docs), "--json"])
    assert stale.exit_code == 1
    assert json.loads(stale.stdout) == {"ok": False, "directory": str(docs), "stale": [str(docs / "asyncapi.json")]}
    assert "asyncapi.json" in error_of(stale)["error"]

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    bad = runner.invoke(app, ["docs", "export", str(blocked), "--json"])
    assert bad.exit_code == 1 and bad.stdout == "" and error_of(bad)["error"].startswith("cannot write")


# -- audit verify on a bundle of a few entries, signed here as the audit service signs ---------

KEY = Ed25519PrivateKey.generate()
ACTOR = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")


def report(i: int, evidence: list[ev.Evidence] | None = None) -> str:
    fact = ev.ProgressReported(year=2026, period="2026-Q1", percent=10.0 + i, narrative="进展", evidence=evidence or [])
    event = ev.make_event(fact, seq=i, occurred_at=dt.datetime(2026, 4, 1, 2, 3, i, tzinfo=dt.UTC),
                          programme_id="cq-2022-79", actor=ACTOR, assignment_id="cq-2022-79.t14.yuzhong",
                          task_no=14, unit_id="yuzhong")  # fmt: skip
    return canonical_json(event)


def write_bundle(directory: Path, texts: list[str], signed_size: int) -> list[str]:
    """ledger.jsonl over these event texts, checkpoints.json (one checkpoint of the first
    `signed_size` entries, signed as the audit service signs) and the public key; the lines."""
    hashes = chain(texts)
    lines = []
    for i, text in enumerate(texts):
        e = json.loads(text)
        occurred = utc_text(dt.datetime.fromisoformat(e["occurred_at"]))
        prev = (hashes[i - 1] if i else GENESIS).hex()
        row = [i + 1, *(e.get(c) for c in COLUMN_FIELDS), occurred, prev, hashes[i].hex(), text]
        lines.append(json.dumps(dict(zip(StoredEntry._fields, row, strict=True)), ensure_ascii=False) + "\n")
    root, head, created = merkle_root(hashes[:signed_size]).hex(), hashes[signed_size - 1].hex(), "2026-04-02T00:00:00Z"
    signature = base64.b64encode(KEY.sign(checkpoint_note(signed_size, root, head, created))).decode()
    checkpoint = {"size": signed_size, "root": root, "head": head, "created_at": created, "signature": signature}
    directory.mkdir()
    (directory / "ledger.jsonl").write_text("".join(lines), encoding="utf-8")
    (directory / "checkpoints.json").write_text(json.dumps({"items": [checkpoint]}), encoding="utf-8")
    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (directory / "audit-checkpoint-public.pem").write_bytes(pem)
    return lines


def verify(bundle: Path, *options: str) -> Result:
    return runner.invoke(app, ["audit", "verify", str(bundle), "--json", *options])


def test_audit_verify_json_says_what_the_lines_say(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    lines = write_bundle(bundle, [report(i) for i in range(5)], signed_size=4)
    plain = runner.invoke(app, ["audit", "verify", str(bundle)])
    assert plain.exit_code == 0 and plain.stdout.startswith("OK: 5 entries"), plain.output

    result = verify(bundle, "--strict")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "ok": True,
        "strict": True,
        "entries": 5,
        "head": json.loads(lines[-1])["hash"],
        "checkpoints": 1,
        "latest_checkpoint": 4,
        "unsigned_tail": 1,
        "witnessed": 0,
        "witnesses": [],
        "first_bad": None,
        "evidence": None,
    }

    # A deleted line: the verdict on stdout, the TAMPERED line as the error on stderr, exit 1.
    (bundle / "ledger.jsonl").write_text("".join(lines[:1] + lines[2:]), encoding="utf-8")
    tampered = verify(bundle)
    assert tampered.exit_code == 1
    data = json.loads(tampered.stdout)
    assert data["ok"] is False and data["first_bad"]["line"] == 2 and data["first_bad"]["ledger_seq"] == 2
    assert "missing" in data["first_bad"]["reason"]
    assert error_of(tampered)["error"].startswith("TAMPERED: line 2 (ledger_seq 2): ")

    # Unusable input: exit 2, no answer on stdout, the error line.
    (bundle / "audit-checkpoint-public.pem").unlink()
    unusable = verify(bundle)
    assert unusable.exit_code == 2 and unusable.stdout == ""
    assert error_of(unusable) == {
        "error": f"cannot read {bundle / 'audit-checkpoint-public.pem'}: No such file or directory",
        "status": 0,
    }


@pytest.mark.parametrize("content", [b"%PDF-1.4 report", b"%PDF-1.4 forged"])
def test_audit_verify_json_counts_the_evidence_files(tmp_path: Path, content: bytes) -> None:
    """A bundle exported with --evidence: each file is checked against the hash its report names."""
    original = b"%PDF-1.4 report"
    sha = hashlib.sha256(original).hexdigest()
    bundle = tmp_path / "bundle"
    named = [ev.Evidence(name="验收报告.pdf", sha256=sha, size=len(original))]
    write_bundle(bundle, [report(0, named), report(1)], signed_size=2)
    (bundle / "evidence").mkdir()
    (bundle / "evidence" / sha).write_bytes(content)

    result = verify(bundle)
    data = json.loads(result.stdout)
    if content == original:
        assert result.exit_code == 0, result.output
        assert data["ok"] is True and data["evidence"] == {"checked": 1, "problems": [], "unavailable": []}
        return
    assert result.exit_code == 1 and data["ok"] is False and data["first_bad"] is None
    problem = f"evidence 验收报告.pdf ({sha}) was altered: its content no longer has that hash"
    assert data["evidence"]["problems"] == [problem]
    assert error_of(result)["error"] == f"TAMPERED: {problem}"


def test_users_json_is_the_answer_alone_on_stdout(tmp_path: Path) -> None:
    """`users add --json` as a script runs it: stdout is one JSON document (the database's own log
    lines go to stderr)."""
    policyflow = Path(sys.executable).with_name("policyflow")
    env = {**os.environ, "POLICYFLOW_VAR": str(tmp_path), "PROGRESS_DATABASE_URL": "", "DATABASE_URL": ""}
    args = [str(policyflow), "users", "add", "zhao.liu", "--role", "department", "--unit", "yuzhong", "--json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["name"] == "zhao.liu" and len(said["password"]) >= 12
