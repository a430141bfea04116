"""Answers computed from the read model, kept until the read model changes.

A status page, or an assignment's detail from the read model, is a function of the read model's
contents only (nothing in an answer depends on the clock), and those are a function of the
projection's stream position (StatusReader). An answer is filed under the position read *before*
it was computed, or in the same statement (a status page), so it is never served after a later
batch; the whole cache is dropped when the position moves. While events stream in it mostly
misses; at rest, a dashboard polled by many supervisors costs one primary-key read instead of a
page query and its JSON.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

# What an entry costs beside its body: the key tuple, its strings, the dict's slot, the bytes
# object's header. Counted so that many small answers (empty pages of made-up filters) stay
# inside the bound too.
ENTRY_OVERHEAD = 512


class AnswerCache:
    """Answers (response bodies) of one read-model position, least recently used out first once
    they weigh more than `max_bytes` (bodies plus ENTRY_OVERHEAD each). One per process."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._version: int | None = None
        self._answers: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, version: int, key: Hashable) -> bytes | None:
        """The answer kept for `key` at `version`; a new version drops every answer kept."""
        if version != self._version:
            self.clear()
            self._version = version
            return None
        body = self._answers.get(key)
        if body is not None:
            self._answers.move_to_end(key)
        return body

    def put(self, version: int, key: Hashable, body: bytes) -> bool:
        """Keep `body`, computed at `version` or later, unless the version has moved on since
        or it alone weighs more than the bound; says whether it was kept."""
        if version != self._version or len(body) + ENTRY_OVERHEAD > self.max_bytes:
            return False
        old = self._answers.pop(key, None)
        if old is not None:
            self._bytes -= len(old) + ENTRY_OVERHEAD
        self._answers[key] = body
        self._bytes += len(body) + ENTRY_OVERHEAD
        while self._bytes > self.max_bytes:
            _, dropped = self._answers.popitem(last=False)
            self._bytes -= len(dropped) + ENTRY_OVERHEAD
        return True

    def clear(self) -> None:
        """Forget every answer and the version."""
        self._answers.clear()
        self._bytes, self._version = 0, None

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def weight(self) -> int:
        return self._bytes
