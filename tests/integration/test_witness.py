"""The witness over HTTP (c2sp.org/tlog-witness): it cosigns a log's checkpoint only on a consistency
proof from the last one it cosigned, refuses a rewritten log (422, or 409 for the same size with
another root) and logs the refusal with both checkpoints, and keeps its state across a restart; as
its own process, it cosigns the audit service's checkpoints and refuses a ledger rebuilt from other
events. Cosignatures are checked by tests/support/c2sp.py, written from the C2SP texts alone."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs
from typer.testing import CliRunner

from contracts.base import UserRole
from deploy.local.servers import free_port
from services.audit.checkpoints import Signer
from services.cli.main import app
from services.shared.merkle import consistency_ranges, leaf_hash, mth
from services.shared.signed_note import checkpoint_body, raw_public, sign_note, vkey
from services.shared.streams import ensure_event_stream
from services.witness.app import create_app
from services.witness.settings import WitnessSettings
from tests.integration.audit_support import many_events, running, settings_for
from tests.support import processes
from tests.support.c2sp import cosignatures_in, verify_checkpoint_note, verify_cosignature
from tests.support.publishing import publish
from tests.support.waiting import until

ORIGIN = "example.test/log"


@dataclass
class Log:
    """A log on the test's side: its key, its leaves, its checkpoints and proofs (our merkle code is
    the log's here; the witness is what is under test)."""

    key: Ed25519PrivateKey
    leaves: list[bytes]
    origin: str = ORIGIN

    @property
    def vkey(self) -> str:
        return vkey(self.origin, raw_public(self.key))

    def note(self, size: int) -> str:
        return sign_note(checkpoint_body(self.origin, size, mth(self.leaves[:size])), self.origin, self.key)

    def proof(self, old: int, new: int) -> list[bytes]:
        return [mth(self.leaves[a:b]) for a, b in consistency_ranges(old, new)] if 0 < old < new else []

    def request(self, old: int, size: int, proof: list[bytes] | None = None) -> bytes:
        hashes = self.proof(old, size) if proof is None else proof
        lines = [f"old {old}", *(base64.b64encode(h).decode() for h in hashes)]
        return ("".join(line + "\n" for line in lines) + "\n" + self.note(size)).encode()


def leaves(tag: str, n: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(f"{tag}-{i}".encode()).digest()) for i in range(n)]


@dataclass
class WitnessProcess:
    url: str
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = processes.spawn("services.witness", self.env, self.log)

    def lines(self) -> list[dict[str, object]]:
        out = []
        for raw in self.log.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return out


@contextmanager
def running_witness(var: Path, log_keys: str) -> Iterator[WitnessProcess]:
    """`python -m services.witness` with its state under `var`, witnessing the logs of `log_keys`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WITNESS_")}
    env.update(POLICYFLOW_VAR=str(var), WITNESS_PORT=str(port), WITNESS_LOG_KEYS=log_keys)
    w = WitnessProcess(f"http://127.0.0.1:{port}", var / "witness.log", env)
    w.start()
    try:
        yield w
    finally:
        assert w.proc is not None
        processes.stop(w.proc)


@asynccontextmanager
async def serving(settings: WitnessSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The witness app under uvicorn in this event loop (real HTTP, no process start to wait for)."""
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), "the witness listening", timeout=30, interval=0.02)
        if task.done():
            task.result()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_the_witness_cosigns_extensions_and_refuses_a_rewritten_log(tmp_path: Path) -> None:
    log_side = Log(Ed25519PrivateKey.generate(), leaves("honest", 12))
    settings = WitnessSettings(var_dir=tmp_path, port=free_port(), log_keys=log_side.vkey)
    with capture_logs() as logged:
        await exchanges(settings, log_side, tmp_path)

    # Both refusals logged at error level with both checkpoints, each signed by the log.
    refusals = [line for line in logged if line["event"] == "witness.rewrite_refused"]
    assert [(r["log_level"], r["status"]) for r in refusals] == [("error", 422), ("error", 409)]
    old, new = refusals[0]["old"], refusals[0]["new"]
    rewritten = Log(log_side.key, log_side.leaves[:3] + leaves("rewritten", 9))
    assert (old["size"], old["root"]) == (5, base64.b64encode(mth(log_side.leaves[:5])).decode())
    assert (new["size"], new["root"]) == (8, base64.b64encode(mth(rewritten.leaves[:8])).decode())
    assert old["note"] == log_side.note(5) and new["note"] == rewritten.note(8)

    # Its state outlives the app: started again on the same database, it still holds size 8.
    async with serving(settings) as c:
        r = await c.post("/add-checkpoint", content=log_side.request(5, 12))
        assert (r.status_code, r.text) == (409, "8\n")
        # Requests racing from the same old size: one is cosigned; the others are told its size (409),
        # never cosigned on top of a state another request replaced (the roll-back the spec warns of).
        answers = await asyncio.gather(
            *(c.post("/add-checkpoint", content=log_side.request(8, n)) for n in (9, 10, 11, 12))
        )
        won = [n for n, r in zip((9, 10, 11, 12), answers, strict=True) if r.status_code == 200]
        assert len(won) == 1, [(r.status_code, r.text) for r in answers]
        assert sorted((r.status_code, r.text) for r in answers if r.status_code != 200) == [(409, f"{won[0]}\n")] * 3
        state = (await c.get("/v1/witness")).json()["logs"]
        assert [(s["size"], s["root"]) for s in state] == [(won[0], mth(log_side.leaves[: won[0]]).hex())]


async def exchanges(settings: WitnessSettings, log_side: Log, tmp_path: Path) -> None:
    """Every answer of add-checkpoint, in the spec's order, on one running witness."""
    async with serving(settings) as c:
        about = (await c.get("/v1/witness")).json()
        printed = CliRunner().invoke(app, ["witness", "key"], env={"POLICYFLOW_VAR": str(tmp_path)})
        assert printed.exit_code == 0 and printed.stdout.strip() == about["verifier_key"]
        witness_key = about["verifier_key"]

        async def add(body: bytes) -> httpx.Response:
            return await c.post("/add-checkpoint", content=body)

        # Not this witness's log (404), not signed by the log's key (403), malformed (400).
        stranger = Log(Ed25519PrivateKey.generate(), log_side.leaves, origin="example.test/other")
        assert (await add(stranger.request(0, 5))).status_code == 404
        impostor = Log(Ed25519PrivateKey.generate(), log_side.leaves)
        assert (await add(impostor.request(0, 5))).status_code == 403
        assert (await add(b"old 01\n\n" + log_side.note(5).encode())).status_code == 400
        assert (await add(log_side.request(6, 5, proof=[]))).status_code == 400

        # The first checkpoint (old 0, no proof), cosigned in the C2SP form.
        r = await add(log_side.request(0, 5))
        assert r.status_code == 200, r.text
        body5 = checkpoint_body(ORIGIN, 5, mth(log_side.leaves[:5]))
        assert verify_cosignature(body5, r.text, witness_key) > 0
        with pytest.raises(AssertionError, match="bad cosignature"):
            verify_cosignature(body5.replace("\n5\n", "\n6\n"), r.text, witness_key)

        # From another old size: 409 with the size it cosigned, as text/x.tlog.size.
        r = await add(log_side.request(0, 8))
        assert (r.status_code, r.headers["content-type"], r.text) == (409, "text/x.tlog.size", "5\n")

        # A rewritten log, signed again by its own key: entries 3.. replaced, the proof from 5 made on
        # the rewritten tree. Refused (422), and the same size with another root too (409).
        rewritten = Log(log_side.key, log_side.leaves[:3] + leaves("rewritten", 9))
        r = await add(rewritten.request(5, 8))
        assert r.status_code == 422 and "rewritten" in r.text, r.text
        r = await add(rewritten.request(5, 5))
        assert r.status_code == 409 and not r.headers["content-type"].startswith("text/x.tlog.size"), r.text

        # The honest extension still goes through: the refusals changed nothing.
        r = await add(log_side.request(5, 8))
        assert r.status_code == 200, r.text
        verify_cosignature(checkpoint_body(ORIGIN, 8, mth(log_side.leaves[:8])), r.text, witness_key)
        state = (await c.get("/v1/witness")).json()["logs"]
        assert [(s["origin"], s["size"]) for s in state] == [(ORIGIN, 8)]


async def test_the_audit_service_stores_a_real_witness_cosignature_and_a_rewrite_is_refused(
    tmp_path: Path, nats_url: str, event_stream: str
) -> None:
    """The audit log and a witness process, end to end: the cosignature is stored and published with the
    checkpoint, `audit verify --witnesses 1` passes on the export and `--witnesses 2` fails; then the
    ledger is rebuilt from other events and signed again with the same key: the witness refuses it."""
    keys = tmp_path / "svc" / "keys"
    log_vkey = Signer(keys, "policyflow.local/audit").vkey  # the log's key exists before the witness starts
    with running_witness(tmp_path / "w", log_vkey) as witness:
        printed = CliRunner().invoke(app, ["witness", "key"], env={"POLICYFLOW_VAR": str(tmp_path / "w")})
        assert printed.exit_code == 0, printed.output
        witness_key = printed.stdout.strip()
        options = {"checkpoint_interval": 0.3, "witness_urls": witness.url, "witness_keys": witness_key}
        async with httpx.AsyncClient(timeout=10) as c:
            await until(lambda: c.get(witness.url + "/healthz"), "the witness answers", timeout=30)

        events = many_events(2)  # 28 entries
        async with running(settings_for(tmp_path / "svc", nats_url, **options)) as svc:
            await publish(nats_url, events)

            async def cosigned() -> dict[str, object] | None:
                r = await svc.client.get("/v1/audit/checkpoints/latest", headers=svc.auth())
                cp: dict[str, object] = r.json() if r.status_code == 200 else {}
                return cp if cp.get("size") == len(events) and cp.get("cosignatures") else None

            await until(cosigned, "the checkpoint of 28 entries cosigned by the witness", timeout=30)
            plain = {**svc.auth(), "Accept": "text/plain"}
            note = (await svc.client.get("/v1/audit/checkpoints/latest", headers=plain)).text
            assert verify_checkpoint_note(note, log_vkey)[1] == len(events)
            assert len(cosignatures_in(note, witness_key)) == 1
            env = {"POLICYFLOW_AUDIT_URL": svc.url, "POLICYFLOW_TOKEN": svc.token(UserRole.AUDITOR)}
            bundle = tmp_path / "bundle"
            result = await asyncio.to_thread(CliRunner().invoke, app, ["audit", "export", str(bundle)], env=env)
            assert result.exit_code == 0, result.output

        one = CliRunner().invoke(app, ["--lang", "en", "audit", "verify", str(bundle), "--witnesses", "1"])
        assert one.exit_code == 0 and "WITNESSED: the checkpoint of the first 28 entries" in one.output, one.output
        two = CliRunner().invoke(app, ["--lang", "en", "audit", "verify", str(bundle), "--witnesses", "2"])
        assert two.exit_code == 1 and "NOT WITNESSED" in two.output, two.output
        other = CliRunner().invoke(
            app,
            [
                "audit",
                "verify",
                str(bundle),
                "--witnesses",
                "1",
                "--witness-key",
                Log(Ed25519PrivateKey.generate(), []).vkey,
            ],
        )
        assert other.exit_code == 2 and "0x04" in other.output, other.output

        # Whoever holds the log's host rewrites history: another stream, a fresh ledger, the same key.
        nc = await nats.connect(nats_url)
        await nc.jetstream().delete_stream(event_stream)
        await ensure_event_stream(nc.jetstream())
        await nc.close()
        rewritten = many_events(3, first=40)  # 42 entries, none of them the ones cosigned
        settings = settings_for(tmp_path / "forged", nats_url, key_dir=keys, **options)
        async with running(settings) as forged:
            await publish(nats_url, rewritten)

            def refused() -> list[dict[str, object]]:
                return [line for line in witness.lines() if line.get("event") == "witness.rewrite_refused"]

            found = await until(refused, "the witness refusing the rewritten ledger", timeout=30)
            latest = (await forged.client.get("/v1/audit/checkpoints/latest", headers=forged.auth())).json()
            assert latest["size"] == len(rewritten) and latest["cosignatures"] == []
        line = found[0]
        assert (line["level"], line["status"]) == ("error", 422)
        old, new = line["old"], line["new"]
        assert isinstance(old, dict) and isinstance(new, dict)
        assert (old["size"], new["size"]) == (len(events), len(rewritten)) and old["root"] != new["root"]
        assert verify_checkpoint_note(str(old["note"]), log_vkey)[1] == len(events)  # both signed by the log:
        assert verify_checkpoint_note(str(new["note"]), log_vkey)[1] == len(rewritten)  # evidence of the fork
