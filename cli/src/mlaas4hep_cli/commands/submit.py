"""`mlaas4hep submit`: a workflow run on a MLaaS4HEP server."""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from mlaas4hep_cli import client, contexts
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.job_requests import submission
from mlaas4hep_cli.options import Account, AsJson, CaBundle, Deployment, Insecure, Server, Token

console = Console()


def said_state(job: dict[str, Any]) -> None:
    console.print(f"{time.strftime('%H:%M:%S')} {job['id']} {job['state']}")


def submit(
    server: Server = None,
    deployment: Deployment = None,
    files: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="files.txt (in the bundle) or a,b list"),
    ] = None,
    labels: Annotated[Optional[str], typer.Option(help="labels.txt, 1,0 list, or a branch")] = None,  # noqa: UP045
    model: Annotated[Optional[str], typer.Option(help="model file or builtin:NAME")] = None,  # noqa: UP045
    params: Annotated[Optional[str], typer.Option(help="params.json")] = None,  # noqa: UP045
    preproc: Annotated[Optional[str], typer.Option(help="preproc.json")] = None,  # noqa: UP045
    bundle: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="folder or tar.gz to upload first; the names above are then inside it"),
    ] = None,
    name: Annotated[Optional[str], typer.Option(help="bundle name on the server")] = None,  # noqa: UP045
    request: Annotated[Optional[Path], typer.Option(help="a submit.json (original format)")] = None,  # noqa: UP045
    cpus: Annotated[Optional[int], typer.Option(min=1)] = None,  # noqa: UP045
    memory: Annotated[Optional[str], typer.Option(help="e.g. 3gb")] = None,  # noqa: UP045
    device: Annotated[str, typer.Option(help="cpu or gpu")] = "cpu",
    job_name: Annotated[Optional[str], typer.Option(help="a name for the job")] = None,  # noqa: UP045
    publish: Annotated[
        bool, typer.Option(help="publish the model to the inference service")
    ] = True,
    wait: Annotated[bool, typer.Option(help="wait for the job to end, showing its state")] = False,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Submit a workflow run (uploading a bundle first with --bundle).

    Example: mlaas4hep submit --server https://mlaas.example.org:4433 --bundle ./higgs
    --files files.txt --labels labels.txt --model builtin:gbdt --wait
    """
    with (
        user_errors(),
        contexts.workflow_api(deployment, server, token, account, ca_bundle, insecure) as service,
    ):
        if bundle is not None:
            name = name or bundle.name.removesuffix(".tar.gz").removesuffix(".tgz")
            client.upload_inputs(service, name, client.pack(bundle))
        body = submission(
            files=files,
            labels=labels,
            model=model,
            params=params,
            preproc=preproc,
            bundle_name=name,
            request=request,
            resources={
                "device": device,
                "publish": publish,
                "job_name": job_name,
                "cpus": cpus,
                "memory": memory,
            },
        )
        answer = client.submit_job(service, body)
        job_id = answer["job_id"]
        if not wait:
            if as_json:
                print(json.dumps(answer))
            else:
                console.print(f"submitted job [bold]{job_id}[/] ({answer['state']})")
            return
        with (
            console.status("waiting", spinner="dots")
            if not as_json and sys.stdout.isatty()
            else nullcontext()
        ):
            job = client.wait_job(service, job_id, (lambda job: None) if as_json else said_state)
    if as_json:
        print(json.dumps(job))
    else:
        said = client.outcome(job)
        console.print(f"job {job_id}: [bold]{job['state']}[/]" + (f": {said}" if said else ""))
    if job["state"] != client.SUCCEEDED:
        raise typer.Exit(1)
