"""`python -m services.notify.sink`: the embedded default's SMTP server. It sends nothing on: each
message is kept as a file under NOTIFY_MAIL_DIR (var/mail), for a person to read what would have
been sent. Listens on SMTP_HOST:SMTP_PORT (127.0.0.1:8025), as the notifier's defaults expect."""

from __future__ import annotations

import datetime as dt
import re
import signal
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from services.notify.settings import NotifySettings


class MailDir:
    """Writes each message to `<dir>/<UTC time>-<delivery id>.eml`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else str(data).encode()
        found = re.search(rb"^Message-ID:\s*<([^>@]+)", raw, re.MULTILINE | re.IGNORECASE)
        key = re.sub(r"[^A-Za-z0-9_-]", "_", found.group(1).decode()) if found else "message"
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        (self.directory / f"{stamp}-{key}.eml").write_bytes(raw)
        return "250 kept"


def main() -> None:
    settings = NotifySettings()
    directory = settings.mail_path()
    controller = Controller(MailDir(directory), hostname=settings.smtp_host, port=settings.smtp_port)
    controller.start()
    print(f"SMTP sink on {settings.smtp_host}:{settings.smtp_port}, keeping messages in {directory}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
