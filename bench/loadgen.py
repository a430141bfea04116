"""`python -m bench.loadgen [--concurrency N] [--duration S] [--warmup S] [--header K:V] [--client raw|httpx] URL...`

A closed-loop HTTP load generator meant to run in a process of its own: N clients, each with
its own kept-alive connection, sending GET requests back to back, the URLs taken in turn.
Requests finished during the warm-up are not counted. Prints one JSON line:
`{"requests", "errors", "seconds", "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "statuses", "cache", "client"}`
(`cache`: the answers counted by their `Cache-Status`, e.g. `hit`, `fwd=miss`; `none` without one).

The default client speaks HTTP/1.1 over asyncio streams directly. httpx (`--client httpx`) is
kept for comparison only: with 50 requests in flight on one httpx.AsyncClient its connection
pool, not the server, is the bottleneck (on this machine ~80 requests/s against a bare FastAPI
endpoint that answers ~1,400/s to the stream client).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from bench.common import percentile

Send = Callable[[str], Awaitable[tuple[str, str]]]  # (status code, what Cache-Status said)


def cache_of(value: str) -> str:
    """`hit` or `fwd=...` from a Cache-Status value (`policyflow-progress; fwd=miss; stored`)."""
    parts = [p.strip() for p in value.split(";")]
    return parts[1] if len(parts) > 1 else "none"


class StreamConnection:
    """One kept-alive HTTP/1.1 connection; reads Content-Length or chunked bodies."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, url: str) -> tuple[str, str]:
        parts = urlsplit(url)
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(parts.hostname, parts.port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{self.extra}\r\n".encode())
        status = (await self.reader.readline()).split(b" ", 2)
        if len(status) < 2:
            raise ConnectionError("connection closed")
        length, chunked, close, cache = 0, False, False, "none"
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
            elif name == b"cache-status":
                cache = cache_of(value.decode())
        if chunked:
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status[1].decode(), cache

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(
    urls: list[str], concurrency: int, duration: float, warmup: float, headers: dict[str, str], client: str
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    caches: Counter[str] = Counter()
    turn = itertools.cycle(urls)
    measure_from = time.perf_counter() + warmup
    end = measure_from + duration

    async def loop(send: Send, reset: Callable[[], None]) -> None:
        while (now := time.perf_counter()) < end:
            try:
                status, cache = await send(next(turn))
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                status, cache = type(exc).__name__, "none"
                reset()
            if now >= measure_from:
                latencies.append(time.perf_counter() - now)
                statuses[status] += 1
                caches[cache] += 1

    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30.0) as http:

            async def send(url: str) -> tuple[str, str]:
                r = await http.get(url)
                return str(r.status_code), cache_of(r.headers.get("cache-status", ""))

            await asyncio.gather(*(loop(send, lambda: None) for _ in range(concurrency)))
    else:
        conns = [StreamConnection(headers) for _ in range(concurrency)]
        await asyncio.gather(*(loop(c.get, c.close) for c in conns))
        for c in conns:
            c.close()
    seconds = time.perf_counter() - measure_from
    latencies.sort()
    ok = statuses.get("200", 0)
    return {
        "requests": len(latencies),
        "errors": len(latencies) - ok,
        "seconds": round(seconds, 3),
        "rps": round(ok / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round((latencies[-1] if latencies else 0.0) * 1000, 2),
        "statuses": dict(statuses),
        "cache": dict(caches),
        "client": client,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--header", action="append", default=[], help="K:V, repeatable")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    out = asyncio.run(load(args.urls, args.concurrency, args.duration, args.warmup, headers, args.client))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
