"""`python -m services.notify`: the notification service under uvicorn, logging JSON lines."""

from __future__ import annotations

import uvicorn

from services.notify.app import create_app
from services.notify.settings import NotifySettings
from services.shared.logging import configure_logging


def main() -> None:
    settings = NotifySettings()
    configure_logging(json=True, level=settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
