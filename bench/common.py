"""Shared benchmark plumbing: results, timing, interleaving, memory, and the servers each run starts.

Every benchmark measures the raw engine and the policyflow path in the same run, alternating
rounds (raw, policyflow, policyflow, raw, ...) so that noise from other work on the machine
falls on both halves alike, and reports the median of each half's rounds.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]
console = Console(stderr=True, highlight=False)  # progress; the final table goes to stdout


class NotAvailable(Exception):
    """A part the policyflow half needs has not landed: the benchmark says what, measures nothing fake.

    The raw half may still have been measured: it travels along in `raw_rate` and `extra`.
    """

    def __init__(self, message: str, raw_rate: float | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.raw_rate = raw_rate
        self.extra = extra or {}


@dataclass
class Result:
    name: str
    unit: str
    target_ratio: float | None
    quick: bool
    raw_rate: float | None = None
    policyflow_rate: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.raw_rate and self.policyflow_rate is not None:
            return self.policyflow_rate / self.raw_rate
        return None

    @property
    def status(self) -> str:
        if "not_available" in self.extra:
            return "not available"
        if "error" in self.extra:
            return "failed"
        if self.ratio is None or self.target_ratio is None:
            return "measured"
        return "met" if self.ratio >= self.target_ratio else "missed"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "raw_rate": _round(self.raw_rate),
            "policyflow_rate": _round(self.policyflow_rate),
            "unit": self.unit,
            "ratio": _round(self.ratio, 4),
            "target_ratio": self.target_ratio,
            "quick": self.quick,
            "extra": self.extra,
        }

    def write(self, directory: Path = RESULTS_DIR, suffix: str = "") -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}{suffix}.json"
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return path


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def require_modules(*modules: str) -> None:
    """Raise NotAvailable naming every module of the policyflow half that does not exist yet."""
    missing = missing_modules(*modules)
    if missing:
        raise NotAvailable("not available: " + ", ".join(missing) + " not landed")


def missing_modules(*modules: str) -> list[str]:
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


# --- timing ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[k])


async def interleaved(
    rounds: int,
    raw: Callable[[int], Awaitable[float]],
    policyflow: Callable[[int], Awaitable[float]],
) -> tuple[list[float], list[float]]:
    """Run `rounds` of each half in ABBA order; each call gets its round number and returns a rate."""
    raw_rates: list[float] = []
    pf_rates: list[float] = []
    for i in range(rounds):
        halves = [("raw", raw, raw_rates), ("policyflow", policyflow, pf_rates)]
        if i % 2:
            halves.reverse()
        for label, run, out in halves:
            rate = await run(i)
            out.append(rate)
            console.log(f"  round {i + 1}/{rounds} {label}: {rate:,.1f}")
    return raw_rates, pf_rates


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {"rounds": [round(v, 2) for v in values], "min": round(min(values), 2), "max": round(max(values), 2)}


# --- memory ------------------------------------------------------------------------------


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak resident) of a process in MiB, from /proc/<pid>/status."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[{"VmRSS": "rss_mib", "VmHWM": "hwm_mib"}[key]] = round(int(value.split()[0]) / 1024, 1)
    except FileNotFoundError:
        pass
    return out


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a service's worker processes), from /proc/<pid>/task/*/children."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with suppress(FileNotFoundError, ValueError):  # the process or task ended meanwhile
                todo.extend(int(c) for c in task.read_text().split())
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds used by a process and its live descendants (exited ones are not counted)."""
    return sum(proc_cpu(p) for p in process_tree(pid))


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 3) for k in after}


# --- machine -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": mem_gib, "python": platform.python_version()}


# --- scratch directories and child processes ---------------------------------------------


@contextmanager
def scratch(name: str, keep: bool = False) -> Iterator[Path]:
    """A fresh directory for one benchmark's servers and databases, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"pf-bench-{name}-"))
    try:
        yield path
    finally:
        if keep:
            console.log(f"  kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


@dataclass
class Child:
    """A Python child process (`python -m MODULE ...`) with its log, stopped with SIGTERM."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """Stop with `sig` (SIGINT lets a process under cProfile write its stats), then kill."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def python_child(name: str, module: str, args: Sequence[str], log_dir: Path, **env: str) -> Child:
    return Child(name, [sys.executable, "-m", module, *args], log_dir / f"{name}.log", child_env(**env))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def gather_limited(limit: int, jobs: Sequence[Any]) -> list[Any]:
    """Await coroutines with at most `limit` in flight."""
    sem = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with sem:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))
