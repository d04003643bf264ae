"""`mlaas4hep outputs ID`: a ready deployment's outputs."""

from __future__ import annotations

import json

from rich.console import Console

from mlaas4hep_cli import operations
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, DeploymentId
from mlaas4hep_cli.registry import Registry
from mlaas4hep_cli.views import outputs_table

console = Console()


def outputs(deployment: DeploymentId, account: Account = None, as_json: AsJson = False) -> None:
    """The deployment's outputs: VM address, service endpoints, credentials.

    Example: mlaas4hep outputs local-demo --json
    """
    with user_errors():
        values = operations.outputs(Registry().find(deployment), account)
    if as_json:
        print(json.dumps(values))
    else:
        console.print(outputs_table(values))
