"""Evidence files (佐证材料) over real HTTP: upload, download, who may read, limits, the report's
check, a restart, the S3-compatible store (moto's server), the audit export and its verification.

One stack (worker, assignment and progress services, real nats-server and Temporal) for the module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from temporalio.client import Client
from typer.testing import CliRunner

from contracts.base import UserRole
from contracts.ids import assignment_id
from deploy.local.servers import free_port
from services.cli.main import app as cli
from services.progress.app import create_app as progress_app
from services.progress.settings import ProgressSettings
from services.shared.db import sqlite_url
from tests.e2e.support import Stack, running_stack, serve, small_programme
from tests.integration.audit_support import running, settings_for
from tests.support.clock import china_today
from tests.support.waiting import until

runner = CliRunner()
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n"
PDF_NAME = "验收报告 2026.pdf"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-evidence-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("ev"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


@pytest.fixture(scope="module")
async def pid(stack: Stack) -> str:
    body = small_programme(start_year=china_today().year)
    async with httpx.AsyncClient(timeout=30) as c:
        admin = stack.headers("admin")
        r = await c.post(f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=admin)
        assert r.status_code == 200, r.text
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{body.programme_id}/dispatch", headers=admin)
        assert r.status_code == 200 and r.json()["started"] == 7, r.text
    return body.programme_id


async def put(c: httpx.AsyncClient, url: str, aid: str, name: str, data: bytes, headers: Any) -> httpx.Response:
    # A declared type that lies: the service must look at the content.
    files = {"file": (name, data, "application/pdf")}
    return await c.post(f"{url}/v1/assignments/{aid}/evidence", files=files, headers=headers)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_upload_is_kept_once_and_comes_back_the_same(stack: Stack, pid: str) -> None:
    own, other = assignment_id(pid, 3, "yuzhong"), assignment_id(pid, 2, "yuzhong")
    unit = stack.headers("department", "yuzhong")
    async with httpx.AsyncClient(timeout=30) as c:
        first = await put(c, stack.progress_url, own, PDF_NAME, PDF, unit)
        assert first.status_code == 201, first.text
        assert {k: first.json()[k] for k in ("sha256", "size", "name", "media_type")} == {
            "sha256": sha(PDF), "size": len(PDF), "name": PDF_NAME, "media_type": "application/pdf",
        }  # fmt: skip
        again = await put(c, stack.progress_url, own, PDF_NAME, PDF, unit)
        assert again.status_code == 200 and again.json()["sha256"] == sha(PDF)
        elsewhere = await put(c, stack.progress_url, other, "copy.pdf", PDF, unit)
        assert elsewhere.status_code == 201, elsewhere.text
        # Stored once, however many assignments name it.
        assert [p.name for p in (stack.tmp / "evidence").rglob("*") if p.is_file()] == [sha(PDF)]

        r = await c.get(f"{stack.progress_url}/v1/assignments/{own}/evidence/{sha(PDF)}", headers=unit)
        assert r.status_code == 200 and r.content == PDF
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["x-content-type-options"] == "nosniff"
        disposition = r.headers["content-disposition"]
        assert disposition.startswith("attachment;") and f"filename*=UTF-8''{quote(PDF_NAME)}" in disposition

        listed = await c.get(f"{stack.progress_url}/v1/assignments/{own}/evidence", headers=stack.headers("auditor"))
        assert [(i["name"], i["sha256"]) for i in listed.json()["items"]] == [(PDF_NAME, sha(PDF))]
        missing = await c.get(f"{stack.progress_url}/v1/assignments/{own}/evidence/{'0' * 64}", headers=unit)
        assert missing.status_code == 404 and "no evidence file 000000000000" in missing.json()["detail"]


async def test_who_may_read_and_upload(stack: Stack, pid: str) -> None:
    """The unit and its task's lead unit read; another unit is refused in words; only the unit uploads."""
    cooperating = assignment_id(pid, 1, "fgw")  # task 1 is led by jw
    data = PDF + b"fgw"
    p = stack.progress_url
    async with httpx.AsyncClient(timeout=30) as c:
        r = await put(c, p, cooperating, "协办材料.pdf", data, stack.headers("department", "fgw"))
        assert r.status_code == 201, r.text
        url = f"{p}/v1/assignments/{cooperating}/evidence/{sha(data)}"
        refused = await c.get(url, headers=stack.headers("department", "wanzhou"))
        assert refused.status_code == 403
        assert "unit wanzhou may not read unit fgw's assignment" in refused.json()["detail"]
        assert "lead unit" in refused.json()["detail"]
        for role in ("supervisor", "verifier", "auditor"):
            assert (await c.get(url, headers=stack.headers(role))).content == data

        async def lead_reads() -> bytes | None:  # once the read model has the assignment and its lead
            r = await c.get(url, headers=stack.headers("department", "jw"))
            return r.content if r.status_code == 200 else None

        assert await until(lead_reads, "the lead unit reads the cooperating unit's file") == data
        other_unit = await put(c, p, cooperating, "x.pdf", data, stack.headers("department", "yuzhong"))
        assert other_unit.status_code == 403
        supervisor = await put(c, p, cooperating, "x.pdf", data, stack.headers("supervisor"))
        assert supervisor.status_code == 403


async def test_limits_are_told_in_words(stack: Stack, pid: str) -> None:
    aid, unit, p = assignment_id(pid, 2, "wanzhou"), stack.headers("department", "wanzhou"), stack.progress_url
    async with httpx.AsyncClient(timeout=60) as c:
        big = await put(c, p, aid, "扫描件.pdf", PDF + b"\0" * (20 * MIB + 1 - len(PDF)), unit)
        assert big.status_code == 413
        assert big.json()["detail"].startswith("扫描件.pdf is larger than 20 MiB"), big.text
        bigger = await put(c, p, aid, "扫描件.pdf", PDF + b"\0" * 25 * MIB, unit)
        assert bigger.status_code == 413 and "larger than 20 MiB" in bigger.json()["detail"]

        exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(200)
        for name, data in (("报告.pdf", exe), ("图.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>')):
            refused = await put(c, p, aid, name, data, unit)
            assert refused.status_code == 415, refused.text
            detail = refused.json()["detail"]
            assert detail.startswith(f"{name} is not a kind of file accepted as evidence"), detail
            assert "PDF" in detail and "told from the file's content, not from its name" in detail
        listed = await c.get(f"{p}/v1/assignments/{aid}/evidence", headers=unit)
        assert listed.json()["total"] == 0
    assert not list((stack.tmp / "evidence" / "incoming").iterdir()), "a refused upload left its spool"


def invoke(*args: str, env: dict[str, str]) -> Any:
    return runner.invoke(cli, list(args), env=env)


def json_of(output: str) -> Any:
    """The command's JSON, without the log lines of the services running in this process."""
    return json.loads("\n".join(line for line in output.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)))


async def test_a_report_names_only_uploaded_evidence(stack: Stack, pid: str, tmp_path: Path, nats_url: str) -> None:
    aid, p = assignment_id(pid, 3, "jw"), stack.progress_url
    unit, sup = stack.headers("department", "jw"), stack.headers("supervisor")
    async with httpx.AsyncClient(timeout=30) as c:
        year = (await c.post(f"{p}/v1/assignments/{aid}/accept", headers=unit)).json()["year"]
        plan = {"year": year, "milestones": [{"title": "完成评估", "due": f"{year}-12-20"}], "indicators": []}
        assert (await c.post(f"{p}/v1/assignments/{aid}/plans", json=plan, headers=unit)).status_code == 200
        review = {"decision": "approve", "comment": "同意"}
        assert (await c.post(f"{p}/v1/assignments/{aid}/plans/{year}/review", json=review, headers=sup)).is_success
        report = {"period": f"{year}-Q1", "percent": 40, "narrative": "开展调研",
                  "evidence": [{"name": "统计表.xlsx", "sha256": "ab" * 32, "size": 2048}]}  # fmt: skip
        r = await c.post(f"{p}/v1/assignments/{aid}/reports", json=report, headers=unit)
        assert r.status_code == 422
        assert r.json()["detail"] == (
            f"evidence 统计表.xlsx (abababababab…) was not uploaded for this assignment; "
            f"upload it first with POST /v1/assignments/{aid}/evidence"
        )

    # The CLI uploads first, then reports with the hashes the service answered.
    proof = tmp_path / "验收报告.pdf"
    proof.write_bytes(PDF + b"jw")
    env = {"POLICYFLOW_PROGRESS_URL": p, "POLICYFLOW_TOKEN": stack.headers("department", "jw")["Authorization"][7:]}
    argv = ["report", aid, "--period", f"{year}-Q2", "--percent", "60", "--narrative", "完成评估", "--json"]
    done = await asyncio.to_thread(invoke, *argv, "--evidence", str(proof), env=env)
    assert done.exit_code == 0, done.output
    assert json_of(done.output)["stage"] == "implementing"
    listed = await asyncio.to_thread(invoke, "evidence", "list", aid, "--json", env=env)
    assert [i["sha256"] for i in json_of(listed.output)["items"]] == [sha(PDF + b"jw")]
    saved = tmp_path / "back.pdf"
    got = await asyncio.to_thread(invoke, "evidence", "get", aid, sha(PDF + b"jw"), "-o", str(saved), env=env)
    assert got.exit_code == 0 and saved.read_bytes() == PDF + b"jw", got.output

    # The auditor's export fetches the file; altering it afterwards fails verification, naming it.
    async with running(settings_for(stack.tmp / "audit", nats_url, key_dir=stack.key_dir)) as audit:
        total = (await stack.js.stream_info("POLICYFLOW_EVENTS")).state.messages
        await audit.wait_for_size(total)
        await audit.client.post("/v1/audit/checkpoints", headers=audit.auth(UserRole.SUPERVISOR))
        bundle = tmp_path / "bundle"
        env = {"POLICYFLOW_AUDIT_URL": audit.url, "POLICYFLOW_PROGRESS_URL": p,
               "POLICYFLOW_TOKEN": audit.token(UserRole.AUDITOR)}  # fmt: skip
        exported = await asyncio.to_thread(invoke, "audit", "export", str(bundle), "--evidence", env=env)
        assert exported.exit_code == 0, exported.output
        as_json = await asyncio.to_thread(
            invoke, "audit", "export", str(tmp_path / "b2"), "--evidence", "--json", env=env
        )
        assert as_json.exit_code == 0, as_json.output
        assert json_of(as_json.stdout)["evidence"] == {"exported": 1, "unavailable": []}
    assert "exported 1 evidence files" in exported.output
    assert (bundle / "evidence" / sha(PDF + b"jw")).read_bytes() == PDF + b"jw"
    ok = await asyncio.to_thread(invoke, "audit", "verify", str(bundle), env={})
    assert ok.exit_code == 0 and "1 evidence files match their hashes" in ok.output, ok.output
    (bundle / "evidence" / sha(PDF + b"jw")).write_bytes(PDF + b"JW")
    bad = await asyncio.to_thread(invoke, "audit", "verify", str(bundle), env={})
    assert bad.exit_code == 1
    assert f"TAMPERED: evidence 验收报告.pdf ({sha(PDF + b'jw')}) was altered" in bad.output, bad.output
    (bundle / "evidence" / sha(PDF + b"jw")).unlink()
    gone = await asyncio.to_thread(invoke, "audit", "verify", str(bundle), env={})
    assert gone.exit_code == 1 and "is missing from the bundle" in gone.output


@asynccontextmanager
async def another_progress(stack: Stack, var: Path, servers: tuple[str, str], **settings: Any) -> AsyncIterator[str]:
    """A second progress service on its own database and directory (its own read-model consumer)."""
    s = ProgressSettings(
        nats_url=servers[0],
        temporal_address=servers[1],
        task_queue=stack.task_queue,
        key_dir=stack.key_dir,
        var_dir=var,
        database_url=sqlite_url(var / "progress.sqlite"),
        assignment_url=stack.assignment_url,
        read_model_durable=f"rm-evidence-{uuid.uuid4().hex[:8]}",
        **settings,
    )
    async with serve(progress_app(s)) as url:
        yield url


@pytest.fixture
def servers(nats_url: str, temporal_address: str) -> tuple[str, str]:
    return nats_url, temporal_address


async def test_a_file_is_kept_across_a_restart(
    stack: Stack, pid: str, tmp_path: Path, servers: tuple[str, str]
) -> None:
    aid, unit = assignment_id(pid, 1, "yuzhong"), stack.headers("department", "yuzhong")
    async with httpx.AsyncClient(timeout=30) as c:
        async with another_progress(stack, tmp_path, servers) as url:
            assert (await put(c, url, aid, "a.pdf", PDF + b"restart", unit)).status_code == 201
        async with another_progress(stack, tmp_path, servers) as url:
            r = await c.get(f"{url}/v1/assignments/{aid}/evidence/{sha(PDF + b'restart')}", headers=unit)
            assert r.status_code == 200 and r.content == PDF + b"restart"
            assert (await put(c, url, aid, "a.pdf", PDF + b"restart", unit)).status_code == 200


async def test_the_s3_compatible_store(
    stack: Stack, pid: str, tmp_path: Path, servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        monkeypatch.setenv(name, value)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="evidence")
        aid, unit = assignment_id(pid, 2, "yuzhong"), stack.headers("department", "yuzhong")
        data = PDF + b"s3"
        settings = {"evidence_s3_bucket": "evidence", "evidence_s3_endpoint_url": endpoint}
        async with httpx.AsyncClient(timeout=30) as c, another_progress(stack, tmp_path, servers, **settings) as url:
            assert (await put(c, url, aid, "s3.pdf", data, unit)).status_code == 201
            assert (await put(c, url, aid, "s3.pdf", data, unit)).status_code == 200
            r = await c.get(f"{url}/v1/assignments/{aid}/evidence/{sha(data)}", headers=unit)
            assert r.status_code == 200 and r.content == data
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="evidence")["Contents"]]
        assert keys == [f"evidence/{sha(data)}"]
        assert s3.get_object(Bucket="evidence", Key=keys[0])["Body"].read() == data
        assert not (tmp_path / "evidence" / sha(data)[:2]).exists()
    finally:
        moto.stop()
