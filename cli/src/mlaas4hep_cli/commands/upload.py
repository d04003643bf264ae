"""`mlaas4hep upload PATH`: a trained model's bundle to the inference service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlaas4hep_cli import client
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, CaBundle, Insecure, Tfaas, Token
from mlaas4hep_cli.tokens import optional_token

console = Console()


def upload(
    path: Annotated[Path, typer.Argument(help="run folder, tfaas/<name> folder or .tar.gz")],
    tfaas: Tfaas,
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
        with client.connect(
            tfaas, optional_token(token, account), ca_bundle, insecure, timeout=300
        ) as service:
            answer = client.upload_model(service, archive)
    if as_json:
        print(json.dumps(answer))
        return
    console.print(
        f"stored model [bold]{answer['name']}[/] ({answer.get('format')}, "
        f"{answer.get('n_inputs')} inputs, {answer.get('task') or 'raw outputs'})"
    )
