"""`mlaas4hep scale ID --workers N`: change the number of worker VMs of a cluster."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli import operations
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, DeploymentId
from mlaas4hep_cli.views import workers_table

console = Console()


def scale(
    deployment: DeploymentId,
    workers: Annotated[
        int, typer.Option("--workers", "-n", help="worker VMs the cluster should have")
    ],
    account: Account = None,
    as_json: AsJson = False,
) -> None:
    """Change the number of Dask worker VMs of a cluster (created with vm.workers.count > 0).

    Example: mlaas4hep scale local-demo --workers 3
    """
    with user_errors():
        state = operations.scale(deployment, workers, account)
    if as_json:
        print(json.dumps(state.to_json()))
        return
    console.print(
        f"deployment [bold]{state.id}[/]: {workers} worker(s) asked for, "
        f"now {state.phase.value} ({state.status})"
    )
    if "workers" in state.details:
        console.print(workers_table(state.details["workers"]))
