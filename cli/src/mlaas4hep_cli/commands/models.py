"""`mlaas4hep models | upload | predict`: models on a TFaaS inference service.

Plain files in, plain HTTP out: no numpy and no service package, so the operator CLI stays
light. Predictions, the model list and the params are open on a default TFaaS; uploads need a
token (--account/--token/MLAAS4HEP_TOKEN), which is sent whenever one is at hand.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlaas4hep_cli.client import ServiceClient, verify_option
from mlaas4hep_cli.commands.jobs import Account, AsJson, CaBundle, Insecure, Token
from mlaas4hep_cli.errors import CliError, user_errors
from mlaas4hep_cli.tokens import TOKEN_VARIABLES, get_token

stdout = Console()
Tfaas = Annotated[
    str, typer.Option("--tfaas", envvar="MLAAS4HEP_TFAAS", help="TFaaS URL, e.g. http://host:8083")
]
BUNDLE_HEADERS = {"Content-Type": "application/gzip", "Content-Encoding": "gzip"}


def optional_token(token: str | None, account: str | None) -> str | None:
    """A token when the operator has one (flag, variable, oidc-agent account); else none."""
    if token or account or any(os.environ.get(v) for v in TOKEN_VARIABLES):
        return get_token(token, account)
    if os.environ.get("MLAAS4HEP_OIDC_ACCOUNT"):
        return get_token(None, None)
    return None


@contextmanager
def connect(
    url: str, account: str | None, token: str | None, ca_bundle: str | None, insecure: bool
) -> Iterator[ServiceClient]:
    client = ServiceClient(
        url, optional_token(token, account), verify_option(ca_bundle, insecure), timeout=300
    )
    try:
        yield client
    finally:
        client.close()


def models(
    tfaas: Tfaas,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """List the models the inference service holds."""
    with user_errors(), connect(tfaas, account, token, ca_bundle, insecure) as client:
        listing = client.json("GET", "/models")
    if as_json:
        print(json.dumps(listing))
        return
    table = Table("name", "format", "framework", "task", "inputs", "description")
    for params in listing:
        task = params.get("task") or {}
        table.add_row(
            params.get("name", "?"),
            params.get("format") or "-",
            params.get("framework") or "-",
            task.get("kind", "-") if isinstance(task, dict) else "-",
            str(params.get("n_inputs") or "-"),
            (params.get("description") or "")[:50],
        )
    stdout.print(table)


def bundle_archive(path: Path) -> bytes:
    """A run folder, a tfaas/<name> folder or a tfaas/<name>.tar.gz, as tar.gz bytes."""
    if path.is_file():
        if not path.name.endswith((".tar.gz", ".tgz")):
            raise CliError(f"{path}: expected a .tar.gz bundle, a tfaas/<name> folder or a run")
        return path.read_bytes()
    if not path.is_dir():
        raise CliError(f"{path}: no such folder or archive")
    # A run folder first: its own params.json is the training's, not a bundle's.
    archives = sorted((path / "tfaas").glob("*.tar.gz"))
    if len(archives) == 1:
        return archives[0].read_bytes()
    if archives:
        names = ", ".join(str(a) for a in archives)
        raise CliError(f"{path} holds several bundles ({names}): upload one of them")
    if (path / "params.json").is_file():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(path, arcname=path.name)
        return buffer.getvalue()
    raise CliError(f"{path} is neither a run folder (tfaas/*.tar.gz) nor a bundle (params.json)")


def upload(
    path: Annotated[Path, typer.Argument(help="run folder, tfaas/<name> folder or .tar.gz")],
    tfaas: Tfaas,
    account: Account = None,
    token: Token = None,
    ca_bundle: CaBundle = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Upload a trained model's bundle to the inference service."""
    with user_errors():
        archive = bundle_archive(path)
        with connect(tfaas, account, token, ca_bundle, insecure) as client:
            answer = client.json("POST", "/upload", content=archive, headers=BUNDLE_HEADERS)
    if as_json:
        print(json.dumps(answer))
        return
    stdout.print(
        f"stored model [bold]{answer['name']}[/] ({answer.get('format')}, "
        f"{answer.get('n_inputs')} inputs, {answer.get('task') or 'raw outputs'})"
    )


def number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CliError(f"{where}: {text!r} is not a number") from None


def read_rows(path: Path) -> tuple[list[str] | None, list[list[float]]]:
    """(keys, rows) from a CSV with a header of column names, or a JSON file of rows."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if not header:
            raise CliError(f"{path}: empty CSV (a header of column names comes first)")
        rows = []
        for line, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(header):
                raise CliError(f"{path}:{line}: {len(record)} values for {len(header)} columns")
            rows.append([number(v, f"{path}:{line}") for v in record])
        return [h.strip() for h in header], rows
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path}: not JSON ({exc})") from None
    return json_rows(document, str(path))


def json_rows(document: Any, where: str) -> tuple[list[str] | None, list[list[float]]]:
    """A /json request body, a list of rows, or a list of {column: value} objects."""
    if isinstance(document, dict) and "values" in document:
        values = document["values"]
        rows = values if values and isinstance(values[0], list) else [values]
        return document.get("keys"), rows
    if isinstance(document, list) and document and isinstance(document[0], dict):
        keys = list(document[0])
        if any(list(row) != keys for row in document if isinstance(row, dict)):
            raise CliError(f"{where}: every object must have the same keys in the same order")
        return keys, [[row[k] for k in keys] for row in document]
    if isinstance(document, list) and all(isinstance(row, list) for row in document):
        return None, document
    raise CliError(
        f"{where}: expected a list of rows, a list of objects, or "
        '{"keys": [...], "values": [...]}'
    )


def predict(
    rows_file: Annotated[Path, typer.Argument(help="rows: .csv with a header, or .json")],
    model: Annotated[str, typer.Option("--model", "-m", help="model name on the service")],
    tfaas: Tfaas,
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
    """Predictions of a served model for every row of a file, one line per row."""
    with user_errors():
        keys, rows = read_rows(rows_file)
        if not rows:
            raise CliError(f"{rows_file}: no rows")
        predictions: list[Any] = []
        with connect(tfaas, account, token, ca_bundle, insecure) as client:
            for start in range(0, len(rows), batch):
                body: dict[str, Any] = {"model": model, "values": rows[start : start + batch]}
                if keys is not None:
                    body["keys"] = keys
                if normalise:
                    body["normalise"] = True
                predictions += client.json("POST", "/json", json=body)
    if as_json:
        print(json.dumps(predictions))
        return
    for row in predictions:
        print(",".join(f"{value:.6g}" if value is not None else "nan" for value in row))


def register(app: typer.Typer) -> None:
    for command in (models, upload, predict):
        app.command()(command)
