"""`mlaas4hep predict ROWS -m MODEL`: a served model's outputs for every row of a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlaas4hep_cli import client, contexts
from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.options import Account, AsJson, CaBundle, Deployment, Insecure, Tfaas, Token
from mlaas4hep_cli.prediction_rows import read_rows


def predict(
    rows_file: Annotated[Path, typer.Argument(help="rows: .csv with a header, or .json")],
    model: Annotated[str, typer.Option("--model", "-m", help="model name on the service")],
    tfaas: Tfaas = None,
    deployment: Deployment = None,
    normalise: Annotated[
        bool, typer.Option(help="raw values: apply the model's training min-max scaling")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="rows per request")] = 1000,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Predictions of a served model for every row of a file, one line per row.

    Example: mlaas4hep predict rows.csv --model higgs --tfaas http://mlaas.example.org:8083
    """
    with user_errors():
        keys, rows = read_rows(rows_file)
        if not rows:
            raise CliError(f"{rows_file}: no rows")
        with contexts.tfaas_api(deployment, tfaas, token, account, ca_bundle, insecure) as service:
            predictions = client.predict(service, model, rows, keys, normalise, batch)
    if as_json:
        print(json.dumps(predictions))
        return
    for row in predictions:
        print(",".join(f"{value:.6g}" if value is not None else "nan" for value in row))
