"""`mlaas4hep init`: write a commented starter deployment configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli.config import load_config
from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.starter import STARTER

console = Console()


def init(
    path: Annotated[Path, typer.Argument(help="file to write")] = Path("mlaas4hep.yaml"),
    target: Annotated[str, typer.Option(help="local, orchestrator or im")] = "local",
    issuer: Annotated[str, typer.Option(help="OIDC issuer")] = "https://iam.cloud.infn.it/",
    client_id: Annotated[str, typer.Option(help="OIDC client id")] = "mlaas4hep",
    ssh_key: Annotated[str, typer.Option(help="public key file")] = "~/.ssh/id_ed25519.pub",
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a commented starter configuration.

    Example: mlaas4hep init mlaas4hep.yaml --target orchestrator --client-id mlaas4hep
    """
    with user_errors():
        if path.exists() and not force:
            raise CliError(f"{path} exists; use --force to overwrite it")
        text = STARTER.format(
            name="mlaas4hep", target=target, issuer=issuer, client_id=client_id, ssh_key=ssh_key
        )
        path.write_text(text)
        load_config(path)  # the starter must always be valid
    console.print(f"wrote {path}: edit it, then `mlaas4hep validate --config {path}`")
