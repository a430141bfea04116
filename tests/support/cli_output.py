"""What a CLI command printed, apart from the log lines of the services running in the same process
(their structlog lines share the captured stdout under CliRunner)."""

from __future__ import annotations

import json
import re
from typing import Any

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def without_logs(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not LOG_LINE.match(line))


def json_answer(text: str) -> Any:
    """The one JSON document a `--json` command printed."""
    return json.loads(without_logs(text))
