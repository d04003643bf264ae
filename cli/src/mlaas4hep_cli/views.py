"""How the operator CLI shows deployments and jobs on a terminal (Rich tables)."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.table import Table

from mlaas4hep_cli.client import outcome
from mlaas4hep_cli.targets import DeploymentState, Phase

PHASE_COLOURS = {Phase.READY: "green", Phase.FAILED: "red", Phase.CREATING: "cyan"}
JOB_COLOURS = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan"}


def shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def state_table(state: DeploymentState, started: float) -> Table:
    table = Table(show_header=False, title=f"deployment {state.id}", title_justify="left")
    colour = PHASE_COLOURS.get(state.phase, "yellow")
    table.add_row("state", f"[{colour}]{state.phase.value}[/] ({state.status})")
    if state.reason:
        table.add_row("reason", state.reason)
    table.add_row("elapsed", f"{time.time() - started:.0f} s")
    if "workers" in state.details:
        workers = state.details["workers"]
        listed = ", ".join(f"{vm['id']} ({vm['state']})" for vm in workers)
        table.add_row("workers", f"{len(workers)}" + (f": {listed}" if listed else ""))
    for key, value in state.outputs.items():
        table.add_row(key, shown(value))
    return table


def workers_table(workers: list[dict[str, Any]]) -> Table:
    """A cluster's worker VMs: IM's VM id, state and private address."""
    table = Table("worker VM", "state", "address", title=f"{len(workers)} worker(s)")
    for vm in workers:
        table.add_row(str(vm["id"]), str(vm["state"]), str(vm.get("address") or "-"))
    return table


def outputs_table(outputs: dict[str, Any]) -> Table:
    table = Table("output", "value")
    for key, value in outputs.items():
        table.add_row(key, shown(value))
    return table


def deployments_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "target", "state", "created")
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            row["target"],
            row["phase"],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created"])),
        )
    return table


def age(seconds: float | None) -> str:
    if not seconds:
        return "-"
    delta = int(time.time() - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{delta // size}{unit} ago"
    return f"{delta}s ago"


def jobs_table(listing: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "state", "created", "runtime", "result")
    for job in listing:
        runtime = "-"
        if job.get("started"):
            runtime = f"{(job.get('finished') or time.time()) - job['started']:.0f} s"
        colour = JOB_COLOURS.get(job["state"], "white")
        table.add_row(
            job["id"],
            job["name"],
            f"[{colour}]{job['state']}[/]",
            age(job["created"]),
            runtime,
            outcome(job)[:60],
        )
    return table


def models_table(listing: list[dict[str, Any]]) -> Table:
    table = Table("name", "format", "framework", "task", "inputs", "description")
    for params in listing:
        task = params.get("task") or {}
        table.add_row(
            params.get("name", "?"),
            params.get("format") or "-",
            params.get("framework") or "-",
            task.get("kind", "-") if isinstance(task, dict) else "-",
            str(params.get("n_inputs") or "-"),
            (params.get("description") or "")[:50],
        )
    return table
