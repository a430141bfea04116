"""Validation errors in plain words: no regular expression, no pydantic jargon, every pattern described."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import contracts
from contracts import labels
from contracts.api import PlanBody, ReportBody, ReviewBody, VerificationBody
from services.shared.plain_errors import plain, summary

JARGON = ("Input should", "String should", "List should", "pattern", "^", "$", "\\d", "Value error", "Body", "model")


def _patterns(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            yield schema["pattern"]
        for value in schema.values():
            yield from _patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _patterns(value)


def contract_models() -> Iterator[type[BaseModel]]:
    for info in pkgutil.iter_modules(contracts.__path__):
        module = importlib.import_module(f"contracts.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseModel)
                and obj.__module__ == module.__name__
                and not obj.__pydantic_generic_metadata__["parameters"]
            ):
                yield obj


def test_every_pattern_in_contracts_has_words_and_an_example() -> None:
    found = {p for model in contract_models() for p in _patterns(model.model_json_schema())}
    assert len(found) >= 4  # period, programme id, unit id, sha256
    assert found <= set(labels.PATTERNS), found - set(labels.PATTERNS)
    for regex in found:
        zh, en = labels.pattern(regex, "zh"), labels.pattern(regex, "en")
        assert regex not in en and "\\" not in en and "[" not in en
        assert any(ch.isdigit() for ch in en) and zh


def errors_of(model: type[BaseModel], body: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {e["field"]: e["message"] for e in plain(list(caught.value.errors()))}


def test_a_report_refused_in_plain_words() -> None:
    said = errors_of(
        ReportBody,
        {
            "period": "2026-Q5",
            "percent": 150,
            "narrative": "",
            "indicator_values": [{"name": "惠及居民", "value": "三千"}],
            "evidence": [{"name": "x.pdf", "sha256": "xyz", "size": 1}],
            "unexpected": 1,
        },
    )
    assert said == {
        "period": "must look like 2026-Q4 (a year and its quarter, Q1 to Q4)",
        "percent": "must be at most 100",
        "narrative": "must not be empty",
        "indicator_values.0.value": "must be a number",
        "evidence.0.sha256": "must be a file's SHA-256: 64 characters 0-9 and a-f, as `sha256sum` prints it",
        "unexpected": "is not a field this request takes (check its spelling, or leave it out)",
    }


def test_plans_reviews_and_verdicts_refused_in_plain_words() -> None:
    assert errors_of(PlanBody, {"year": "next", "milestones": []}) == {
        "year": "must be a whole number",
        "milestones": "must have at least one entry",
    }
    said = errors_of(PlanBody, {"year": 2026.5, "milestones": [{"title": "评估", "due": "2026-13-01"}]})
    assert said == {"year": "must be a whole number", "milestones.0.due": "must be a date like 2026-06-30"}
    assert errors_of(ReviewBody, {"decision": "maybe"}) == {"decision": "must be one of: approve or return"}
    assert errors_of(VerificationBody, {"decision": "pass", "score": -1}) == {"score": "must be at least 0"}
    assert errors_of(ReviewBody, "approve") == {"body": "must be a JSON object, like {...}"}
    assert errors_of(ReviewBody, {}) == {"decision": "is required"}


def test_no_message_carries_jargon() -> None:
    bodies: list[tuple[type[BaseModel], Any]] = [
        (ReportBody, {"period": 3, "percent": "x", "narrative": None, "evidence": "all", "indicator_values": [{}]}),
        (PlanBody, {"year": None, "milestones": "x", "indicators": [{"name": "n", "target": "inf"}]}),
        (VerificationBody, {"decision": True, "score": "NaN"}),
    ]
    for model, body in bodies:
        for field, message in errors_of(model, body).items():
            assert not any(word in message for word in JARGON), (field, message)


def test_the_detail_reads_field_then_words_and_counts_the_rest() -> None:
    errors = [{"field": f"f{i}", "message": "is required"} for i in range(5)]
    assert summary(errors) == "f0 is required; f1 is required; f2 is required (and 2 more: see errors)"
    assert summary(errors[:1]) == "f0 is required"
