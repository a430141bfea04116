"""The one error the command line reports: what the service (or the way to it) answered."""

from __future__ import annotations


class ApiError(Exception):
    """One clear line: the status (0 when the service could not be reached) and the service's reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}" if status else detail)
        self.status = status
        self.detail = detail
