"""`mlaas4hep login ID [VM]`: SSH to a deployment's VM (like `dodas login`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlaas4hep_cli import operations
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import DeploymentId
from mlaas4hep_cli.registry import Registry
from mlaas4hep_cli.remote import login as ssh_login


def login(
    deployment: DeploymentId,
    vm: Annotated[int, typer.Argument(help="VM number (IM deployments)")] = 0,
    key: Annotated[Optional[Path], typer.Option("--key", "-i", help="private key")] = None,  # noqa: UP045
    user: Annotated[Optional[str], typer.Option(help="login user")] = None,  # noqa: UP045
    command: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--command", "-c", help="run this instead of a shell"),
    ] = None,
) -> None:
    """Log in to a deployment's VM over SSH (like `dodas login`).

    Example: mlaas4hep login my-cluster 1 -i ~/.ssh/id_ed25519
    """
    with user_errors():
        endpoint = operations.ssh_endpoint(Registry().find(deployment), vm, key, user)
    raise typer.Exit(ssh_login(endpoint, command.split() if command else None))
