"""`python -m services.assignment`: the assignment service under uvicorn, logging JSON lines."""

from __future__ import annotations

import uvicorn

from services.assignment.app import create_app
from services.assignment.settings import AssignmentSettings
from services.shared.logging import configure_logging


def main() -> None:
    settings = AssignmentSettings()
    configure_logging(json=True, level=settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
