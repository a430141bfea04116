"""`python -m services.witness` (or `policyflow witness serve`): the witness on WITNESS_HOST/HOST and
WITNESS_PORT, JSON logs."""

from __future__ import annotations

import uvicorn

from services.shared.logging import configure_logging
from services.witness.app import create_app
from services.witness.settings import WitnessSettings


def main() -> None:
    settings = WitnessSettings()
    configure_logging(json=True, level=settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
