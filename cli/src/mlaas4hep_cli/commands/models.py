"""`mlaas4hep models`: the models a TFaaS inference service holds.

Predictions, the model list and the params are open on a default TFaaS; a token is sent
whenever one is at hand (--account/--token/MLAAS4HEP_TOKEN).
"""

from __future__ import annotations

import json

from rich.console import Console

from mlaas4hep_cli import contexts
from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.options import Account, AsJson, CaBundle, Deployment, Insecure, Tfaas, Token
from mlaas4hep_cli.views import models_table

console = Console()


def models(
    tfaas: Tfaas = None,
    deployment: Deployment = None,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """List the models the inference service holds.

    Example: mlaas4hep models --tfaas http://mlaas.example.org:8083
    """
    with (
        user_errors(),
        contexts.tfaas_api(deployment, tfaas, token, account, ca_bundle, insecure) as service,
    ):
        listing = service.json("GET", "/models")
    if as_json:
        print(json.dumps(listing))
    else:
        console.print(models_table(listing))
