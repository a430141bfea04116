"""`python -m bench [--quick] [--keep] [--db postgres] [NAME ...]`: run benchmarks, write
bench/results/NAME.json (NAME.postgres.json with the services on PostgreSQL), print a table.

`--quick` uses small sizes and few rounds so the whole set finishes in under three minutes;
without it the sizes of issue 7 (1,000,000 ledger events, 130,000 assignments) take much longer.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import time
import traceback
from pathlib import Path
from types import ModuleType

import structlog
from rich.console import Console
from rich.table import Table

from bench.common import RESULTS_DIR, NotAvailable, Result, console, machine, scratch
from bench.context import Context
from bench.pg import BACKENDS
from bench.stack import StackPool, one_line

BENCHMARKS = (
    "dispatch",
    "lifecycle",
    "audit_ingest",
    "replay_verify",
    "status_api",
    "growth",
    "notify",
    "readmodel_lag",
)
ON_REQUEST = ("soak",)  # run only when named: 30 minutes with processes killed (bench/soak.py)


def load(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{name}")


async def run_one(
    name: str, quick: bool, keep: bool, pool: StackPool, options: dict[str, str], smoke: bool = False,
    results_dir: Path = RESULTS_DIR,
) -> Result:  # fmt: skip
    """Run one benchmark; whatever happens, a result (measured, not available, or failed) is written."""
    module = load(name)
    blank = Result(name=name, unit=module.UNIT, target_ratio=module.TARGET_RATIO, quick=quick)
    started = time.monotonic()
    console.rule(f"[bold]{name}[/] ({'quick' if quick else 'full'})")
    with scratch(name, keep) as work_dir:
        try:
            result: Result = await module.run(Context(quick, work_dir, pool, keep, options, smoke, db=pool.db))
        except NotAvailable as exc:
            console.log(f"[yellow]{exc}[/]")
            blank.raw_rate = exc.raw_rate
            blank.extra = {"not_available": str(exc), **exc.extra}
            result = blank
        except Exception as exc:  # noqa: BLE001 - one failed benchmark must not hide the others
            console.log(f"[red]{name} failed: {exc!r}[/]")
            console.log(traceback.format_exc())
            blank.extra = {"error": f"{type(exc).__name__}: {one_line(exc)}"[:2000]}
            result = blank
    result.extra.setdefault("seconds", round(time.monotonic() - started, 1))
    result.extra.setdefault("machine", machine())
    result.extra.setdefault("db", pool.db)
    path = result.write(results_dir, suffix="" if pool.db == "sqlite" else f".{pool.db}")
    console.log(f"wrote {path} in {result.extra['seconds']}s")
    return result


async def run_all(
    names: list[str], quick: bool, keep: bool, options: dict[str, str], db: str = "sqlite"
) -> list[Result]:
    with scratch("run", keep) as root:
        pool = StackPool(root, shared=quick, db=db)
        try:
            return [await run_one(name, quick, keep, pool, options) for name in names]
        finally:
            await pool.close()


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(results: list[Result]) -> Table:
    t = Table(title="policyflow vs raw engines (same run, same servers)")
    for col, justify in (
        ("benchmark", "left"),
        ("unit", "left"),
        ("raw", "right"),
        ("policyflow", "right"),
        ("ratio", "right"),
        ("target", "right"),
        ("status", "left"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    colours = {"met": "green", "missed": "red", "failed": "red", "not available": "yellow", "measured": "cyan"}
    for r in results:
        status = r.status
        note = r.extra.get("not_available") or r.extra.get("error") or r.extra.get("summary") or ""
        t.add_row(
            r.name,
            r.unit,
            fmt(r.raw_rate),
            fmt(r.policyflow_rate),
            fmt(r.ratio, 2),
            "—" if r.target_ratio is None else f">= {r.target_ratio}",
            f"[{colours[status]}]{status}[/] {note}".strip(),
        )
    return t


def quiet_logs() -> None:
    """policyflow code logs with structlog; in a benchmark only warnings are worth printing."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def main() -> int:
    quiet_logs()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds (< 3 minutes in all)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories (servers' state, logs)")
    parser.add_argument("--db", choices=BACKENDS, default="sqlite",
                        help="the services' databases: SQLite files (default) or a fresh PostgreSQL database "
                        "per stack on POLICYFLOW_BENCH_POSTGRES (bench/pg.py)")  # fmt: skip
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="benchmark option, e.g. scales=1,10,100 for growth")  # fmt: skip
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all): {BENCHMARKS}")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in BENCHMARKS + ON_REQUEST]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS + ON_REQUEST)}")
    started = time.monotonic()
    options = dict(o.split("=", 1) for o in args.opt)
    results = asyncio.run(run_all(args.names or list(BENCHMARKS), args.quick, args.keep, options, args.db))
    out = Console(highlight=False, width=160)
    out.print(table(results))
    out.print(f"total {time.monotonic() - started:.0f}s; results in bench/results/")
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
