"""The worker compiles the workflow package once, so the sandbox's per-run imports do not."""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

import workflows.workflows
from workflows.worker import cache_sandbox_bytecode

pytestmark = pytest.mark.unit

SOURCE = Path(workflows.workflows.__file__)


def test_without_written_bytecode_the_sandbox_module_is_loaded_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    assert cache_sandbox_bytecode(tmp_path)
    cached = Path(importlib.util.cache_from_source(str(SOURCE)))
    assert cached.is_relative_to(tmp_path) and cached.is_file()

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled the source again")

    monkeypatch.setattr(SourceFileLoader, "source_to_code", no_compiling)
    code = SourceFileLoader("workflows.workflows", str(SOURCE)).get_code("workflows.workflows")
    assert code is not None and "AssignmentWorkflow" in code.co_names


def test_where_bytecode_is_written_nothing_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    assert not cache_sandbox_bytecode(tmp_path)
    assert sys.pycache_prefix is None and not any(tmp_path.iterdir())
