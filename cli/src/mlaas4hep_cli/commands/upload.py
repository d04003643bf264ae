"""`mlaas4hep upload PATH`: a trained model's bundle to the inference service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli import client, contexts
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, CaBundle, Deployment, Insecure, Tfaas, Token

console = Console()


def upload(
    path: Annotated[Path, typer.Argument(help="run folder, tfaas/<name> folder or .tar.gz")],
    tfaas: Tfaas = None,
    deployment: Deployment = None,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Upload a trained model's bundle to the inference service.

    Example: mlaas4hep upload runs/run-1/tfaas/higgs --tfaas http://mlaas.example.org:8083
    """
    with user_errors():
        archive = client.model_bundle(path)
        with contexts.tfaas_api(deployment, tfaas, token, account, ca_bundle, insecure) as service:
            answer = client.upload_model(service, archive)
    if as_json:
        print(json.dumps(answer))
        return
    console.print(
        f"stored model [bold]{answer['name']}[/] ({answer.get('format')}, "
        f"{answer.get('n_inputs')} inputs, {answer.get('task') or 'raw outputs'})"
    )
