"""What a test needs from the machine: skipped without it, but failed under CI (`CI=true`).

This machine kind provides Chromium (installed by .ci/run), PostgreSQL and Node, so under CI a
test that lacks one of them shows a broken set-up instead of passing by being skipped.
"""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(missing: str | None) -> None:
    """Skip the calling test when `missing` says what it lacks here (None: nothing); under CI, fail."""
    if missing is None:
        return
    if under_ci():
        pytest.fail(f"{missing} (CI=true: this machine kind provides it, so its absence is a failure)", pytrace=False)
    pytest.skip(missing)
