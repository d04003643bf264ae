"""`mlaas4hep results JOB`: download a finished job's run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli import client, contexts
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, CaBundle, Deployment, Insecure, Server, Token

console = Console()


def results(
    job_id: str,
    server: Server = None,
    deployment: Deployment = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="where to unpack")] = Path(),
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Download a finished job's run folder (model, metrics, plots, bundle).

    Example: mlaas4hep results 3f2a9c -o runs --server https://mlaas.example.org:4433
    """
    with (
        user_errors(),
        contexts.workflow_api(deployment, server, token, account, ca_bundle, insecure) as service,
    ):
        folders = [str(folder) for folder in client.unpack_results(service, job_id, output)]
    if as_json:
        print(json.dumps({"job_id": job_id, "folders": folders}))
    else:
        console.print(f"results of {job_id} in {', '.join(folders)}")
