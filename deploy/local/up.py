"""`make up`: the whole local stack in the foreground; Ctrl-C stops everything cleanly.

On first start it imports the example programme (examples/cq-2022-79) and dispatches it.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from contracts.base import UserRole
from deploy.local.lock import AlreadyRunning, StackLock
from deploy.local.stack import Stack, StackConfig
from services.shared.auth import issue_token

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cq-2022-79"
console = Console(stderr=True)


def import_example(stack: Stack) -> None:
    from services.assignment.programme_dir import load_programme_dir

    body = load_programme_dir(EXAMPLE)
    token = issue_token(stack.config.var_dir / "keys", UserRole.ADMIN, sub="make-up")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    base = stack.url("assignment")
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
        r = client.post("/v1/programmes", content=body.model_dump_json())
        if r.status_code == 409:  # its division was revised since: the revision stands
            console.print(f"programme {body.programme_id}: revised since its import; kept as revised")
        else:
            r.raise_for_status()
            state = "imported" if r.json().get("imported") else "already imported"
            console.print(f"programme {body.programme_id}: {state}")
        path = f"/v1/programmes/{body.programme_id}/dispatch"
        r = client.post(path, params={"wait": "false"})
        r.raise_for_status()
        status = r.json()
        columns = (TextColumn("dispatching the example programme"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("dispatch", total=status["total"])
            while status["state"] == "running":
                bar.update(task, completed=status["started"] + status["skipped"] + status["failed"])
                time.sleep(0.5)
                r = client.get(path)
                r.raise_for_status()
                status = r.json()
        console.print(status["message"])


def where(stack: Stack) -> Table:
    table = Table(title="policyflow is up")
    table.add_column("what")
    table.add_column("where")
    table.add_row("NATS (JetStream)", stack.nats_url)
    table.add_row("Temporal", stack.temporal_address)
    if not stack.config.temporal_address and not stack.config.headless:
        table.add_row("Temporal UI", f"http://127.0.0.1:{stack.config.temporal_ui_port}")
    for name in ("assignment", "progress", "audit"):
        table.add_row(f"{name} service", stack.url(name))
    table.add_row("notification service (e-mail, webhooks)", stack.url("notify"))
    if stack.witness_key is not None:
        table.add_row("witness (cosigns the audit checkpoints)", stack.witness_url)
        table.add_row("witness verifier key", stack.witness_key)
    if stack.mail_dir is not None:
        table.add_row("e-mails it would have sent (SMTP sink)", f"{stack.mail_dir}/*.eml")
    table.add_row("dashboard", stack.url("progress") + "/dashboard")
    table.add_row("workbench (units)", stack.url("progress") + "/workbench")
    table.add_row("state and logs", str(stack.config.var_dir))
    return table


def main() -> int:
    config = StackConfig.from_env()
    try:
        lock = StackLock.acquire(config.var_dir)
    except AlreadyRunning as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    try:
        return run(Stack(config))
    finally:
        lock.release()


def run(stack: Stack) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        console.print("starting NATS and Temporal...")
        stack.start_servers()
        console.print("starting the worker and the services...")
        stack.start_processes()
        import_example(stack)
        console.print(where(stack))
        console.print("token for a supervisor: [bold]policyflow token issue --role supervisor[/bold]")
        console.print(
            "an account for the pages (prints its password once): "
            "[bold]policyflow users add NAME --role supervisor[/bold] (or --role department --unit UNIT)"
        )
        console.print("Ctrl-C stops everything.")
        checked = time.monotonic()
        while not stop.wait(1.0):
            if time.monotonic() - checked >= 5.0:
                checked = time.monotonic()
                if stack.restart_nats_if_store_failed():
                    console.print(
                        "[yellow]nats-server restarted: its store had failed (see var/nats/nats.log)[/yellow]"
                    )
            for proc in stack.processes:
                if proc.proc and proc.proc.poll() is not None:
                    console.print(f"[red]{proc.name} exited ({proc.proc.returncode}); see {proc.log_path}[/red]")
                    return 1
        return 0
    except Exception as exc:  # noqa: BLE001 - one clear line, logs hold the rest
        console.print(f"[red]policyflow could not start: {exc}[/red]")
        return 1
    finally:
        console.print("stopping...")
        stack.stop()
        console.print("stopped.")


if __name__ == "__main__":
    sys.exit(main())
