"""`mlaas4hep list`: your deployments with their current state."""

from __future__ import annotations

import json

from rich.console import Console

from mlaas4hep_cli import operations
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson
from mlaas4hep_cli.views import deployments_table

console = Console()


def list_deployments(account: Account = None, as_json: AsJson = False) -> None:
    """Your deployments, with their current state.

    Example: mlaas4hep list --json
    """
    with user_errors():
        rows = operations.list_states(account)
    if as_json:
        print(json.dumps(rows))
    else:
        console.print(deployments_table(rows))
