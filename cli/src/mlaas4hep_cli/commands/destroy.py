"""`mlaas4hep destroy ID`: delete a deployment and everything it created."""

from __future__ import annotations

import json

from rich.console import Console

from mlaas4hep_cli import operations
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, DeploymentId

console = Console()


def destroy(deployment: DeploymentId, account: Account = None, as_json: AsJson = False) -> None:
    """Delete a deployment and everything it created (safe to repeat).

    Example: mlaas4hep destroy local-demo
    """
    with user_errors():
        destroyed, note = operations.destroy(deployment, account)
    if as_json:
        print(json.dumps({"id": destroyed, "destroyed": True, **({"note": note} if note else {})}))
    else:
        console.print(note or f"deployment {destroyed} destroyed")
