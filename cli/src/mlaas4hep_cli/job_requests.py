"""The body of a workflow submission, from the operator's files and flags.

With a bundle (uploaded first, or already on the server by name) the request names files inside
it; without one, small local files (lists, params, preproc, model code) travel inline and ROOT
files must be URLs the server can read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.filelists import file_entries


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: cannot read JSON ({exc})") from None


def inline_request(
    files: str, labels: str, model: str, params: str | None, preproc: str | None
) -> dict[str, Any]:
    """Without a bundle: local files are sent inline; ROOT files must be URLs the server reads."""
    body: dict[str, Any] = {"files": file_entries(files)}
    label_file = Path(labels)
    body["labels"] = (
        [float(v) for v in label_file.read_text().split()] if label_file.is_file() else labels
    )
    if Path(model).is_file():
        body["model_code"] = Path(model).read_text()
    else:
        body["model"] = model
    if params:
        body["params"] = read_json(params)
    if preproc:
        body["preproc"] = read_json(preproc)
    return body


def submission(
    *,
    files: str | None,
    labels: str | None,
    model: str | None,
    params: str | None,
    preproc: str | None,
    bundle_name: str | None,
    request: Path | None,
    resources: dict[str, Any],
) -> dict[str, Any]:
    """The /submit body: a submit.json of the original format, or one built from the flags
    (`bundle_name` when the named files are inside a bundle on the server)."""
    if request is not None:
        body = read_json(request)
        if bundle_name:
            body["name"] = bundle_name
        return body
    if not (files and labels and model):
        raise CliError("give --files, --labels and --model (or --request submit.json)")
    if bundle_name:
        body = {
            "name": bundle_name,
            "files": files,
            "labels": labels,
            "model": model,
            "params": params,
            "preproc": preproc,
        }
    else:
        body = inline_request(files, labels, model, params, preproc)
    return {**body, **resources}
