"""The committed API documents under docs/ are what the code generates: regenerate in memory, compare.

When this fails, the code changed an API or an event: run `make docs` and commit docs/.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from contracts.events import FACT_TYPES
from services.cli.docs_cmd import documents
from services.notify.asyncapi import asyncapi_document

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return documents()


def test_the_expected_documents_are_generated(generated: dict[str, str]) -> None:
    assert sorted(generated) == [
        "asyncapi.json",
        "openapi/assignment.json",
        "openapi/audit.json",
        "openapi/notify.json",
        "openapi/progress.json",
        "openapi/witness.json",
    ]


@pytest.mark.parametrize(
    "rel",
    [
        "openapi/assignment.json",
        "openapi/progress.json",
        "openapi/audit.json",
        "openapi/notify.json",
        "openapi/witness.json",
        "asyncapi.json",
    ],
)
def test_committed_document_matches_the_code(generated: dict[str, str], rel: str) -> None:
    path = DOCS / rel
    assert path.exists(), f"{path} is missing: run `make docs` (policyflow docs export docs) and commit it"
    committed = path.read_text(encoding="utf-8")
    if committed != generated[rel]:
        diff = difflib.unified_diff(
            committed.splitlines(), generated[rel].splitlines(), f"committed {rel}", f"generated {rel}", lineterm=""
        )
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"docs/{rel} drifted from the code; run `make docs` and commit.\n{shown}")


def test_generation_is_deterministic(generated: dict[str, str]) -> None:
    assert documents() == generated


def _load(generated: dict[str, str], rel: str) -> dict[str, Any]:
    return dict(json.loads(generated[rel]))


def test_openapi_documents_cover_each_service(generated: dict[str, str]) -> None:
    progress = _load(generated, "openapi/progress.json")["paths"]
    assert {"/v1/status", "/v1/assignments/{assignment_id}/plans", "/v1/admin/rebuild-read-models"} <= set(progress)
    assert not any(p.startswith("/dashboard") for p in progress)  # HTML pages are not API
    assignment = _load(generated, "openapi/assignment.json")["paths"]
    assert {"/v1/programmes", "/v1/programmes/{programme_id}/dispatch", "/v1/units"} <= set(assignment)
    audit = _load(generated, "openapi/audit.json")["paths"]
    assert "/v1/audit/assignments/{assignment_id}/history" in audit
    notify = _load(generated, "openapi/notify.json")["paths"]
    assert {"/v1/units/{unit_id}/subscriptions", "/v1/notifications/failed"} <= set(notify)


def test_asyncapi_has_a_channel_and_message_per_fact() -> None:
    doc = asyncapi_document()
    assert doc["asyncapi"] == "3.0.0"
    for type_ in FACT_TYPES:
        channel = doc["channels"][type_]
        assert channel["address"] == f"pf.events.{{programme}}.{{unit}}.{type_}"
        assert set(channel["parameters"]) == {"programme", "unit"}
        assert doc["operations"][type_]["action"] == "send"
        schema = doc["components"]["schemas"][f"{type_}Event"]
        assert schema["properties"]["type"]["const"] == type_
        assert schema["properties"]["payload"] == {"$ref": f"#/components/schemas/{type_}"}
    receivers = {name for name, op in doc["operations"].items() if op["action"] == "receive"}
    assert receivers == {"audit-ledger", "progress-read-models", "assignment-inbox", "notify-deliveries"}
    notify = doc["channels"]["notify-deliveries"]
    assert notify["address"] == "pf.events.>" and "notification service" in notify["description"]
