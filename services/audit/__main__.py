"""`python -m services.audit`: the audit service on AUDIT_HOST/HOST and AUDIT_PORT, JSON logs."""

from __future__ import annotations

import uvicorn

from services.audit.app import create_app
from services.audit.settings import AuditSettings
from services.shared.logging import configure_logging


def main() -> None:
    settings = AuditSettings()
    configure_logging(json=True, level=settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
