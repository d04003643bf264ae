"""`mlaas4hep create`: deploy the stack (like `dodas create template.yml`)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.live import Live

from mlaas4hep_cli import operations
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import (
    Account,
    AsJson,
    ConfigFile,
    Overrides,
    ProfileName,
    Source,
    with_source,
)
from mlaas4hep_cli.targets import Phase
from mlaas4hep_cli.views import state_table

console = Console()


def create(
    config_path: ConfigFile = None,
    overrides: Overrides = None,
    source: Source = None,
    target: Annotated[Optional[str], typer.Option(help="local, orchestrator or im")] = None,  # noqa: UP045
    wait: Annotated[bool, typer.Option(help="follow the deployment until it is ready")] = True,
    timeout: Annotated[int, typer.Option(help="seconds to wait")] = 3600,
    profile_name: ProfileName = None,
    account: Account = None,
    as_json: AsJson = False,
) -> None:
    """Deploy the MLaaS4HEP stack (like `dodas create template.yml`).

    Example: mlaas4hep create -c mlaas4hep.yaml -a infn-cloud
    """
    with user_errors():
        extra = [*with_source(overrides, source), *([f"target.kind={target}"] if target else [])]
        config, path = operations.resolve(config_path, extra, profile_name)
        record = operations.create(config, path, profile_name, account)
        if as_json:
            state = (
                operations.follow(record, account, timeout)
                if wait
                else operations.current_state(record, account)
            )
        else:
            console.print(f"deployment [bold]{record.id}[/] ({config.target.kind}) created")
            if wait:
                began = time.time()
                with Live(console=console, auto_refresh=False) as live:
                    state = operations.follow(
                        record,
                        account,
                        timeout,
                        lambda s: live.update(state_table(s, began), refresh=True),
                    )
            else:
                state = operations.current_state(record, account)
    if as_json:
        print(json.dumps(state.to_json()))
    if state.phase is Phase.FAILED:
        raise typer.Exit(1)
