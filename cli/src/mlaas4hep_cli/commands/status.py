"""`mlaas4hep status ID`: a deployment's state (live with --watch)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from mlaas4hep_cli import operations
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, DeploymentId
from mlaas4hep_cli.registry import Registry
from mlaas4hep_cli.views import state_table

console = Console()


def status(
    deployment: DeploymentId,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="follow until a final state")
    ] = False,
    log: Annotated[bool, typer.Option(help="print the deployment's log too")] = False,
    account: Account = None,
    as_json: AsJson = False,
) -> None:
    """Show a deployment's state (live with --watch).

    Example: mlaas4hep status local-demo --watch
    """
    with user_errors():
        record = Registry().find(deployment)
        if watch and not as_json:
            began = time.time()
            with Live(console=console, auto_refresh=False) as live:
                state = operations.follow(
                    record,
                    account,
                    3600,
                    lambda s: live.update(state_table(s, began), refresh=True),
                )
        elif watch:
            state = operations.follow(record, account, 3600)
        else:
            state = operations.current_state(record, account)
        text = operations.deployment_log(record, account) if log else ""
    if as_json:
        print(json.dumps({**state.to_json(), **({"log": text} if log else {})}))
        return
    if not watch:
        console.print(state_table(state, record.created))
    if text:
        console.print(text, highlight=False, markup=False)
