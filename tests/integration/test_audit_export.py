"""`policyflow audit export` from a running service, `policyflow audit verify` offline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.base import UserRole
from services.audit.ledger import entry_hash
from services.cli.main import app
from tests.integration.audit_support import many_events, running, settings_for
from tests.support.cli_output import json_answer, without_logs
from tests.support.publishing import publish

pytestmark = pytest.mark.usefixtures("event_stream")  # each test on a fresh event stream

runner = CliRunner()


def verify(bundle: Path, *options: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", str(bundle), *options])
    return result.exit_code, result.output


async def test_export_then_verify_offline(tmp_path: Path, nats_url: str) -> None:
    events = many_events(10)
    bundle = tmp_path / "bundle"
    async with running(settings_for(tmp_path / "svc", nats_url, checkpoint_every=50)) as svc:
        await publish(nats_url, events)
        await svc.wait_for_size(len(events))
        await svc.client.post("/v1/audit/checkpoints", headers=svc.auth(UserRole.SUPERVISOR))
        env = {"POLICYFLOW_AUDIT_URL": svc.url, "POLICYFLOW_TOKEN": svc.token(UserRole.AUDITOR)}
        # The CLI is synchronous (httpx.Client): run it off the loop the service is serving on.
        result = await asyncio.to_thread(runner.invoke, app, ["audit", "export", str(bundle)], env=env)
        assert result.exit_code == 0, result.output
        assert "exported 140 entries" in result.output
        denied = await asyncio.to_thread(
            runner.invoke, app, ["audit", "export", str(tmp_path / "x")], env={**env, "POLICYFLOW_TOKEN": "bad"}
        )
        assert denied.exit_code == 2 and "HTTP 401" in denied.output and "Traceback" not in denied.output
        # --json: the manifest as data on stdout; a refusal as one JSON line on stderr, same exit code.
        again = tmp_path / "again"
        result = await asyncio.to_thread(runner.invoke, app, ["audit", "export", str(again), "--json"], env=env)
        assert result.exit_code == 0, result.output
        answer = json_answer(result.stdout)
        assert answer["directory"] == str(again) and answer["evidence"] is None
        assert answer["manifest"] == json.loads((again / "manifest.json").read_text())
        assert (answer["manifest"]["entries"], answer["manifest"]["latest_checkpoint"]) == (140, 140)
        denied = await asyncio.to_thread(
            runner.invoke, app, ["audit", "export", str(again), "--json"], env={**env, "POLICYFLOW_TOKEN": "bad"}
        )
        assert denied.exit_code == 2 and without_logs(denied.stdout) == ""
        refusal = json_answer(denied.stderr)
        assert refusal["status"] == 401 and "HTTP 401" in refusal["error"]

    # The service is gone: everything below is offline.
    assert sorted(p.name for p in bundle.iterdir()) == [
        "audit-checkpoint-public.pem",
        "checkpoints.json",
        "ledger.jsonl",
        "manifest.json",
    ]
    code, out = verify(bundle)
    assert code == 0, out
    assert "OK: 140 entries" in out and "signed checkpoints match (latest covers 140)" in out
    code, out = verify(bundle, "--strict")
    assert code == 0 and "OK (strict): 140 entries" in out, out

    lines = (bundle / "ledger.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)

    # A deleted line: named by its line number (the entry that follows the hole).
    (bundle / "ledger.jsonl").write_text("".join(lines[:40] + lines[41:]), encoding="utf-8")
    code, out = verify(bundle)
    assert code == 1 and "line 41 (ledger_seq 41)" in out and "missing" in out, out

    # One changed byte in one entry's text.
    entry = json.loads(lines[99])
    entry["canonical"] = entry["canonical"].replace('"seq":', '"seq": ', 1)
    changed = [*lines[:99], json.dumps(entry, ensure_ascii=False) + "\n", *lines[100:]]
    (bundle / "ledger.jsonl").write_text("".join(changed), encoding="utf-8")
    code, out = verify(bundle)
    assert code == 1 and "line 100 (ledger_seq 100)" in out and "altered" in out, out

    # The same entry respaced and every hash from there on recomputed: the signed checkpoint of
    # 100 entries tells that something changed; strict mode names the entry that is not canonical.
    respaced, prev = list(lines), bytes.fromhex(json.loads(lines[98])["hash"])
    for i in range(99, len(lines)):
        entry = json.loads(lines[i])
        if i == 99:
            entry["canonical"] = entry["canonical"].replace('"seq":', '"seq": ', 1)
        entry["prev_hash"], prev = prev.hex(), entry_hash(prev, entry["canonical"])
        entry["hash"] = prev.hex()
        respaced[i] = json.dumps(entry, ensure_ascii=False) + "\n"
    (bundle / "ledger.jsonl").write_text("".join(respaced), encoding="utf-8")
    code, out = verify(bundle)
    assert code == 1 and "line 100 (ledger_seq 100): the first 100 entries do not match" in out, out
    code, out = verify(bundle, "--strict")
    assert code == 1 and "line 100 (ledger_seq 100): the stored text is not in canonical form" in out, out

    # Cut off after the last checkpoint's entries: only the signature can tell.
    (bundle / "ledger.jsonl").write_text("".join(lines[:-1]), encoding="utf-8")
    code, out = verify(bundle)
    assert code == 1 and "covers 140" in out, out

    # A checkpoint whose root was replaced no longer matches its signature.
    (bundle / "ledger.jsonl").write_text("".join(lines), encoding="utf-8")
    cps = json.loads((bundle / "checkpoints.json").read_text())
    cps["items"][0]["root"] = "00" * 32
    (bundle / "checkpoints.json").write_text(json.dumps(cps))
    code, out = verify(bundle)
    assert code == 1 and "TAMPERED: checkpoints.json: checkpoint of size 50: bad signature" in out, out

    # Unusable input: exit 2, one line, no traceback.
    (bundle / "audit-checkpoint-public.pem").unlink()
    code, out = verify(bundle)
    assert code == 2 and out.startswith("error: cannot read") and "Traceback" not in out, out
    code, out = verify(tmp_path / "nowhere")
    assert code == 2 and "Traceback" not in out
