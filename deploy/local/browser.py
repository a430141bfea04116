"""Debian's Chromium for the browser tests and the README's screenshots: where it is, and why not.

No browser is ever downloaded: POLICYFLOW_CHROMIUM, else /usr/bin/chromium (`apt-get install
chromium`, which .ci/run does), else `chromium` on PATH. Playwright drives it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import ViewportSize

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 375, "height": 812}


def chromium_path() -> str | None:
    configured = os.environ.get("POLICYFLOW_CHROMIUM")
    candidates = [configured] if configured else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def why_not() -> str | None:
    if chromium_path() is None:
        where = os.environ.get("POLICYFLOW_CHROMIUM") or "/usr/bin/chromium"
        return (
            f"no Chromium at {where}: install Debian's browser with `sudo apt-get install chromium` "
            "(this test never downloads a browser)"
        )
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing: `uv sync` installs the dev dependencies"
    return None


def artefacts() -> Path:
    """Where screenshots are kept (POLICYFLOW_ARTEFACTS, else the temporary directory)."""
    path = Path(os.environ.get("POLICYFLOW_ARTEFACTS") or Path(tempfile.gettempdir()) / "policyflow-artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


CHROMIUM = chromium_path() or "/usr/bin/chromium"
