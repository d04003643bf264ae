"""`mlaas4hep logs JOB`: print or follow a job's log."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mlaas4hep_cli import contexts
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, CaBundle, Deployment, Insecure, Server, Token


def logs(
    job_id: str,
    server: Server = None,
    deployment: Deployment = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming")] = False,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
) -> None:
    """Print (or follow) a job's log.

    Example: mlaas4hep logs 3f2a9c --follow --server https://mlaas.example.org:4433
    """
    with (
        user_errors(),
        contexts.workflow_api(deployment, server, token, account, ca_bundle, insecure) as service,
        service.stream(f"/jobs/{job_id}/logs", params={"follow": follow}, timeout=None) as answer,
    ):
        for block in answer.iter_bytes():
            sys.stdout.buffer.write(block)
            sys.stdout.flush()
