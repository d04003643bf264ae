"""`mlaas4hep jobs`: your workflow runs on a MLaaS4HEP server."""

from __future__ import annotations

import json

from rich.console import Console

from mlaas4hep_cli import contexts
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, CaBundle, Deployment, Insecure, Server, Token
from mlaas4hep_cli.views import jobs_table

console = Console()


def jobs(
    server: Server = None,
    deployment: Deployment = None,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """List your jobs.

    Example: mlaas4hep jobs -d local-demo
    """
    with (
        user_errors(),
        contexts.workflow_api(deployment, server, token, account, ca_bundle, insecure) as service,
    ):
        listing = service.json("GET", "/jobs")
    if as_json:
        print(json.dumps(listing))
    else:
        console.print(jobs_table(listing))
