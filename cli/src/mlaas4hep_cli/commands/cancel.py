"""`mlaas4hep cancel JOB`: stop a queued or running job."""

from __future__ import annotations

import json

from rich.console import Console

from mlaas4hep_cli import contexts
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, CaBundle, Deployment, Insecure, Server, Token

console = Console()


def cancel(
    job_id: str,
    server: Server = None,
    deployment: Deployment = None,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Cancel a queued or running job.

    Example: mlaas4hep cancel 3f2a9c --server https://mlaas.example.org:4433 -a infn-cloud
    """
    with (
        user_errors(),
        contexts.workflow_api(deployment, server, token, account, ca_bundle, insecure) as service,
    ):
        job = service.json("POST", f"/jobs/{job_id}/cancel")
    if as_json:
        print(json.dumps(job))
        return
    stopping = job.get("cancel_requested") and job["state"] == "RUNNING"
    console.print(f"job {job_id}: {job['state']}" + (" (stopping)" if stopping else ""))
